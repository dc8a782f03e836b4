"""Named settings for the two region passes, per engine, and user overrides.

Why per engine: the paper's balance between style and content is set differently
by each network. SANet weighs its two attention branches (``w_low`` on relu4_1,
``w_high`` on relu5_1) and blends with the content (``strength``); Magenta has
only the bottleneck interpolation (``strength``). The background pass lets style
dominate; the portrait pass keeps the face's geometry.

Overrides arrive as ``region.knob=value`` strings (``--param`` on the command
line, the plug-in's dialog), are checked here and produce clear errors that name
the region, the knob or the value that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, replace

from ..protocol.constants import REGION_NAMES
from .jobspec import RegionSettings

__all__ = ["KNOB_RANGES", "PRESETS", "parse_param", "parse_params", "preset",
           "resolve_regions"]

# Defaults are first guesses from the paper's description and a visual check on the
# test portraits; they are TUNED LATER by the quality benchmark (face-landmark drift
# of the portrait vs stylization strength of the background) — change them there.
PRESETS: dict[str, dict[str, RegionSettings]] = {
    # Magenta: strength mixes the style bottleneck with the content's own.
    "magenta": {
        "background": RegionSettings(strength=1.0),
        "portrait": RegionSettings(strength=0.4),
    },
    # SANet: W_l = W_h = 1, strength 1 is the plain public checkpoint (style dominates).
    # Portrait: keep low-level (relu4_1) style, damp the high-level (relu5_1) branch
    # that moves facial geometry, and blend back part of the content.
    "sanet": {
        "background": RegionSettings(strength=1.0, w_low=1.0, w_high=1.0),
        "portrait": RegionSettings(strength=0.7, w_low=1.0, w_high=0.3),
    },
}

#: presets for an engine not listed above (only ``strength`` is universal)
GENERIC_PRESET: dict[str, RegionSettings] = {
    "background": RegionSettings(strength=1.0),
    "portrait": RegionSettings(strength=0.5),
}

#: inclusive ranges of the numeric knobs
KNOB_RANGES: dict[str, tuple[float, float]] = {
    "strength": (0.0, 1.0),
    "w_low": (0.0, 2.0),
    "w_high": (0.0, 2.0),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_KNOBS = tuple(f.name for f in fields(RegionSettings))


def preset(engine_name: str) -> dict[str, RegionSettings]:
    """The default settings of both regions for an engine (generic if unknown)."""
    return dict(PRESETS.get(engine_name, GENERIC_PRESET))


def parse_param(text: str) -> tuple[str, str, str]:
    """Split ``"portrait.w_high=0.3"`` into ("portrait", "w_high", "0.3").

    Region and knob names are checked here; the value is checked by
    ``resolve_regions`` (so a wire message's typed values go the same way).
    """
    key, sep, value = text.partition("=")
    region, dot, knob = key.strip().partition(".")
    if not sep or not dot or not region or not knob or not value.strip():
        raise ValueError(f"bad parameter {text!r}: expected REGION.KNOB=VALUE, "
                         f"e.g. portrait.strength=0.4")
    _check_names(region, knob)
    return region, knob, value.strip()


def parse_params(texts: Iterable[str]) -> dict[str, dict[str, str]]:
    """Many ``REGION.KNOB=VALUE`` strings → overrides for ``resolve_regions``."""
    overrides: dict[str, dict[str, str]] = {}
    for text in texts:
        region, knob, value = parse_param(text)
        overrides.setdefault(region, {})[knob] = value
    return overrides


def resolve_regions(
    engine_name: str,
    overrides: Mapping[str, Mapping[str, str | float | bool]] | None = None,
) -> dict[str, RegionSettings]:
    """The engine's presets with ``overrides`` applied, every value checked.

    Raises ValueError naming the unknown region or knob, or the value that is
    not a number / not a boolean / out of range.
    """
    regions = preset(engine_name)
    for region, knobs in (overrides or {}).items():
        for knob, value in knobs.items():
            _check_names(region, knob)
            regions[region] = replace(regions[region], **{knob: _parse_value(region, knob,
                                                                             value)})
    return regions


def _check_names(region: str, knob: str) -> None:
    if region not in REGION_NAMES:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(REGION_NAMES)}")
    if knob not in _KNOBS:
        raise ValueError(f"unknown knob {knob!r} for region {region!r}; "
                         f"known: {', '.join(_KNOBS)}")


def _parse_value(region: str, knob: str, value: str | float | bool) -> float | bool:
    where = f"{region}.{knob}"
    if knob == "preserve_color":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{where}={value!r} is not a boolean (use true/false)")
    if isinstance(value, bool):
        raise ValueError(f"{where}={value!r} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r} is not a number") from None
    lo, hi = KNOB_RANGES[knob]
    if not lo <= number <= hi:  # also rejects NaN
        raise ValueError(f"{where}={value!r} is out of range [{lo:g}, {hi:g}]")
    return number
