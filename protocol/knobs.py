"""The knob table: every region knob, once, and everything built from it.

Why one table: a region knob (``strength``, ``likeness``…) is read by the wire
check, the daemon's region settings and presets, the command line's flags and
``--param``, the GIMP procedure's arguments and dialog, and the Krita docker.
Each of those used to list the knobs (and copy their ranges) by hand. Now a
knob is one ``Knob`` entry in ``TABLE`` — name, type, range, step, default per
region, label and tooltip — and all of them are derived from it:

- ``check_knob`` is the one validator: the wire (``protocol.request``, strict
  types), ``--param`` and the hosts (text accepted) call it, so they refuse the
  same values in the same words;
- ``daemon.jobspec.RegionSettings`` has exactly one field per knob (built from
  ``TABLE``), and ``defaults(engine)`` are the daemon's presets;
- ``controls()`` are the widgets an editor shows (see ``Control``), also the
  command line's named flags.

Adding a knob: one ``Knob`` here, its use in the daemon (it arrives as a field
of ``RegionSettings``), and a test. ``tests/test_knobs.py`` fails for a knob the
daemon does not act on.

For editors (GIMP dialog, Krita docker), the whole API is::

    from portrait_style.protocol import knobs
    for control in knobs.controls():          # or knobs.controls(region="portrait")
        control.name      # stable id: GIMP argument name, config key ("portrait-strength")
        control.label     # "Portrait strength"
        control.tooltip   # one sentence, with the range
        control.kind      # float or bool
        control.low, control.high, control.step, control.digits
        control.default   # the daemon's default for this engine (no -1 sentinel)
        control.advanced  # True: put it in an "Advanced" section
    regions = knobs.regions_from_controls({"portrait-strength": 0.4, "stroke-size": 2.0})

Torch-free and standard library only, like all of ``protocol``: editors import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .constants import REGION_NAMES

__all__ = [
    "DEFAULT_ENGINE", "KNOBS", "TABLE", "Control", "Knob", "KnobError", "check_knob",
    "check_region_knob", "controls", "control", "defaults", "knob_value", "parse_param",
    "parse_params", "regions_from_controls", "typed_overrides",
]

Value = float | bool
Overrides = dict[str, dict[str, Value]]

#: the engine whose defaults a host shows before it knows the daemon's (the embedded one)
DEFAULT_ENGINE = "magenta"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class KnobError(ValueError):
    """A region, knob or value a user gave is not valid; the message says which."""


@dataclass(frozen=True)
class Knob:
    """One region knob.

    name: the wire name (``regions.portrait.<name>``) and the RegionSettings field.
    kind: float or bool.
    default: the value per region for the default engine (the daemon's preset).
    neutral: the value at which the knob changes nothing (RegionSettings' own default).
    label / tooltip: what an editor shows; ``{region}`` in the tooltip is replaced
        by the region's name, the range is appended.
    low / high / step / digits: the inclusive range and a slider's step and decimals.
    regions: the regions an editor offers it for (the wire accepts it in any region).
    linked: an editor shows one control setting it in all its ``regions`` at once.
    advanced: an editor puts it in an advanced section (and the CLI only under --param).
    engine_defaults: {engine: {region: value}} where an engine's preset differs.
    engines: the engines that act on it (empty: all); the others ignore it.
    """

    name: str
    kind: type
    default: Mapping[str, Value]
    neutral: Value
    label: str
    tooltip: str
    low: float = 0.0
    high: float = 1.0
    step: float = 0.05
    digits: int = 2
    regions: tuple[str, ...] = REGION_NAMES
    linked: bool = False
    advanced: bool = False
    engine_defaults: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    engines: tuple[str, ...] = ()

    def default_for(self, region: str, engine: str = DEFAULT_ENGINE) -> Value:
        """The daemon's default of this knob in ``region`` for ``engine``."""
        return self.engine_defaults.get(engine, {}).get(region, self.default[region])

    def range_text(self) -> str:
        return "on/off" if self.kind is bool else f"{self.low:g}–{self.high:g}"


#: the knobs, in the order editors show them (SPEC.md §5, "Region knobs")
TABLE: tuple[Knob, ...] = (
    Knob("strength", float, {"background": 1.0, "portrait": 1.0}, 1.0,
         "strength", "How strongly the {region} takes the painting's style: 0 = none of it "
         "(the network still repaints the photo), 1 = the full style"),
    Knob("likeness", float, {"background": 0.0, "portrait": 0.8}, 0.0,
         "Likeness", "How much of the face's own detail the portrait keeps over the painting: "
         "0 = none, 1 = all of it at the scale of the facial features",
         regions=("portrait",)),
    Knob("stroke_size", float, {"background": 1.0, "portrait": 1.0}, 1.0,
         "Stroke size", "The painting's brush size relative to the photo: 1 = as the network "
         "paints, 2 = strokes twice as large", low=0.25, high=4.0, linked=True),
    Knob("preserve_color", bool, {"background": False, "portrait": False}, False,
         "Preserve colour", "Keep the photo's colours and take only the painting's texture",
         linked=True),
    Knob("saturation", float, {"background": 1.0, "portrait": 1.0}, 1.0,
         "saturation", "How vivid the {region}'s colours are: 0 = grey, 1 = as painted, "
         "2 = twice as saturated", high=2.0),
    Knob("structure", float, {"background": 0.0, "portrait": 0.0}, 0.0,
         "structure", "How much of the photo's edges the {region} keeps under the painted "
         "colours, 0 = off", advanced=True),
    Knob("w_low", float, {"background": 1.0, "portrait": 1.0}, 1.0,
         "low-level style", "SANet only: weight of the low-level (relu4_1) style branch in "
         "the {region}", high=2.0, advanced=True, engines=("sanet",)),
    Knob("w_high", float, {"background": 1.0, "portrait": 1.0}, 1.0,
         "high-level style", "SANet only: weight of the high-level (relu5_1) style branch "
         "in the {region}; lower keeps the face's geometry", high=2.0, advanced=True,
         engine_defaults={"sanet": {"portrait": 0.3}}, engines=("sanet",)),
)

#: name → knob (iteration gives the names in table order)
KNOBS: dict[str, Knob] = {knob.name: knob for knob in TABLE}


def defaults(engine: str = DEFAULT_ENGINE) -> dict[str, dict[str, Value]]:
    """{region: {knob: default}} for ``engine``: the daemon's presets."""
    return {region: {k.name: k.default_for(region, engine) for k in TABLE}
            for region in REGION_NAMES}


# ------------------------------------------------------------------------- validation


def check_region_knob(region: str, knob: str) -> None:
    """Raise ``KnobError`` unless ``region`` and ``knob`` exist."""
    if region not in REGION_NAMES:
        raise KnobError(f"unknown region {region!r}; known: {', '.join(REGION_NAMES)}")
    if knob not in KNOBS:
        raise KnobError(f"unknown knob {knob!r} for region {region!r}; "
                        f"known: {', '.join(KNOBS)}")


def short_value(value: Any) -> str:
    """A value for an error message, cut short (a hostile value can be huge or deep)."""
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def check_knob(knob: str, raw: Any, where: str | None = None, *, text: bool = True) -> Value:
    """The one validator: ``raw`` as the knob's type, range-checked, or ``KnobError``.

    where: names the setting in messages (default: the knob's name).
    text: accept text ("0.4", "yes") as people type it; the wire passes False
        and takes typed values only.
    """
    where = where or knob
    spec = KNOBS.get(knob)
    if spec is None:
        raise KnobError(f"{where}: unknown knob {knob!r}; known: {', '.join(KNOBS)}")
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw
        words = str(raw).strip().lower() if text and isinstance(raw, str | int) else None
        if words in _TRUE | _FALSE:
            return words in _TRUE
        raise KnobError(f"{where}: {knob} takes true/false, got {short_value(raw)}")
    if isinstance(raw, bool) or not (isinstance(raw, int | float)
                                     or (text and isinstance(raw, str))):
        raise KnobError(f"{where}: {knob} takes a number, got {short_value(raw)}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise KnobError(f"{where}: {knob} takes a number, got {short_value(raw)}") from None
    if not (math.isfinite(value) and spec.low <= value <= spec.high):
        raise KnobError(f"{where}: {knob} must be in {spec.low:g}..{spec.high:g}, "
                        f"got {short_value(raw)}")
    return value


def knob_value(knob: str, raw: Any, where: str | None = None) -> Value:
    """``raw`` (text or typed) as the knob's type, range-checked (``check_knob``)."""
    return check_knob(knob, raw, where)


def parse_param(text: str) -> tuple[str, str, Value]:
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
    return region, knob, check_knob(knob, raw.strip(), repr(text))


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
    for region, values in (overrides or {}).items():
        for knob, raw in values.items():
            check_region_knob(region, knob)
            out.setdefault(region, {})[knob] = check_knob(knob, raw, f"{region}.{knob}")
    return out


# --------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class Control:
    """One widget of an editor's dialog (or one command-line flag), built from a knob.

    A knob gets one control per region it is offered for ("background-strength",
    "portrait-strength"), or a single one for all of them when it is ``linked``
    or offered for one region only ("stroke-size", "likeness"). ``name`` is the
    stable id: the GIMP procedure argument (saved last-values key off it), a
    config key, the CLI flag ``--NAME``. ``attr`` is the same as an identifier.
    """

    name: str
    knob: Knob
    regions: tuple[str, ...]
    label: str
    tooltip: str
    default: Value

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def kind(self) -> type:
        return self.knob.kind

    @property
    def low(self) -> float:
        return self.knob.low

    @property
    def high(self) -> float:
        return self.knob.high

    @property
    def step(self) -> float:
        return self.knob.step

    @property
    def digits(self) -> int:
        return self.knob.digits

    @property
    def advanced(self) -> bool:
        return self.knob.advanced

    def check(self, raw: Any) -> Value:
        """``raw`` checked for this control (``KnobError`` naming the control)."""
        return check_knob(self.knob.name, raw, self.label.lower())

    def sets(self, raw: Any) -> Overrides:
        """The {region: {knob: value}} this control's value stands for."""
        value = self.check(raw)
        return {region: {self.knob.name: value} for region in self.regions}


def _controls_of(knob: Knob, engine: str) -> list[Control]:
    def tooltip(region: str) -> str:
        return f"{knob.tooltip.format(region=region)} ({knob.range_text()})."

    if knob.linked or len(knob.regions) == 1:
        region = knob.regions[0]
        values = {knob.default_for(r, engine) for r in knob.regions}
        if len(values) != 1:
            raise AssertionError(f"linked knob {knob.name} has different defaults per region")
        label = knob.label[:1].upper() + knob.label[1:]
        text = tooltip(region if len(knob.regions) == 1 else "image")
        return [Control(knob.name.replace("_", "-"), knob, knob.regions, label, text,
                        values.pop())]
    return [Control(f"{region}-{knob.name.replace('_', '-')}", knob, (region,),
                    f"{region.capitalize()} {knob.label}", tooltip(region),
                    knob.default_for(region, engine))
            for region in knob.regions]


def controls(engine: str = DEFAULT_ENGINE, *, region: str | None = None,
             advanced: bool = True) -> list[Control]:
    """The controls an editor shows, in table order, defaults for ``engine``.

    region: only the controls that set that region. advanced: include the
    advanced ones (put them in a collapsed section).
    """
    out = []
    for knob in TABLE:
        if knob.advanced and not advanced:
            continue
        out.extend(c for c in _controls_of(knob, engine)
                   if region is None or region in c.regions)
    return out


def control(name: str, engine: str = DEFAULT_ENGINE) -> Control:
    """The control called ``name`` (``KnobError`` listing the names when unknown)."""
    found = {c.name: c for c in controls(engine)}
    if name not in found:
        raise KnobError(f"unknown control {name!r}; known: {', '.join(found)}")
    return found[name]


def regions_from_controls(values: Mapping[str, Any]) -> Overrides:
    """{control name: value} → {region: {knob: value}}; None values are left out.

    Names may be written with dashes or underscores ("portrait-strength",
    "portrait_strength"). Raises ``KnobError`` naming the control.
    """
    by_name = {c.name: c for c in controls()}
    out: Overrides = {}
    for name, raw in values.items():
        if raw is None:
            continue
        spec = by_name.get(name.replace("_", "-"))
        if spec is None:
            raise KnobError(f"unknown control {name!r}; known: {', '.join(by_name)}")
        for region, knob_values in spec.sets(raw).items():
            out.setdefault(region, {}).update(knob_values)
    return out
