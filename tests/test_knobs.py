"""The knob table (protocol/knobs.py) drives the wire check, the daemon, the CLI and editors.

Each test here reads the table and checks one consumer against it, so a knob
added to the table is checked everywhere without editing these tests; and
``test_every_knob_acts_in_the_daemon`` fails for a knob the daemon does not use.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields, replace
from importlib import resources
from typing import Any

import numpy as np
import pytest

from portrait_style.protocol import knobs
from portrait_style.protocol.constants import REGION_NAMES
from portrait_style.protocol.errors import WireError
from portrait_style.protocol.request import JobParams


def _outside(knob: knobs.Knob) -> list[Any]:
    """Values the knob must refuse on the wire."""
    if knob.kind is bool:
        return [1, "yes", 0.5, None]
    return [knob.low - 0.01, knob.high + 0.01, float("nan"), True, "0.5", None]


def _inside(knob: knobs.Knob) -> list[Any]:
    if knob.kind is bool:
        return [True, False]
    return [knob.low, knob.high, (knob.low + knob.high) / 2]


# ------------------------------------------------------------------------ the table


def test_every_knob_is_complete_and_its_defaults_in_range() -> None:
    assert len(knobs.KNOBS) == len(knobs.TABLE)  # names are unique
    for knob in knobs.TABLE:
        assert knob.name.isidentifier() and knob.kind in (float, bool), knob
        assert knob.label and knob.tooltip.strip() and not knob.tooltip.endswith("."), knob
        assert set(knob.default) == set(REGION_NAMES), knob
        assert set(knob.regions) <= set(REGION_NAMES) and knob.regions, knob
        engines = [None, *knob.engine_defaults]
        for region in REGION_NAMES:
            for engine in engines:
                value = knob.default_for(region, engine or knobs.DEFAULT_ENGINE)
                assert knobs.check_knob(knob.name, value, text=False) == value, knob
        assert knobs.check_knob(knob.name, knob.neutral, text=False) == knob.neutral
        if knob.kind is float:
            assert knob.low < knob.high and 0 < knob.step <= knob.high - knob.low, knob


def test_controls_keep_the_gimp_argument_names() -> None:
    """Saved GIMP last-values key off these names: they must never change."""
    names = [c.name for c in knobs.controls(advanced=False)]
    for legacy in ("background-strength", "portrait-strength", "likeness", "stroke-size",
                   "preserve-color"):
        assert legacy in names
    gimp = (knobs.control("stroke-size").low, knobs.control("stroke-size").high)
    assert gimp == (0.25, 4.0)  # the floor the daemon accepts, not GIMP's old 0.1


def test_controls_give_an_editor_everything_to_build_a_widget() -> None:
    for control in knobs.controls():
        assert control.label[0].isupper() and control.tooltip.endswith(")."), control
        assert control.knob.range_text() in control.tooltip
        assert control.default == knobs.KNOBS[control.knob.name].default_for(control.regions[0])
        assert control.check(control.default) == control.default
        assert control.sets(control.default) == {
            r: {control.knob.name: control.default} for r in control.regions}
    portrait = knobs.controls(region="portrait", advanced=False)
    names = [c.name for c in portrait]
    assert all("portrait" in c.regions and not c.advanced for c in portrait)
    assert [n for n in names if n in ("portrait-strength", "likeness", "stroke-size",
                                      "preserve-color")] == [
        "portrait-strength", "likeness", "stroke-size", "preserve-color"]
    assert knobs.control("likeness").default == 0.8  # a real value, no -1 sentinel
    assert knobs.control("portrait-w-high", "sanet").default == 0.3
    assert knobs.regions_from_controls({"portrait_strength": 0.4, "stroke-size": 2,
                                        "likeness": None}) == {
        "portrait": {"strength": 0.4, "stroke_size": 2.0},
        "background": {"stroke_size": 2.0}}
    with pytest.raises(knobs.KnobError, match="unknown control 'sharpness'"):
        knobs.regions_from_controls({"sharpness": 1})
    with pytest.raises(knobs.KnobError, match=r"stroke size: stroke_size must be in 0.25..4"):
        knobs.regions_from_controls({"stroke-size": 0.1})


# -------------------------------------------------------------------- the wire check


@pytest.mark.parametrize("knob", knobs.TABLE, ids=lambda k: k.name)
def test_the_wire_check_is_the_tables(knob: knobs.Knob) -> None:
    for region in REGION_NAMES:
        for value in _inside(knob):
            params = JobParams(regions={region: {knob.name: value}}).check()
            assert params.regions[region][knob.name] == value
        for value in _outside(knob):
            with pytest.raises(WireError) as err:
                JobParams(regions={region: {knob.name: value}}).check()
            assert err.value.field == f"regions.{region}.{knob.name}"
            # the same words as a person typing it gets from --param / a dialog
            if not isinstance(value, str):
                with pytest.raises(knobs.KnobError) as typed:
                    knobs.check_knob(knob.name, value, f"regions.{region}.{knob.name}",
                                     text=False)
                assert str(typed.value) == err.value.message
    with pytest.raises(WireError, match="unknown knob 'regions.portrait.bogus'"):
        JobParams(regions={"portrait": {"bogus": 1.0}}).check()


@pytest.mark.parametrize("knob", knobs.TABLE, ids=lambda k: k.name)
def test_param_reads_every_knob_as_text(knob: knobs.Knob) -> None:
    value = _inside(knob)[-1]
    text = str(value).lower() if knob.kind is bool else f"{value:g}"
    assert knobs.parse_param(f"portrait.{knob.name}={text}") == ("portrait", knob.name, value)
    if knob.kind is float:
        with pytest.raises(knobs.KnobError, match=f"{knob.name} must be in {knob.low:g}.."):
            knobs.parse_param(f"background.{knob.name}={knob.high + 1:g}")


# ------------------------------------------------------------------------ the daemon


def test_region_settings_have_one_field_per_knob_so_a_new_knob_is_never_a_type_error() -> None:
    from portrait_style.daemon.jobspec import RegionSettings
    from portrait_style.daemon.regions import resolve_regions

    assert [f.name for f in fields(RegionSettings)] == list(knobs.KNOBS)
    for knob in knobs.TABLE:
        value = _inside(knob)[0]
        got = resolve_regions("magenta", {"portrait": {knob.name: value}})
        assert getattr(got["portrait"], knob.name) == value


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    folder = resources.files("portrait_style") / "samples"
    photo = Image.open(str(folder / "astronaut.jpg")).convert("RGB")
    photo.thumbnail((160, 160))
    style = Image.open(str(folder / "starry_night.jpg")).convert("RGB")
    style.thumbnail((192, 192))
    return np.asarray(photo).copy(), np.asarray(style).copy()


def _engine(name: str) -> Any:
    import torch

    if name == "sanet":
        from test_sanet import make_test_model

        from portrait_style.daemon.engines.sanet import SANetEngine

        torch.manual_seed(0)
        return SANetEngine(make_test_model(), "cpu")
    from portrait_style.daemon.engines.magenta import MagentaEngine
    from portrait_style.weights.fetch import WeightsUnavailable

    try:
        return MagentaEngine.load("cpu")
    except WeightsUnavailable as exc:
        pytest.skip(f"Magenta weights unavailable: {exc}")


@pytest.mark.parametrize("knob", knobs.TABLE, ids=lambda k: k.name)
def test_every_knob_acts_in_the_daemon(knob: knobs.Knob, samples, selfie) -> None:
    """A knob in the table that the daemon ignores fails here (not silently in a dialog)."""
    from portrait_style.daemon.jobspec import JobContext, StylizeJob
    from portrait_style.daemon.pipeline import PortraitPipeline
    from portrait_style.daemon.regions import preset

    engine = _engine(knob.engines[0] if knob.engines else knobs.DEFAULT_ENGINE)
    pipe = PortraitPipeline(engine, selfie, max_working_pixels=160 * 160)
    photo, style = samples
    base = preset(engine.name)["portrait"]
    default = getattr(base, knob.name)
    if knob.kind is bool:
        other: Any = not default
    else:
        other = knob.high if abs(knob.high - default) >= abs(knob.low - default) else knob.low

    def portrait(settings: Any) -> np.ndarray:
        job = StylizeJob(content=photo, style=style, style_key="starry",
                         regions={"portrait": settings}, outputs=frozenset({"portrait"}))
        return pipe.run(job, JobContext()).layers["portrait"].astype(np.float32)

    changed = np.abs(portrait(replace(base, **{knob.name: other})) - portrait(base)).mean()
    assert changed > 1.0, f"{knob.name}={other} changed the portrait by {changed:.2f} levels"


# --------------------------------------------------------------------------- the CLI


def _cli_args(*argv: str) -> argparse.Namespace:
    from portrait_style.plugin import cli_host

    parser = argparse.ArgumentParser()
    cli_host.add_parser(parser.add_subparsers())
    return parser.parse_args(["stylize", "photo.jpg", "--style", "s.jpg", "--out", "o", *argv])


def test_the_cli_has_a_flag_per_control_and_it_reaches_the_request() -> None:
    from portrait_style.plugin.cli_host import _knob_flags
    from portrait_style.plugin.core import StylizeOptions

    for control in knobs.controls(advanced=False):
        value = _inside(control.knob)[-1]
        argv = [f"--{control.name}"] + ([] if control.kind is bool else [f"{value:g}"])
        if control.kind is bool and value is False:
            continue  # a switch only turns on
        args = _cli_args(*argv)
        options = StylizeOptions(controls=_knob_flags(args))
        assert options.params().regions == {r: {control.knob.name: value}
                                            for r in control.regions}, control.name
    # unset flags send nothing: the daemon's defaults apply
    assert StylizeOptions(controls=_knob_flags(_cli_args())).params().regions == {}
    # advanced knobs are reached through --param only
    with pytest.raises(SystemExit):
        _cli_args("--portrait-w-high", "0.3")


def test_options_from_a_dialog_built_from_the_table_equal_the_old_keywords() -> None:
    from portrait_style.plugin.core import StylizeOptions

    old = StylizeOptions(background_strength=0.9, portrait_strength=0.5, likeness=0.6,
                         stroke_size=2.0, preserve_color=True)
    new = StylizeOptions(controls={c.name: getattr(old, c.attr, None)
                                   for c in knobs.controls(advanced=False)})
    assert old.params() == new.params()
    assert asdict(old.params())["regions"]["portrait"] == {
        "strength": 0.5, "likeness": 0.6, "stroke_size": 2.0, "preserve_color": True}


def test_saturation_scales_the_colours_of_its_region_only(samples, selfie) -> None:
    """The knob added through the table alone: grey at 0, the painting's colours at 1."""
    from portrait_style.daemon.color import rgb_to_ycbcr
    from portrait_style.daemon.jobspec import JobContext, StylizeJob
    from portrait_style.daemon.pipeline import PortraitPipeline
    from portrait_style.daemon.regions import resolve_regions

    pipe = PortraitPipeline(_engine("magenta"), selfie, max_working_pixels=160 * 160)
    photo, style = samples

    def layers(**params: str) -> dict[str, np.ndarray]:
        regions = resolve_regions("magenta", knobs.parse_params(
            [f"{k.replace('__', '.')}={v}" for k, v in params.items()]))
        job = StylizeJob(content=photo, style=style, style_key="starry", regions=regions,
                         outputs=frozenset({"background", "portrait"}))
        return pipe.run(job, JobContext()).layers

    def chroma(image: np.ndarray) -> float:
        import torch

        rgb = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
        return float(rgb_to_ycbcr(rgb)[:, 1:].abs().mean())

    plain, grey = layers(), layers(background__saturation="0")
    assert chroma(grey["background"]) < 0.004 < chroma(plain["background"])
    assert np.array_equal(grey["portrait"], plain["portrait"])  # the other region untouched
    vivid = layers(portrait__saturation="2")
    assert chroma(vivid["portrait"]) > 1.5 * chroma(plain["portrait"])
