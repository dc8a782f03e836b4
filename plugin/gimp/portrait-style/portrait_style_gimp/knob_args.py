"""The GIMP procedure's knob arguments, built from the knob table (``protocol/knobs.py``).

Why a module of its own: the procedure's arguments (their names, ranges,
defaults, tooltips), the dialog's "Reset to defaults" and the run function's
reading of the chosen values all describe the same knobs. The knob table owns
them; this module only turns each ``Control`` into a GIMP argument and back,
so a knob added to the table reaches GIMP's dialog with no edit here.

Argument names are the controls' names ("background-strength", "stroke-size"…),
the names GIMP stored last values under before the table existed, so an
artist's saved settings keep working. The old "-1: the daemon's preset" values
are gone: every argument starts at the daemon's own default for its region. A
value GIMP still holds from those days (below the range) reads as the default.

No GIMP import at module level: the pure parts (labels, values) are tested
without GIMP; ``declare`` gets the procedure and GObject's flags from its caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["STYLE_LABEL", "ENDPOINT", "table", "labels", "tooltip_of", "declare", "values", "reset",
           "main_names", "advanced_names"]

#: the painting argument's label (its mnemonic is reserved before the knobs get theirs)
STYLE_LABEL = "St_yle painting"
#: mnemonics the dialog uses itself: St_yle, _Help, _Reset, _Cancel, _OK, Reset to _defaults,
#: _Advanced, Daemon _endpoint, and GIMP's own "_Load Saved Settings", "_Save Settings"
TAKEN = ("y", "h", "r", "c", "o", "d", "a", "e", "l", "s")
#: the daemon endpoint argument: kept for scripts, shown only in the Advanced section
ENDPOINT = "endpoint"


def table(engine: str | None = None) -> list[Any]:
    """The knob table's controls, from the plug-in's bundled core (defaults: ``engine``'s)."""
    from ._core.protocol import knobs

    return knobs.controls(engine or knobs.DEFAULT_ENGINE)


def labels(controls: Sequence[Any], taken: Iterable[str] = TAKEN) -> dict[str, str]:
    """{control name: label with a unique mnemonic} (``_`` before the chosen letter).

    taken: letters the dialog already uses (``TAKEN``). Each control gets the
    first letter of its label not taken yet, so no Alt+letter opens two things.
    """
    used = {c.lower() for c in taken}
    out = {}
    for control in controls:
        text = control.label
        at = next((i for i, ch in enumerate(text) if ch.isalpha() and ch.lower() not in used),
                  None)
        if at is None:
            out[control.name] = text
            continue
        used.add(text[at].lower())
        out[control.name] = text[:at] + "_" + text[at:]
    return out


def tooltip_of(control: Any) -> str:
    """The knob's tooltip and its default, so the artist knows where "Reset" goes."""
    default = ("on" if control.default else "off") if control.kind is bool else \
        f"{control.default:.{control.digits}f}"
    return f"{control.tooltip} Default: {default}."


def declare(procedure: Any, controls: Sequence[Any], flags: Any) -> None:
    """Add one argument per control: a double in the knob's range, or a boolean."""
    named = labels(controls)
    for control in controls:
        label, tooltip = named[control.name], tooltip_of(control)
        if control.kind is bool:
            procedure.add_boolean_argument(control.name, label, tooltip, bool(control.default),
                                           flags)
        else:
            procedure.add_double_argument(control.name, label, tooltip, float(control.low),
                                          float(control.high), float(control.default), flags)


def values(config: Any, controls: Sequence[Any]) -> dict[str, float | bool]:
    """{control name: value} for the controls set away from their default.

    A control left at its default is not sent: the daemon's preset applies, which
    is the same value for the engine the table describes, and the right one for
    an engine with other presets. Values outside the range (an old saved -1)
    count as the default.
    """
    out: dict[str, float | bool] = {}
    for control in controls:
        raw = config.get_property(control.name)
        if control.kind is bool:
            value: float | bool = bool(raw)
        else:
            value = float(raw)
            if not control.low <= value <= control.high:
                continue
            value = round(value, max(control.digits, 3))
        if value != control.default:
            out[control.name] = value
    return out


def reset(config: Any, controls: Sequence[Any]) -> None:
    """Set every knob argument back to its default ("Reset to defaults")."""
    for control in controls:
        default = bool(control.default) if control.kind is bool else float(control.default)
        config.set_property(control.name, default)


def main_names(controls: Sequence[Any]) -> list[str]:
    """The arguments the dialog shows at once, in table order."""
    return [c.name for c in controls if not c.advanced]


def advanced_names(controls: Sequence[Any]) -> list[str]:
    """The arguments behind the Advanced expander (the endpoint last)."""
    return [c.name for c in controls if c.advanced] + [ENDPOINT]
