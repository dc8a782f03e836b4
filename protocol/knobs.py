"""Region knobs as users write them: ``REGION.KNOB=VALUE`` and typed values.

One parser for every place a person sets a knob — the command line's
``--param``, a host's dialog, a benchmark's sweep, the daemon's presets — so
they accept and refuse exactly the same things and say so in the same words.
(The wire itself is stricter: ``messages.validate_regions`` takes typed values
only.) Torch-free, like all of ``protocol``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .constants import REGION_BOOL_KNOBS, REGION_FLOAT_KNOBS, REGION_NAMES

__all__ = ["KNOBS", "KnobError", "check_region_knob", "knob_value", "parse_param",
           "parse_params", "typed_overrides"]

#: every knob and its type
KNOBS: dict[str, type] = {**{k: float for k in REGION_FLOAT_KNOBS},
                          **{k: bool for k in REGION_BOOL_KNOBS}}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

Overrides = dict[str, dict[str, float | bool]]


class KnobError(ValueError):
    """A region, knob or value a user gave is not valid; the message says which."""


def check_region_knob(region: str, knob: str) -> None:
    """Raise ``KnobError`` unless ``region`` and ``knob`` exist."""
    if region not in REGION_NAMES:
        raise KnobError(f"unknown region {region!r}; known: {', '.join(REGION_NAMES)}")
    if knob not in KNOBS:
        raise KnobError(f"unknown knob {knob!r} for region {region!r}; "
                        f"known: {', '.join(KNOBS)}")


def knob_value(knob: str, raw: Any, where: str | None = None) -> float | bool:
    """``raw`` (text or typed) as the knob's type, range-checked.

    ``where`` names the setting in messages (default: the knob's name).
    """
    where = where or knob
    if KNOBS[knob] is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise KnobError(f"{where}: {knob} takes true/false, got {raw!r}")
    if isinstance(raw, bool):
        raise KnobError(f"{where}: {knob} takes a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise KnobError(f"{where}: {knob} takes a number, got {raw!r}") from None
    low, high = REGION_FLOAT_KNOBS[knob]
    if not (math.isfinite(value) and low <= value <= high):
        raise KnobError(f"{where}: {knob} must be in {low:g}..{high:g}, got {raw!r}")
    return value


def parse_param(text: str) -> tuple[str, str, float | bool]:
    """Parse ``REGION.KNOB=VALUE`` (e.g. ``portrait.strength=0.4``) into typed parts."""
    key, sep, raw = text.partition("=")
    region, dot, knob = key.strip().partition(".")
    if not sep or not dot or not raw.strip():
        raise KnobError(f"{text!r}: expected REGION.KNOB=VALUE, e.g. portrait.strength=0.4")
    region, knob = region.strip().lower(), knob.strip().lower()
    try:
        check_region_knob(region, knob)
    except KnobError as exc:
        raise KnobError(f"{text!r}: {exc}") from None
    return region, knob, knob_value(knob, raw.strip(), repr(text))


def parse_params(texts: Iterable[str]) -> Overrides:
    """Many ``REGION.KNOB=VALUE`` strings → {region: {knob: value}}; later ones win."""
    out: Overrides = {}
    for text in texts:
        region, knob, value = parse_param(text)
        out.setdefault(region, {})[knob] = value
    return out


def typed_overrides(overrides: Mapping[str, Mapping[str, Any]] | None) -> Overrides:
    """Check a {region: {knob: value}} map (text or typed values) and type it."""
    out: Overrides = {}
    for region, knobs in (overrides or {}).items():
        for knob, raw in knobs.items():
            check_region_knob(region, knob)
            out.setdefault(region, {})[knob] = knob_value(knob, raw, f"{region}.{knob}")
    return out
