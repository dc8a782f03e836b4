"""The one description of a stylize request's parameters, and its one validator.

Why one type: the command line, both editors, the client and the daemon all
handle the same request fields. Before this module each of them listed and
checked the fields itself (five times, in five wordings). Now ``JobParams`` is
the only place that names them: hosts build one, the client puts it on the wire
with ``to_header``, the daemon reads it back with ``from_header`` — both through
``check``, so client and daemon refuse exactly the same requests with the same
``WireError(bad_params)`` naming the field. Adding a request option means adding
one field here (and using it in the daemon).

Pixels (content, style, mask) are not parameters: they travel as frames and
are checked by ``framing`` and ``messages``. Torch- and numpy-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .constants import LAYER_NAMES, MAX_MASK_FEATHER, MIN_WORKING_PIXELS, REGION_NAMES
from .errors import BAD_PARAMS, WireError
from .knobs import KNOBS, KnobError, check_knob, short_value

__all__ = ["MAX_PREVIEW", "MIN_PREVIEW", "JobParams", "check_outputs", "check_regions",
           "preview_size", "Regions"]

#: the smallest and largest long side a preview may ask for
MIN_PREVIEW = 32
MAX_PREVIEW = 4096

Regions = dict[str, dict[str, float | bool]]


def _bad(message: str, where: str) -> WireError:
    return WireError(message, code=BAD_PARAMS, field=where)


@dataclass(frozen=True)
class JobParams:
    """Everything a stylize request says besides its pixels (SPEC.md §5 "stylize").

    regions: {"background"|"portrait": {knob: value}}; knobs not given keep the
        daemon's preset for that region (knobs: protocol.constants).
    outputs: the layers wanted, from LAYER_NAMES, order kept.
    whole_image: plain transfer with the background settings on the whole frame.
    max_working_pixels: cap on the pixels the style network sees at once
        (None: the daemon's default).
    mask_feather: Gaussian softening of the segmented mask's edge in layer
        pixels (None: the daemon's default); an artist's mask is never changed.
    preview: a preview with this long side in pixels instead of the full-size
        result (None: full size). Every layer comes back at
        ``preview_size(width, height, preview)``; it is the full result scaled
        down (same working size, so the same strokes, colours and mask), only
        cheaper: nothing is computed at full resolution.
    """

    regions: Regions = field(default_factory=dict)
    outputs: tuple[str, ...] = LAYER_NAMES
    whole_image: bool = False
    max_working_pixels: int | None = None
    mask_feather: float | None = None
    preview: int | None = None

    def check(self) -> JobParams:
        """This request with every field validated and normalised, or ``WireError``."""
        return JobParams(
            regions=check_regions(self.regions),
            outputs=check_outputs(self.outputs),
            whole_image=_check_bool(self.whole_image, "whole_image"),
            max_working_pixels=_check_working_pixels(self.max_working_pixels),
            mask_feather=_check_feather(self.mask_feather),
            preview=_check_preview(self.preview),
        )

    def to_header(self) -> dict[str, Any]:
        """The header fields of a ``stylize`` message (unset optional fields left out)."""
        out: dict[str, Any] = {"outputs": list(self.outputs), "regions": self.regions,
                               "whole_image": self.whole_image}
        if self.max_working_pixels is not None:
            out["max_working_pixels"] = self.max_working_pixels
        if self.mask_feather is not None:
            out["mask_feather"] = self.mask_feather
        if self.preview is not None:
            out["preview"] = self.preview
        return out

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> JobParams:
        """Read and check the fields from a received header (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        present = {k: v for k, v in header.items() if k in names and v is not None}
        if "outputs" in present and isinstance(present["outputs"], list):
            present["outputs"] = tuple(present["outputs"])
        try:
            raw = cls(**present)
        except TypeError as exc:  # cannot happen with the filter above; be explicit anyway
            raise _bad(f"bad stylize fields: {exc}", "header") from None
        return raw.check()

    def with_(self, **changes: Any) -> JobParams:
        """A copy with some fields changed (then checked)."""
        return replace(self, **changes).check()

    def as_dict(self) -> dict[str, Any]:
        """Plain data for storing with a result (JSON-safe)."""
        out = {"regions": {r: dict(k) for r, k in self.regions.items()},
               "outputs": list(self.outputs), "whole_image": self.whole_image,
               "max_working_pixels": self.max_working_pixels,
               "mask_feather": self.mask_feather}
        if self.preview is not None:
            out["preview"] = self.preview
        return out


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{where} must be true or false, got {short_value(value)}", where)
    return value


def _check_working_pixels(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"max_working_pixels must be a whole number, got {short_value(value)}",
                   "max_working_pixels")
    if value < MIN_WORKING_PIXELS:
        raise _bad(f"max_working_pixels must be at least {MIN_WORKING_PIXELS}, got {value}",
                   "max_working_pixels")
    return int(value)


def _check_preview(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"preview must be a whole number of pixels, got {short_value(value)}", "preview")
    if not MIN_PREVIEW <= value <= MAX_PREVIEW:
        raise _bad(f"preview must be {MIN_PREVIEW} … {MAX_PREVIEW} px (its long side), got "
                   f"{value}", "preview")
    return int(value)


def preview_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) of a preview of a ``width``×``height`` layer: long side ``long_side``.

    Never larger than the layer itself; both sides at least 1. Client and daemon
    both use this, so a host knows the size to expect.
    """
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_feather(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"mask_feather must be a number, got {short_value(value)}", "mask_feather")
    if not (math.isfinite(value) and 0 <= value <= MAX_MASK_FEATHER):
        raise _bad(f"mask_feather must be in 0 … {MAX_MASK_FEATHER:g} px, got {short_value(value)}",
                   "mask_feather")
    return float(value)


def check_outputs(outputs: Any) -> tuple[str, ...]:
    """A non-empty list of distinct layer names, order kept."""
    if not isinstance(outputs, list | tuple) or not outputs:
        raise _bad(f"outputs must be a non-empty list from {', '.join(LAYER_NAMES)}", "outputs")
    seen: list[str] = []
    for name in outputs:
        if not isinstance(name, str) or name not in LAYER_NAMES:
            raise _bad(f"unknown output {short_value(name)}; known: {', '.join(LAYER_NAMES)}",
                       "outputs")
        if name not in seen:
            seen.append(name)
    return tuple(seen)


def check_regions(regions: Any) -> Regions:
    """Check region names, knob names, types and ranges; return a clean copy.

    Raises ``WireError(bad_params)`` naming the offending knob, e.g.
    ``regions.portrait.strength``.
    """
    if regions is None:
        return {}
    if not isinstance(regions, Mapping):
        raise _bad("regions must be a map of region → knobs", "regions")
    clean: Regions = {}
    for region, knobs in regions.items():
        if not isinstance(region, str) or region not in REGION_NAMES:
            where = f"regions.{region[:40]}" if isinstance(region, str) else "regions"
            raise _bad(f"unknown region {short_value(region)}; known: {', '.join(REGION_NAMES)}",
                       where)
        where = f"regions.{region}"
        if not isinstance(knobs, Mapping):
            raise _bad(f"{where} must be a map of knob → value", where)
        clean[region] = {}
        for knob, value in knobs.items():
            if not isinstance(knob, str):
                raise _bad(f"{where}: knob names are text, got {short_value(knob)}", where)
            knob = knob[:40]
            clean[region][knob] = _check_knob(f"{where}.{knob}", knob, value)
    return clean


def _check_knob(where: str, knob: str, value: Any) -> float | bool:
    """The knob table's own validator (``knobs.check_knob``), typed values only."""
    if knob not in KNOBS:
        raise _bad(f"unknown knob {where!r}; known: {', '.join(KNOBS)}", where)
    try:
        return check_knob(knob, value, where, text=False)
    except KnobError as exc:
        raise _bad(str(exc), where) from None
