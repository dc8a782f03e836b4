"""Named settings for the two region passes, per engine, and user overrides.

Why per engine: the paper's balance between style and content is set differently
by each network. SANet weighs its two attention branches (``w_low`` on relu4_1,
``w_high`` on relu5_1) and blends with the content (``strength``); Magenta has
only the bottleneck interpolation (``strength``). The background pass lets style
dominate; the portrait pass keeps the face's geometry.

Overrides arrive typed from the wire or as text from a benchmark sweep; both
are checked by ``protocol.knobs`` (the one knob parser), whose errors name the
region, the knob or the value that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..protocol.knobs import typed_overrides
from .jobspec import RegionSettings

__all__ = ["PRESETS", "preset", "resolve_regions"]

# Tuned with bench/quality.py (bench/results/quality-portrait-tuning.md). The
# portrait is a full-strength stylization with the face's own detail kept by
# ``likeness`` (daemon/portrait_pass.py): on all 80 pairs every face kept, landmark
# drift 0.0148 of the eye distance (whole-image 0.027), 0.88 of whole-image's face
# stylization on the tight face crop. The previous preset (strength 0.3, structure
# 0.75) kept faces by blurring the brush texture away: face style gain 0.12.
# At strength 1 the portrait shares the background's network pass (daemon/strokes.py).
PRESETS: dict[str, dict[str, RegionSettings]] = {
    # Magenta: strength mixes the style bottleneck with the content's own.
    "magenta": {
        "background": RegionSettings(strength=1.0),
        "portrait": RegionSettings(strength=1.0, likeness=0.8),
    },
    # SANet: W_l = W_h = 1, strength 1 is the plain public checkpoint (style dominates).
    # Portrait: keep low-level (relu4_1) style, damp the high-level (relu5_1) branch
    # that moves facial geometry (the paper's knob), and keep the face's detail. Not tuned on
    # real SANet weights (none are reachable here): rerun bench/quality.py --engine
    # sanet with trained weights.
    "sanet": {
        "background": RegionSettings(strength=1.0, w_low=1.0, w_high=1.0),
        "portrait": RegionSettings(strength=1.0, w_low=1.0, w_high=0.3, likeness=0.8),
    },
}

#: presets for an engine not listed above (only ``strength`` is universal)
GENERIC_PRESET: dict[str, RegionSettings] = {
    "background": RegionSettings(strength=1.0),
    "portrait": RegionSettings(strength=0.5),
}


def preset(engine_name: str) -> dict[str, RegionSettings]:
    """The default settings of both regions for an engine (generic if unknown)."""
    return dict(PRESETS.get(engine_name, GENERIC_PRESET))


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
