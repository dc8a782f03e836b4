"""Region presets and ``region.knob=value`` overrides: parsing and clear errors."""

from __future__ import annotations

import pytest

from portrait_style.daemon.engines.base import RegionSettings
from portrait_style.daemon.regions import PRESETS, preset, resolve_regions
from portrait_style.protocol.knobs import parse_param, parse_params


def test_presets_make_the_background_more_stylized_than_the_portrait() -> None:
    for engine, regions in PRESETS.items():
        bg, pt = regions["background"], regions["portrait"]
        assert bg.strength >= pt.strength, engine
        assert bg.w_high >= pt.w_high, engine
    sanet_bg = PRESETS["sanet"]["background"]
    assert (sanet_bg.strength, sanet_bg.w_low, sanet_bg.w_high) == (1.0, 1.0, 1.0)
    # the portrait keeps the face's detail by likeness over a full-strength stylization,
    # so on Magenta it shares the background's network pass (same engine knobs)
    for engine, regions in PRESETS.items():
        assert regions["portrait"].likeness > regions["background"].likeness == 0.0, engine
    magenta_pt = PRESETS["magenta"]["portrait"]
    assert (magenta_pt.strength, magenta_pt.structure) == (1.0, 0.0)
    assert 0.5 <= magenta_pt.likeness <= 1.0


def test_unknown_engine_gets_the_tables_defaults() -> None:
    regions = preset("someday-engine")
    assert set(regions) == {"background", "portrait"}
    assert regions == PRESETS["magenta"]  # the table's defaults are the embedded engine's
    assert regions["portrait"].likeness > regions["background"].likeness


def test_presets_are_the_knob_tables_defaults_exactly() -> None:
    """The daemon's presets and what an editor shows as a default are the same numbers."""
    from dataclasses import asdict, fields

    from portrait_style.protocol import knobs

    assert [f.name for f in fields(RegionSettings)] == list(knobs.KNOBS)
    for engine in ("magenta", "sanet", "noop"):
        assert {r: asdict(s) for r, s in preset(engine).items()} == knobs.defaults(engine)
        for control in knobs.controls(engine):
            for region in control.regions:
                assert getattr(preset(engine)[region], control.knob.name) == control.default
    assert PRESETS["sanet"]["portrait"].w_high == 0.3  # an engine's own default
    # RegionSettings() is the neutral setting: the network's output left as it is
    assert asdict(RegionSettings()) == {k.name: k.neutral for k in knobs.TABLE}


def test_preset_is_a_copy() -> None:
    regions = preset("magenta")
    regions["portrait"] = RegionSettings(strength=0.0)
    assert PRESETS["magenta"]["portrait"].strength != 0.0


def test_parse_param() -> None:
    assert parse_param("portrait.w_high=0.3") == ("portrait", "w_high", 0.3)
    assert parse_param(" background.preserve_color = yes ") == (
        "background", "preserve_color", True)
    assert parse_params(["portrait.strength=0.2", "portrait.w_low=1.5",
                         "background.strength=0.9"]) == {
        "portrait": {"strength": 0.2, "w_low": 1.5}, "background": {"strength": 0.9}}


@pytest.mark.parametrize("text, message", [
    ("portrait.w_high", "REGION.KNOB=VALUE"),
    ("w_high=0.3", "REGION.KNOB=VALUE"),
    ("portrait.w_high=", "REGION.KNOB=VALUE"),
    ("face.strength=0.3", "unknown region 'face'"),
    ("portrait.gamma=0.3", "unknown knob 'gamma' for region 'portrait'"),
])
def test_parse_param_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_param(text)


def test_resolve_regions_applies_overrides_on_the_engine_preset() -> None:
    regions = resolve_regions("sanet", parse_params(
        ["portrait.w_high=0.1", "background.preserve_color=true"]))
    assert regions["portrait"].w_high == 0.1
    assert regions["portrait"].w_low == PRESETS["sanet"]["portrait"].w_low
    assert regions["background"].preserve_color is True
    # typed values (from a wire message) go the same way
    regions = resolve_regions("magenta", {"portrait": {"strength": 0.25,
                                                       "preserve_color": False}})
    kept = PRESETS["magenta"]["portrait"]
    assert regions["portrait"] == RegionSettings(strength=0.25, structure=kept.structure,
                                                 likeness=kept.likeness,
                                                 stroke_size=kept.stroke_size)
    assert resolve_regions("magenta") == PRESETS["magenta"]


@pytest.mark.parametrize("overrides, message", [
    ({"face": {"strength": 1}}, "unknown region 'face'"),
    ({"portrait": {"alpha": 1}}, "unknown knob 'alpha'"),
    ({"portrait": {"strength": "strong"}}, r"portrait.strength: strength takes a number"),
    ({"portrait": {"strength": 1.5}}, r"portrait.strength: strength must be in 0\.\.1, got 1.5"),
    ({"background": {"w_high": -0.1}}, r"background.w_high: w_high must be in 0\.\.2"),
    ({"portrait": {"strength": "nan"}}, r"must be in 0\.\.1"),
    ({"portrait": {"strength": True}}, "takes a number"),
    ({"portrait": {"preserve_color": "maybe"}}, "takes true/false"),
])
def test_resolve_regions_errors_name_the_region_knob_or_value(
        overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_regions("magenta", overrides)
