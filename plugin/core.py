"""The host-agnostic plug-in core: options → request → daemon → layer plan → host.

Why: GIMP, Krita and the command line all do the same thing — read the active
layer, send it with a style to the daemon, turn the reply into the layer
contract of DESIGN.md §3 — and differ only in how pixels get in and layers get
out. That difference is the small ``Document`` protocol below; everything else
lives here, runs in plain pytest, and never imports torch, Pillow or the daemon
(inside an editor only pyzmq, msgpack and numpy are guaranteed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..protocol import knobs
from ..protocol.constants import (
    LAYER_NAMES,
    MAX_MASK_FEATHER,
    MIN_WORKING_PIXELS,
    REGION_NAMES,
)
from ..protocol.errors import CANCELLED, Cancelled

__all__ = [
    "OptionError", "PlanError", "ProgressFn", "StylizeOptions", "StylizeRequest",
    "SourceLayer", "PlannedLayer", "LayerPlan", "Document", "StylizeOutcome",
    "parse_param", "parse_params", "build_request", "plan_layers", "run_stylize",
    "compose", "notices", "group_name", "PORTRAIT_LAYER", "BACKGROUND_LAYER", "MASK_LAYER",
]

ProgressFn = Callable[[str, float], None]

#: the layer names of the contract (what the artist sees in the layer panel)
PORTRAIT_LAYER = "Portrait"
BACKGROUND_LAYER = "Background"
MASK_LAYER = "Person mask"


class OptionError(ValueError):
    """A user-supplied option is invalid; the message says which and why."""


def _checked(parse: Callable[..., Any], *args: Any) -> Any:
    """Run a knob parser, reporting its complaint as an ``OptionError``."""
    try:
        return parse(*args)
    except knobs.KnobError as exc:
        raise OptionError(str(exc)) from None


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


@dataclass
class StylizeOptions:
    """Everything the artist chose, independent of the host's dialog.

    Unset (None) knobs are not sent: the daemon's defaults (its presets for the
    background and portrait passes) apply. ``region_overrides`` (from
    ``--param``) win over the convenience fields.

    style_path / style_pixels: the style painting; hosts that cannot decode
        files themselves pass a path and a loader to ``run_stylize``.
    style_name: shown in the group name; defaults to the style file's stem.
    mask: an artist-supplied H×W uint8 person mask used instead of segmenting.
    outputs: which of LAYER_NAMES to ask for.
    """

    style_path: Path | None = None
    style_pixels: np.ndarray | None = None
    style_name: str | None = None
    background_strength: float | None = None
    portrait_strength: float | None = None
    preserve_color: bool = False
    region_overrides: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    mask: np.ndarray | None = None
    whole_image: bool = False
    outputs: tuple[str, ...] = LAYER_NAMES
    max_working_pixels: int | None = None
    mask_feather: float | None = None

    def display_style_name(self) -> str:
        """The style's name for the layer group ("Portrait style — <name>")."""
        if self.style_name:
            return self.style_name
        if self.style_path is not None:
            return Path(self.style_path).stem
        return "style"

    def regions(self) -> dict[str, dict[str, float | bool]]:
        """The per-region knobs to send: only what the artist actually set."""
        out: dict[str, dict[str, float | bool]] = {}
        for region, strength in (("background", self.background_strength),
                                 ("portrait", self.portrait_strength)):
            if strength is not None:
                out.setdefault(region, {})["strength"] = _checked(
                    knobs.knob_value, "strength", strength, f"--{region}-strength")
        if self.preserve_color:
            for region in REGION_NAMES:
                out.setdefault(region, {})["preserve_color"] = True
        for region, values in _checked(knobs.typed_overrides, self.region_overrides).items():
            out.setdefault(region, {}).update(values)
        return out


@dataclass
class StylizeRequest:
    """A checked request, ready for ``DaemonClient.stylize(**request.kwargs())``."""

    content: np.ndarray
    style: np.ndarray
    regions: dict[str, dict[str, float | bool]]
    outputs: tuple[str, ...]
    mask: np.ndarray | None = None
    whole_image: bool = False
    max_working_pixels: int | None = None
    mask_feather: float | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``DaemonClient.stylize`` (progress/cancel added by caller)."""
        return {"content": self.content, "style": self.style, "mask": self.mask,
                "regions": self.regions or None, "outputs": self.outputs,
                "whole_image": self.whole_image,
                "max_working_pixels": self.max_working_pixels,
                "mask_feather": self.mask_feather}


def _check_pixels(arr: np.ndarray, what: str, channels: Sequence[int]) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        raise OptionError(f"{what} must be a uint8 array")
    if arr.ndim != 3 or arr.shape[2] not in channels or 0 in arr.shape[:2]:
        want = " or ".join(f"H×W×{c}" for c in channels)
        raise OptionError(f"{what} must be {want}, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def build_request(content: np.ndarray, options: StylizeOptions,
                  style: np.ndarray | None = None) -> StylizeRequest:
    """Check the pixels and options and assemble the daemon request.

    ``style`` overrides ``options.style_pixels`` (hosts that load the style file
    themselves pass it here).
    """
    content = _check_pixels(content, "the content layer", (3, 4))
    style_px = style if style is not None else options.style_pixels
    if style_px is None:
        raise OptionError("no style image given")
    style_px = _check_pixels(style_px, "the style image", (3, 4))
    if style_px.shape[2] == 4:  # a painting's transparency means nothing to the style
        style_px = np.ascontiguousarray(style_px[..., :3])
    mask = options.mask
    if mask is not None:
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[..., 0]
        if mask.dtype != np.uint8 or mask.ndim != 2:
            raise OptionError(f"the mask must be H×W uint8, got {mask.dtype} {mask.shape}")
        if mask.shape != content.shape[:2]:
            raise OptionError(f"the mask is {mask.shape[1]}×{mask.shape[0]} but the content is "
                              f"{content.shape[1]}×{content.shape[0]}")
        mask = np.ascontiguousarray(mask)
    outputs = tuple(dict.fromkeys(options.outputs))
    unknown = [o for o in outputs if o not in LAYER_NAMES]
    if unknown or not outputs:
        raise OptionError(f"outputs must be some of {', '.join(LAYER_NAMES)}; got "
                          f"{', '.join(outputs) or 'none'}")
    mwp = options.max_working_pixels
    if mwp is not None and mwp < MIN_WORKING_PIXELS:
        raise OptionError(f"max working pixels must be at least {MIN_WORKING_PIXELS}, "
                          f"got {mwp}")
    feather = options.mask_feather
    if feather is not None and not 0 <= feather <= MAX_MASK_FEATHER:
        raise OptionError(f"the mask feather must be 0..{MAX_MASK_FEATHER:g} px, got {feather:g}")
    return StylizeRequest(content=content, style=style_px, regions=options.regions(),
                          outputs=outputs, mask=mask, whole_image=options.whole_image,
                          max_working_pixels=mwp, mask_feather=feather)


@dataclass
class SourceLayer:
    """The layer the artist stylizes, as the host hands it to the core.

    pixels: H×W×3 or H×W×4 uint8 (RGB order); offset: (x, y) of its top-left
    corner on the canvas.
    """

    name: str
    pixels: np.ndarray
    offset: tuple[int, int] = (0, 0)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def alpha(self) -> np.ndarray | None:
        return self.pixels[..., 3] if self.pixels.shape[2] == 4 else None


@dataclass
class PlannedLayer:
    """One layer to create: full frame, the source's channels, optional layer mask."""

    name: str
    pixels: np.ndarray
    mask: np.ndarray | None = None
    opacity: float = 1.0
    visible: bool = True


@dataclass
class LayerPlan:
    """The layer contract for one reply: a group above the source, layers top first.

    ``layers`` is [Portrait (with the person mask as layer mask), Background].
    ``mask`` and ``composite`` are kept for hosts that also want them as files.
    """

    group_name: str
    source_name: str
    offset: tuple[int, int]
    size: tuple[int, int]
    layers: list[PlannedLayer]
    mask: np.ndarray | None
    composite: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)
    mask_name: str = MASK_LAYER

    def layer(self, name: str) -> PlannedLayer:
        for planned in self.layers:
            if planned.name == name:
                return planned
        raise KeyError(name)


def group_name(style_name: str) -> str:
    """The group's name, as DESIGN.md §3 fixes it."""
    return f"Portrait style — {style_name}"


def _fit(arr: np.ndarray, what: str, size: tuple[int, int],
         alpha: np.ndarray | None) -> np.ndarray:
    """Check a returned image's size and give it exactly the source's channels."""
    width, height = size
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise PlanError(f"daemon returned {what} as {arr.dtype} {arr.shape}, "
                        f"expected H×W×3/4 uint8")
    if arr.shape[:2] != (height, width):
        raise PlanError(f"daemon returned {what} at {arr.shape[1]}×{arr.shape[0]}, "
                        f"the layer is {width}×{height}")
    rgb = arr[..., :3]
    if alpha is None:
        return np.ascontiguousarray(rgb)
    # the source's alpha, exactly: stylizing must not change what is transparent
    return np.ascontiguousarray(np.concatenate([rgb, alpha[..., None]], axis=2))


def _fit_mask(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    width, height = size
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape != (height, width):
        raise PlanError(f"daemon returned a mask of {arr.dtype} {arr.shape}, "
                        f"expected {height}×{width} uint8")
    return np.ascontiguousarray(arr)


def compose(background: np.ndarray, portrait: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend portrait over background through the mask (255 = portrait), alpha kept.

    The same picture the editor shows for the group, used when the daemon was
    not asked for its own composite.
    """
    m = mask.astype(np.uint32)[..., None]
    rgb = (portrait[..., :3].astype(np.uint32) * m
           + background[..., :3].astype(np.uint32) * (255 - m) + 127) // 255
    out = rgb.astype(np.uint8)
    if background.shape[2] == 4:
        out = np.concatenate([out, background[..., 3:4]], axis=2)
    return out


def plan_layers(reply: Any, source_name: str, style_name: str, offset: tuple[int, int],
                size: tuple[int, int], source_alpha: np.ndarray | None = None, *,
                whole_image: bool = False) -> LayerPlan:
    """Turn a daemon reply (``.layers``, ``.info``) into the layers a host creates.

    size = (width, height) of the source layer; every returned image must match
    it. ``source_alpha`` (H×W uint8) is put back on every image layer, so a
    cut-out layer stays cut out. Missing layers are allowed (a request may ask
    for a subset) but a reply must contain at least one of background/portrait.
    """
    layers_in: Mapping[str, np.ndarray] = getattr(reply, "layers", None) or {}
    info = dict(getattr(reply, "info", None) or {})
    if source_alpha is not None and source_alpha.shape != (size[1], size[0]):
        raise PlanError("source alpha does not match the layer size")
    mask = _fit_mask(layers_in["mask"], size) if "mask" in layers_in else None
    planned: list[PlannedLayer] = []
    if "portrait" in layers_in:
        planned.append(PlannedLayer(PORTRAIT_LAYER,
                                    _fit(layers_in["portrait"], "portrait", size, source_alpha),
                                    mask=mask))
    if "background" in layers_in:
        planned.append(PlannedLayer(BACKGROUND_LAYER,
                                    _fit(layers_in["background"], "background", size,
                                         source_alpha)))
    composite = (_fit(layers_in["composite"], "composite", size, source_alpha)
                 if "composite" in layers_in else None)
    if not planned and composite is None and mask is None:
        raise PlanError("daemon reply holds none of the requested layers")
    if whole_image:
        info.setdefault("whole_image", True)
    name = group_name(style_name) + (" (whole image)" if whole_image else "")
    return LayerPlan(group_name=name, source_name=source_name,
                     offset=(int(offset[0]), int(offset[1])),
                     size=(int(size[0]), int(size[1])), layers=planned, mask=mask,
                     composite=composite, info=info)


def notices(info: Mapping[str, Any]) -> list[str]:
    """Things the artist should be told about a finished job (host shows them)."""
    out: list[str] = []
    if info.get("person_found") is False and not info.get("whole_image"):
        out.append("no person was found: the mask is empty, so the result is the "
                   "background style everywhere (paint the mask, or pass --mask)")
    return out


@runtime_checkable
class Document(Protocol):
    """What a host implements so the core can run in it (kept deliberately tiny)."""

    def active_layer(self) -> SourceLayer:
        """The layer to stylize: name, RGB(A) uint8 pixels, canvas offset."""
        ...

    def add_layer_group(self, plan: LayerPlan, above: SourceLayer) -> None:
        """Create the plan's group directly above ``above``, in ONE undo step.

        Must not modify the source layer.
        """
        ...


class StylizeClient(Protocol):
    """The part of ``protocol.client.DaemonClient`` the core uses."""

    def stylize(self, content: np.ndarray, style: np.ndarray, **kwargs: Any) -> Any: ...


@dataclass
class StylizeOutcome:
    """What ``run_stylize`` did: the plan applied and the notices to show."""

    plan: LayerPlan
    source: SourceLayer
    notices: list[str]


def run_stylize(document: Document, options: StylizeOptions, client: StylizeClient,
                on_progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, *,
                load_image: Callable[[Path], np.ndarray] | None = None,
                timeout_s: float | None = None) -> StylizeOutcome:
    """Read the active layer, stylize it on the daemon, add the result group.

    Errors from the client (unreachable daemon, daemon error, cancel) propagate
    unchanged: the host decides how to show them. Nothing is added to the
    document unless the whole reply arrived and fits.
    """
    source = document.active_layer()
    style = options.style_pixels
    if style is None:
        if options.style_path is None:
            raise OptionError("no style image given")
        if load_image is None:
            raise OptionError("this host needs the style as pixels (no image loader)")
        style = load_image(Path(options.style_path))
    request = build_request(source.pixels, options, style)
    if cancel is not None and cancel.is_set():  # cancelled while we read pixels
        raise Cancelled(CANCELLED, "cancelled before the job was sent")
    reply = client.stylize(**request.kwargs(), on_progress=on_progress, cancel=cancel,
                           timeout_s=timeout_s)
    plan = plan_layers(reply, source.name, options.display_style_name(), source.offset,
                       source.size, source.alpha, whole_image=request.whole_image)
    document.add_layer_group(plan, source)
    return StylizeOutcome(plan=plan, source=source, notices=notices(plan.info))
