"""The two region passes' settings: the knob table's defaults per engine, plus overrides.

Why per engine: the paper's balance between style and content is set differently
by each network. SANet weighs its two attention branches (``w_low`` on relu4_1,
``w_high`` on relu5_1) and blends with the content (``strength``); Magenta has
only the bottleneck interpolation (``strength``). The background pass lets style
dominate; the portrait pass keeps the face's geometry.

The numbers themselves live in the knob table (``protocol/knobs.py``: each
knob's ``default`` per region and its ``engine_defaults``), so the daemon's
presets and the defaults an editor shows are the same numbers. How they were
chosen: bench/quality.py (bench/results/quality-portrait-tuning.md). The
portrait is a full-strength stylization with the face's own detail kept by
``likeness`` (daemon/portrait_pass.py): on all 80 pairs every face kept,
landmark drift 0.0148 of the eye distance (whole-image 0.027), 0.88 of
whole-image's face stylization on the tight face crop. At strength 1 the
portrait shares the background's network pass (daemon/strokes.py). SANet's
portrait damps the high-level branch (``w_high`` 0.3, the paper's knob); not
tuned on real SANet weights (none are reachable here).

Overrides arrive typed from the wire or as text from a benchmark sweep; both
are checked by ``protocol.knobs`` (the one knob validator), whose errors name the
region, the knob or the value that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..protocol.knobs import defaults, typed_overrides
from .jobspec import RegionSettings

__all__ = ["ENGINES", "PRESETS", "preset", "resolve_regions"]

#: the engines whose presets are known (any other gets the table's defaults)
ENGINES: tuple[str, ...] = ("magenta", "sanet")


def preset(engine_name: str) -> dict[str, RegionSettings]:
    """The default settings of both regions for an engine (from the knob table)."""
    return {region: RegionSettings(**values) for region, values in defaults(engine_name).items()}


#: engine → region → settings, for reading (``preset`` returns a fresh copy)
PRESETS: dict[str, dict[str, RegionSettings]] = {engine: preset(engine) for engine in ENGINES}


def resolve_regions(
    engine_name: str,
    overrides: Mapping[str, Mapping[str, str | float | bool]] | None = None,
) -> dict[str, RegionSettings]:
    """The engine's presets with ``overrides`` applied, every value checked.

    Raises ValueError naming the unknown region or knob, or the value that is
    not a number / not a boolean / out of range.
    """
    regions = preset(engine_name)
    for region, values in typed_overrides(overrides).items():
        regions[region] = replace(regions[region], **values)
    return regions
