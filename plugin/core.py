"""The host-agnostic plug-in core: what the artist chose → request → layer plan.

Why: GIMP, Krita and the command line all do the same thing — read a layer,
send it with a style to the daemon, turn the reply into the layer contract of
DESIGN.md §3 — and differ only in how pixels get in and layers get out. That
difference is the ``Document`` interface (``plugin/document.py``); the job's
life on a worker thread is ``plugin/job.py``; everything else lives here.

Editor-safe: the standard library, pyzmq and msgpack only (no numpy, Pillow or
torch). Pixels are ``protocol.messages.Pixels`` (8-bit, interleaved, RGB order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol import knobs
from ..protocol.constants import LAYER_NAMES
from ..protocol.errors import WireError
from ..protocol.messages import Pixels
from ..protocol.request import JobParams, preview_size
from .pixels import alpha_of, with_alpha
from .record import JobRecord

__all__ = [
    "OptionError", "PlanError", "StylizeOptions", "SourceLayer", "PlannedLayer", "LayerPlan",
    "parse_param", "parse_params", "plan_layers", "notices", "group_name",
    "readable_style_name", "PORTRAIT_LAYER", "BACKGROUND_LAYER", "MASK_LAYER",
    "REGION_LAYERS", "GROUP_PREFIX",
]

#: the layer names of the contract (what the artist sees in the layer panel)
PORTRAIT_LAYER = "Portrait"
BACKGROUND_LAYER = "Background"
MASK_LAYER = "Person mask"
#: region name → the layer a re-run of that region replaces
REGION_LAYERS: dict[str, str] = {"portrait": PORTRAIT_LAYER, "background": BACKGROUND_LAYER}
GROUP_PREFIX = "Portrait style — "


class OptionError(ValueError):
    """A user-supplied option is invalid; the message says which and why."""


class PlanError(ValueError):
    """The daemon's reply does not fit the source layer (wrong size, missing layer)."""


def parse_param(text: str) -> tuple[str, str, float | bool]:
    """Parse ``REGION.KNOB=VALUE`` (e.g. ``portrait.strength=0.4``) into typed parts."""
    try:
        return knobs.parse_param(text)
    except knobs.KnobError as exc:
        raise OptionError(f"--param {exc}") from None


def parse_params(texts: Iterable[str]) -> dict[str, dict[str, float | bool]]:
    """Parse many ``--param`` values into {region: {knob: value}}; later ones win."""
    try:
        return knobs.parse_params(texts)
    except knobs.KnobError as exc:
        raise OptionError(f"--param {exc}") from None


def readable_style_name(path: str | Path) -> str:
    """A painting's file name as a person would write it: ``starry_night.jpg`` → "Starry Night".

    Underscores, dashes and dots become spaces; an all-lowercase name gets
    capitals, a name the artist already capitalised is kept as written.
    """
    stem = Path(path).stem
    words = [w for w in re.split(r"[_\-.\s]+", stem) if w]
    if not words:
        return stem or "style"
    text = " ".join(words)
    return text.title() if text == text.lower() else text


def group_name(style_name: str) -> str:
    """The group's name, as DESIGN.md §3 fixes it."""
    return f"{GROUP_PREFIX}{style_name}"


@dataclass
class StylizeOptions:
    """Everything the artist chose, independent of the host's dialog.

    Knobs are set through the knob table's controls (``protocol.knobs.controls``):
    ``controls`` maps a control's name to its value ({"portrait-strength": 0.4,
    "stroke-size": 2.0}); a dialog built from the table fills it as it is. The
    keyword fields ``background_strength`` … ``stroke_size`` are the same
    controls by their ``attr`` (what hosts written before the table pass) and
    win over ``controls``. Unset (None) controls are not sent: the daemon's
    defaults apply. ``region_overrides`` (``--param``) win over both.
    ``style_name`` defaults to the style file's readable name.
    """

    style_path: Path | None = None
    style_name: str | None = None
    background_strength: float | None = None
    portrait_strength: float | None = None
    preserve_color: bool | None = None
    likeness: float | None = None
    stroke_size: float | None = None
    controls: dict[str, float | bool | None] = field(default_factory=dict)
    region_overrides: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    whole_image: bool = False
    outputs: tuple[str, ...] = LAYER_NAMES
    max_working_pixels: int | None = None
    mask_feather: float | None = None
    #: long side of a preview (``plugin/preview.py``); None: the full result
    preview: int | None = None

    def display_style_name(self) -> str:
        """The style's name for the layer group ("Portrait style — <name>")."""
        if self.style_name:
            return self.style_name
        if self.style_path is not None:
            return readable_style_name(self.style_path)
        return "style"

    def regions(self) -> dict[str, dict[str, float | bool]]:
        """The per-region knobs to send: only what the artist actually set."""
        values: dict[str, Any] = {name.replace("_", "-"): value
                                  for name, value in self.controls.items()}
        for name in _CONTROL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                values[name.replace("_", "-")] = value
        try:
            out = knobs.regions_from_controls(values)
            for region, overrides in knobs.typed_overrides(self.region_overrides).items():
                out.setdefault(region, {}).update(overrides)
        except knobs.KnobError as exc:
            raise OptionError(str(exc)) from None
        return out

    def params(self) -> JobParams:
        """The checked request parameters (``OptionError`` in the artist's words).

        A portrait always comes with its mask: the contract gives the Portrait
        layer the person mask as its layer mask.
        """
        outputs = tuple(dict.fromkeys(self.outputs))
        if "portrait" in outputs and "mask" not in outputs and not self.whole_image:
            outputs = (*outputs, "mask")
        try:
            return JobParams(regions=self.regions(), outputs=outputs,
                             whole_image=self.whole_image,
                             max_working_pixels=self.max_working_pixels,
                             mask_feather=self.mask_feather, preview=self.preview).check()
        except WireError as exc:
            raise OptionError(exc.message) from None


@dataclass
class SourceLayer:
    """The layer the artist stylizes, as the host hands it to the core.

    pixels: 8-bit RGB or RGBA in RGB order (hosts convert other depths and
        colour models on a copy, and say so in ``notes``).
    offset: (x, y) of its top-left corner on the canvas.
    layer_id: the host's stable id for the layer (re-runs find it again).
    """

    name: str
    pixels: Pixels
    offset: tuple[int, int] = (0, 0)
    layer_id: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.width, self.pixels.height

    @property
    def alpha(self) -> Pixels | None:
        return alpha_of(self.pixels)


@dataclass
class PlannedLayer:
    """One layer to create: full frame, the source's channels, optional layer mask."""

    name: str
    pixels: Pixels
    mask: Pixels | None = None
    opacity: float = 1.0
    visible: bool = True


@dataclass
class LayerPlan:
    """The layer contract for one reply: a group above the source, layers top first.

    ``layers`` is [Portrait (with the person mask as its layer mask), Background]
    or the subset the request asked for. ``composite`` is the daemon's own
    composite when it was asked for (the command-line host writes it).
    ``record`` is what the host stores with the group.
    """

    group_name: str
    source_name: str
    offset: tuple[int, int]
    size: tuple[int, int]
    layers: list[PlannedLayer]
    mask: Pixels | None
    composite: Pixels | None
    record: JobRecord | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> PlannedLayer:
        for planned in self.layers:
            if planned.name == name:
                return planned
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.layers)


#: the keyword fields of ``StylizeOptions`` that are knob-table controls (by ``attr``)
_CONTROL_FIELDS: tuple[str, ...] = ("background_strength", "portrait_strength", "preserve_color",
                                    "likeness", "stroke_size")


def _as_pixels(image: Any) -> Pixels:
    return image if isinstance(image, Pixels) else Pixels.coerce(image)


def _fit(image: Any, what: str, size: tuple[int, int], alpha: Pixels | None,
         channels: int | None = None) -> Pixels:
    """Check a returned image's size and give it exactly the source's channels.

    channels: for a preview, the channels the daemon must have sent (it scaled
    the source's alpha down itself); the image is then taken as it is.
    """
    pixels = _as_pixels(image)
    width, height = size
    if pixels.channels not in (3, 4):
        raise PlanError(f"daemon returned {what} with {pixels.channels} channel(s), "
                        "expected RGB or RGBA")
    if (pixels.width, pixels.height) != (width, height):
        raise PlanError(f"daemon returned {what} at {pixels.width}×{pixels.height}, "
                        f"the {'preview' if channels else 'layer'} is {width}×{height}")
    if channels is not None:
        if pixels.channels != channels:
            raise PlanError(f"daemon returned the {what} preview with {pixels.channels} "
                            f"channel(s), the layer has {channels}")
        return pixels
    return with_alpha(pixels, alpha)


def _fit_mask(image: Any, size: tuple[int, int]) -> Pixels:
    pixels = _as_pixels(image)
    if pixels.channels != 1 or (pixels.width, pixels.height) != size:
        raise PlanError(f"daemon returned a mask of {pixels.width}×{pixels.height}×"
                        f"{pixels.channels}, expected {size[0]}×{size[1]}×1")
    return pixels


def plan_layers(reply: Any, source: SourceLayer, style_name: str, *,
                whole_image: bool = False, record: JobRecord | None = None,
                preview: int | None = None) -> LayerPlan:
    """Turn a daemon reply (``.layers``, ``.info``) into the layers a host creates.

    Every returned image must match the source's size. The source's alpha is
    put back on every image layer, so a cut-out layer stays cut out. Missing
    layers are allowed (a request may ask for a subset), but a reply must hold
    at least one of the requested layers.

    preview: the reply is a preview with this long side (``JobParams.preview``):
    its images must be ``preview_size`` and carry the source's channels (the
    daemon scaled the alpha with them); ``LayerPlan.size`` is the preview's.
    """
    layers_in: Mapping[str, Any] = getattr(reply, "layers", None) or {}
    info = dict(getattr(reply, "info", None) or {})
    size, alpha, channels = source.size, source.alpha, None
    if preview is not None:
        size, channels = preview_size(*source.size, preview), source.pixels.channels
    mask = _fit_mask(layers_in["mask"], size) if "mask" in layers_in else None
    planned: list[PlannedLayer] = []
    if "portrait" in layers_in:
        planned.append(PlannedLayer(PORTRAIT_LAYER, _fit(layers_in["portrait"], "portrait",
                                                          size, alpha, channels), mask=mask))
    if "background" in layers_in:
        planned.append(PlannedLayer(BACKGROUND_LAYER, _fit(layers_in["background"],
                                                            "background", size, alpha,
                                                            channels)))
    composite = (_fit(layers_in["composite"], "composite", size, alpha, channels)
                 if "composite" in layers_in else None)
    if not planned and composite is None and mask is None:
        raise PlanError("daemon reply holds none of the requested layers")
    if whole_image:
        info.setdefault("whole_image", True)
    name = group_name(style_name) + (" (whole image)" if whole_image else "")
    if record is not None:
        record.engine = str(info.get("engine", record.engine) or "")
    return LayerPlan(group_name=name, source_name=source.name,
                     offset=(int(source.offset[0]), int(source.offset[1])),
                     size=(int(size[0]), int(size[1])), layers=planned, mask=mask,
                     composite=composite, record=record, info=info)


def notices(info: Mapping[str, Any], source: SourceLayer | None = None) -> list[str]:
    """Things the artist should be told about a finished job (the host shows them)."""
    out: list[str] = list(source.notes) if source is not None else []
    if info.get("person_found") is False and not info.get("whole_image"):
        out.append("no person was found: the mask is empty, so the result is the background "
                   "style everywhere (paint the Portrait layer's mask to bring the portrait in)")
    out.extend(str(n) for n in info.get("notices", []) if isinstance(n, str))
    return out
