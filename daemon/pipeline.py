"""The portrait pipeline: segment, stylize twice, composite through the mask.

Why one class: it is the paper's method end to end, independent of which style
network or segmenter is plugged in. The daemon keeps one instance warm and calls
``run`` per job; the instance owns the style-encoding cache.

Order of work (each a ``ctx.stage`` so the host sees progress and a cancel takes
effect at the next boundary):

1. ``decode``: uint8 layer → float tensor, reduced to the working size.
2. ``segment``: person mask at full size (skipped for an artist's mask, for
   ``whole_image`` and when neither the mask nor the composite is wanted).
3. ``encode``: content encoded once for both passes; style from the cache.
4. ``transform``: both regions as ONE ``engine.stylize`` call (one batch).
5. ``upsample``: only when the layer exceeds ``max_working_pixels``.
6. ``compose``: full-size uint8 layers, the input's alpha copied into each.
7. ``encode_reply``: entered last; the server frames the reply during it.

The job's arrays are only ever read (bands are copied before becoming tensors).

A preview (``job.preview``, the long side) runs the same steps at the same
working size — the network paints strokes of a fixed size in its own pixels,
so that is what keeps a preview's strokes those of the final result — and does
everything else at the preview's size (or, for the portrait pass and the
guided filter, on a grid of half the working size): no full-resolution step.
What a job computed for a layer (its working-size copy, segmentation, faces,
network output) is kept for the next job on it (``reuse.py``) and listed in
``info["reused"]``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from ..protocol.constants import LAYER_NAMES
from ..protocol.request import preview_size
from .color import preserve_color, rgb_to_ycbcr, ycbcr_to_rgb
from .engines.base import RegionSettings, Segmenter, StyleEngine
from .jobspec import JobContext, StylizeJob, StylizeResult
from .mask import (
    MaskResult,
    MaskSettings,
    artist_mask,
    guide_for,
    person_probability,
    refine_probability,
)
from .portrait_pass import FaceFinder, FaceGeometry, blazeface_finder, keep_likeness
from .regions import preset
from .reuse import WorkCache, content_digest
from .sizing import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    GuidedUpsampling,
    TileSettings,
    guided_upsample_into,
    resize,
    row_bands,
    shrink_layer,
    stylize_tiled,
    to_uint8_hwc,
    uint8_band_to_float,
    working_size,
)
from .strokes import engine_key, stylize_regions
from .structure import keep_structure

__all__ = ["PortraitPipeline"]

#: styles larger than this are reduced before encoding (their texture scale is
#: what the networks were trained on at ~256-512 px; more only costs time)
STYLE_MAX_PIXELS = 1024 * 1024


class PortraitPipeline:
    """Portrait-aware style transfer over any ``StyleEngine`` and ``Segmenter``.

    max_working_pixels: default cap on the pixels the style network sees at once
        (a job may lower or raise it); larger layers go through ``sizing``.
    style_cache_size: style encodings kept (LRU, keyed by ``job.style_key``).
    sizing: "guided" (stylize at working size, guided upsampling) or "tiles".
    """

    def __init__(
        self,
        engine: StyleEngine,
        segmenter: Segmenter,
        *,
        max_working_pixels: int,
        style_cache_size: int = 8,
        sizing: str = DEFAULT_STRATEGY,
        mask_settings: MaskSettings | None = None,
        upsampling: GuidedUpsampling | None = None,
        tiles: TileSettings | None = None,
        reuse_bytes: int = 256 << 20,
    ) -> None:
        if sizing not in STRATEGIES:
            raise ValueError(f"unknown sizing strategy {sizing!r}; known: {', '.join(STRATEGIES)}")
        if max_working_pixels < 64 * 64:
            raise ValueError(f"max_working_pixels {max_working_pixels} is below 64²")
        self.engine = engine
        self.segmenter = segmenter
        self.max_working_pixels = int(max_working_pixels)
        self.sizing = sizing
        self.mask_settings = mask_settings or MaskSettings()
        self.upsampling = upsampling or GuidedUpsampling()
        self.tiles = tiles or TileSettings()
        self._style_cache: OrderedDict[str, Any] = OrderedDict()
        self._style_cache_size = max(0, style_cache_size)
        self._lock = threading.Lock()
        #: work shared between jobs on the same layer (previews, then Apply): daemon/reuse.py
        self._reuse = WorkCache(reuse_bytes)

    def describe(self) -> dict[str, Any]:
        """What the daemon's ``hello`` reports about the loaded models."""
        return {
            "engine": self.engine.describe(),
            "segmenter": {"name": self.segmenter.name, "device": str(self.segmenter.device)},
            "device": str(self.engine.device),
            "max_working_pixels": self.max_working_pixels,
            "sizing": self.sizing,
        }

    # ------------------------------------------------------------------ run

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult:
        """Stylize one layer; see the module docstring for the stages."""
        content = _check_image(job.content, "content", channels=(3, 4))
        style = _check_image(job.style, "style", channels=(3, 4))
        outputs = set(job.outputs)
        unknown = outputs - set(LAYER_NAMES)
        if unknown or not outputs:
            raise ValueError(f"outputs must be a non-empty subset of {', '.join(LAYER_NAMES)}; "
                             f"got {sorted(outputs)}")
        max_pixels = int(job.max_working_pixels or self.max_working_pixels)
        regions = self._regions(job)
        height, width = content.shape[:2]
        device = self.engine.device
        reused: list[str] = []

        with torch.inference_mode():
            ctx.stage("decode", 0.0)
            work_hw = working_size(height, width, max_pixels)
            needs_resize = work_hw != (height, width)
            keep_full = needs_resize and self.sizing == "tiles" and job.preview is None
            digest = content_digest(content) if self._reuse.max_bytes else ""
            full = uint8_band_to_float(content, 0, height, device) if keep_full else None
            small, hit = self._reuse.get_or_make(
                ("content", digest, work_hw),
                lambda: shrink_layer(content, work_hw, device) if needs_resize
                else uint8_band_to_float(content, 0, height, device))
            reused += ["content"] * hit
            # a preview is the full result made at the output's size: the same working
            # size (so the same strokes), only the steps at full resolution are scaled
            out_photo = content if job.preview is None else _preview_photo(
                content, small, job.preview, needs_resize, device)

            ctx.stage("segment", 0.1)
            mask_result = self._mask(job, content, small, out_photo, outputs, regions,
                                     digest, reused)

            passes = self._passes(job, outputs, mask_result)
            ctx.stage("encode", 0.3)
            layers_out: dict[str, np.ndarray] = {}
            if passes:
                style_state = self._style_state(job.style_key, style, reused)
                ctx.stage("transform", 0.4)
                settings = [regions[name] for name in passes]
                stylized, hit = self._reuse.get_or_make(
                    ("network", digest, work_hw, job.style_key,
                     tuple((s.stroke_size, engine_key(s)) for s in settings)),
                    lambda: stylize_regions(self.engine, small, style_state, settings))
                reused += ["network"] * hit
                expected = (len(passes), 3, *work_hw)
                if tuple(stylized.shape) != expected:
                    raise RuntimeError(f"engine {self.engine.name} returned "
                                       f"{tuple(stylized.shape)}, expected {expected}")
                stylized = _preserve(stylized, small, settings)
                stylized = _keep_structure(stylized, small, settings)
                out_hw = out_photo.shape[:2]
                # a preview at most half the working size: the rest runs on a grid of half
                # the working size (the portrait pass's bands scale with the faces, the
                # guided filter's window is halved), which costs a quarter
                halve = job.preview is not None and 2 * out_hw[0] <= work_hw[0]
                grid_hw = (work_hw[0] // 2, work_hw[1] // 2) if halve else work_hw
                photo = resize(small, grid_hw) if halve else small
                if halve:
                    stylized = resize(stylized.float(), grid_hw)
                stylized = keep_likeness(stylized, photo, settings, self.segmenter,
                                         mask_result.mask if mask_result else None,
                                         finder=self._face_finder(digest, small, reused),
                                         mask_settings=self.mask_settings)
                stylized = _saturate(stylized, settings)
                if not needs_resize or (job.preview is not None and out_hw == grid_hw):
                    if out_hw != grid_hw:  # a preview of a layer within the working size
                        stylized = resize(stylized.float(), out_hw)
                    for i, name in enumerate(passes):
                        layers_out[name] = _with_alpha(to_uint8_hwc(stylized[i:i + 1]),
                                                       out_photo)
                elif self.sizing == "tiles" and job.preview is None:
                    assert full is not None
                    layers_out = self._tiles(full, content, style_state, passes, settings,
                                             stylized, ctx)
                else:
                    ctx.stage("upsample", 0.7)
                    outs = [np.empty_like(out_photo) for _ in passes]
                    upsampling = self.upsampling
                    if halve:
                        upsampling = replace(upsampling, radius=max(1, upsampling.radius // 2))
                    guided_upsample_into(outs, stylized, out_photo, upsampling,
                                         photo_small=photo)
                    for name, out in zip(passes, outs, strict=True):
                        layers_out[name] = _with_alpha(out, out_photo)
                del stylized
            else:
                ctx.stage("transform", 0.4)
            full = None  # the float layer is large: let it go before composing

            ctx.stage("compose", 0.9)
            layers = self._compose(job, outputs, layers_out, mask_result, out_photo)

        ctx.stage("encode_reply", 0.97)
        info: dict[str, Any] = {
            "person_found": mask_result.person_found if mask_result else None,
            "person_fraction": mask_result.person_fraction if mask_result else None,
            "mask_source": mask_result.source if mask_result else None,
            "engine": self.engine.name,
            "segmenter": self.segmenter.name,
            "device": str(device),
            "working_size": [work_hw[1], work_hw[0]],
            "sizing": self.sizing if needs_resize else "none",
            "passes": list(passes),
            "regions": {name: asdict(value) for name, value in regions.items()},
            "reused": reused,
            "timings": dict(ctx.timings),
        }
        if job.preview is not None:
            info["preview"] = [int(out_photo.shape[1]), int(out_photo.shape[0])]
        return StylizeResult(layers=layers, info=info)

    # ------------------------------------------------------------------ steps

    def _regions(self, job: StylizeJob) -> dict[str, RegionSettings]:
        """The engine's presets overlaid with the job's (already checked) regions."""
        regions = preset(self.engine.name)
        for name, value in (job.regions or {}).items():
            if name not in regions:
                raise ValueError(f"unknown region {name!r}; known: {', '.join(regions)}")
            regions[name] = value
        return regions

    def _mask(self, job: StylizeJob, content: np.ndarray, small: torch.Tensor,
              out_photo: np.ndarray, outputs: set[str], regions: dict[str, RegionSettings],
              digest: str, reused: list[str]) -> MaskResult | None:
        """The person mask at the output's size (the layer's, or the preview's)."""
        height, width = out_photo.shape[:2]
        if job.whole_image:
            return MaskResult(mask=np.zeros((height, width), np.uint8), person_found=False,
                              person_fraction=0.0, source="whole_image")
        if job.mask is not None:
            mask = job.mask if job.preview is None else _shrink_plane(job.mask, (height, width))
            return artist_mask(mask, height, width)
        # the portrait pass eases its likeness over the person: it reads the same mask,
        # so a portrait asked for alone equals the one that comes with the mask
        likeness = "portrait" in outputs and regions["portrait"].likeness > 0
        if not outputs & {"mask", "composite"} and not likeness:
            return None
        settings = self.mask_settings

        def segment() -> tuple[torch.Tensor, torch.Tensor, Any]:
            guide = guide_for(content, self.segmenter.device, settings,
                              small.to(self.segmenter.device))
            return (guide, *person_probability(self.segmenter, content, guide, settings))

        (guide, prob, framed), hit = self._reuse.get_or_make(
            ("segmentation", digest, tuple(small.shape[-2:]), settings), segment)
        reused += ["segmentation"] * hit
        feather = settings.feather_px if job.mask_feather is None else job.mask_feather
        # the feather is in layer pixels: at a preview's size it is as much smaller
        settings = replace(settings, feather_px=feather * width / content.shape[1])
        fraction = float((prob >= 0.5).float().mean())
        if fraction < settings.min_person_fraction:
            return MaskResult(mask=np.zeros((height, width), np.uint8), person_found=False,
                              person_fraction=fraction, source="segmenter",
                              framed_box=framed.box)
        mask = refine_probability(prob, out_photo, settings, guide=guide,
                                  native_px=framed.native_px)
        return MaskResult(mask=mask, person_found=True, person_fraction=fraction,
                          source="segmenter", framed_box=framed.box)

    @staticmethod
    def _passes(job: StylizeJob, outputs: set[str], mask: MaskResult | None) -> list[str]:
        """Region passes the requested layers need (background first)."""
        if job.whole_image:
            return ["background"] if outputs - {"mask"} else []
        need_bg = "background" in outputs
        need_pt = "portrait" in outputs
        if "composite" in outputs and mask is not None:
            # a mask that is all one side needs only that side's pass
            need_bg = need_bg or bool((mask.mask < 255).any())
            need_pt = need_pt or bool(mask.mask.any())
        return [name for name, needed in (("background", need_bg), ("portrait", need_pt))
                if needed]

    def _face_finder(self, digest: str, small: torch.Tensor, reused: list[str]
                     ) -> FaceFinder | None:
        """BlazeFace on the working-size photo, found once per layer, scaled to any size.

        Faces are always found on the working-size photo (a preview's portrait
        pass runs at the preview's size: it gets the same faces, scaled), and
        kept for the next job on the layer. The person mask only narrows the
        finder's window search when no face is found on the whole frame.
        """
        finder = blazeface_finder(self.engine.device)
        if finder is None:
            return None
        work_hw = tuple(small.shape[-2:])

        def find(person: torch.Tensor | None) -> list[FaceGeometry]:
            if person is not None and tuple(person.shape[-2:]) != work_hw:
                person = resize(person.float().reshape(1, 1, *person.shape[-2:]), work_hw)
            return finder(small, person)

        def cached(photo: torch.Tensor, person: torch.Tensor | None) -> list[FaceGeometry]:
            faces, hit = self._reuse.get_or_make(("faces", digest, work_hw),
                                                 lambda: find(person))
            reused.extend(["faces"] * hit)
            scale = photo.shape[-1] / work_hw[1]
            return faces if scale == 1 else [_scaled_face(f, scale) for f in faces]

        return cached

    def _style_state(self, key: str, style: np.ndarray, reused: list[str]) -> Any:
        """Encode the style once per ``style_key`` (LRU of ``style_cache_size``)."""
        with self._lock:
            if key in self._style_cache:
                self._style_cache.move_to_end(key)
                reused.append("style")
                return self._style_cache[key]
        h, w = style.shape[:2]
        tensor = uint8_band_to_float(style, 0, h, self.engine.device)
        tensor = resize(tensor, working_size(h, w, STYLE_MAX_PIXELS))
        state = self.engine.encode_style(tensor)
        with self._lock:
            if self._style_cache_size:
                self._style_cache[key] = state
                while len(self._style_cache) > self._style_cache_size:
                    self._style_cache.popitem(last=False)
        return state

    def _tiles(self, full: torch.Tensor, content: np.ndarray, style_state: Any,
               passes: list[str], settings: list[RegionSettings], reference: torch.Tensor,
               ctx: JobContext) -> dict[str, np.ndarray]:
        """Full-resolution tiles sharing the working-size pass's low frequencies."""
        side = self.tiles.tile or int(self.max_working_pixels ** 0.5)
        overlap = max(8, int(side * self.tiles.overlap_fraction))

        def on_tile(i: int, n: int) -> None:
            ctx.stage("transform", 0.4 + 0.45 * i / max(1, n))

        result = stylize_tiled(self.engine, full, style_state, settings, side, overlap,
                               reference=reference, lowpass_sigma=self.tiles.lowpass_sigma,
                               on_tile=on_tile,
                               stylize_tile=lambda crop: stylize_regions(
                                   self.engine, crop, style_state, settings))
        result = _saturate(_preserve(result, full, settings), settings)
        return {name: _with_alpha(to_uint8_hwc(result[i:i + 1]), content)
                for i, name in enumerate(passes)}

    @staticmethod
    def _compose(job: StylizeJob, outputs: set[str], passes: dict[str, np.ndarray],
                 mask: MaskResult | None, content: np.ndarray) -> dict[str, np.ndarray]:
        layers: dict[str, np.ndarray] = {}
        if job.whole_image:
            for name in ("background", "portrait", "composite"):
                if name in outputs:
                    layers[name] = passes["background"] if not layers else passes[
                        "background"].copy()
        else:
            for name in ("background", "portrait"):
                if name in outputs:
                    layers[name] = passes[name]
            if "composite" in outputs:
                assert mask is not None
                layers["composite"] = _composite(passes.get("portrait"),
                                                 passes.get("background"), mask.mask, content)
        if "mask" in outputs:
            assert mask is not None
            layers["mask"] = mask.mask
        return layers


# ---------------------------------------------------------------------- helpers


def _scaled_face(face: FaceGeometry, scale: float) -> FaceGeometry:
    """A face found at the working size, in the pixels of an image ``scale`` times as big."""
    box = None if face.box is None else tuple(v * scale for v in face.box)
    return replace(face, cx=face.cx * scale, cy=face.cy * scale, rx=face.rx * scale,
                   ry=face.ry * scale, iod=face.iod * scale, box=box)


def _preview_photo(content: np.ndarray, small: torch.Tensor, long_side: int,
                   needs_resize: bool, device: torch.device) -> np.ndarray:
    """The layer at a preview's size (uint8, the layer's channels): the preview's guide."""
    height, width = content.shape[:2]
    pw, ph = preview_size(width, height, long_side)
    if needs_resize and ph <= small.shape[-2]:
        rgb = to_uint8_hwc(resize(small, (ph, pw)))  # never decode the full layer again
    else:
        rgb = to_uint8_hwc(resize(uint8_band_to_float(content, 0, height, device), (ph, pw)))
    if content.shape[2] == 3:
        return rgb
    out = np.empty((ph, pw, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = _shrink_plane(content[..., 3], (ph, pw))
    return out


def _shrink_plane(plane: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An H×W uint8 plane (alpha, mask) at ``hw``, antialiased; decimated first when huge."""
    if plane.shape == hw:
        return plane
    step = max(1, min(plane.shape[0] // hw[0], plane.shape[1] // hw[1]) // 2)
    small = torch.from_numpy(np.array(plane[::step, ::step], copy=True)).float()
    out = resize(small[None, None], hw)[0, 0]
    return out.round_().clamp_(0, 255).to(torch.uint8).numpy()


def _check_image(array: np.ndarray, what: str, channels: tuple[int, ...]) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 array")
    if array.ndim != 3 or array.shape[2] not in channels or 0 in array.shape:
        raise ValueError(f"{what} must be H×W×{'/'.join(map(str, channels))}, "
                         f"got {array.shape}")
    return array


def _preserve(stylized: torch.Tensor, photo: torch.Tensor,
              settings: list[RegionSettings]) -> torch.Tensor:
    """Apply preserve-colour to the regions that ask for it."""
    if not any(s.preserve_color for s in settings):
        return stylized
    out = stylized.clone()
    for i, s in enumerate(settings):
        if s.preserve_color:
            out[i:i + 1] = preserve_color(stylized[i:i + 1], photo)
    return out


def _saturate(stylized: torch.Tensor, settings: list[RegionSettings]) -> torch.Tensor:
    """Scale the chroma of the regions whose ``saturation`` is not 1 (0 = grey)."""
    if all(s.saturation == 1.0 for s in settings):
        return stylized
    out = stylized.clone()
    for i, s in enumerate(settings):
        if s.saturation != 1.0:
            ycc = rgb_to_ycbcr(stylized[i:i + 1].float())
            ycc[:, 1:] *= s.saturation
            out[i:i + 1] = ycbcr_to_rgb(ycc).clamp_(0, 1).to(out.dtype)
    return out


def _keep_structure(stylized: torch.Tensor, photo: torch.Tensor,
                    settings: list[RegionSettings]) -> torch.Tensor:
    """Pull the regions that ask for it onto the photo's edges."""
    if not any(s.structure > 0 for s in settings):
        return stylized
    out = stylized.clone()
    for i, s in enumerate(settings):
        out[i:i + 1] = keep_structure(stylized[i:i + 1], photo, s.structure)
    return out


def _with_alpha(rgb: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Give an RGB (or RGBA buffer) result the content's alpha, if it has one."""
    if content.shape[2] == 4:
        if rgb.shape[2] == 3:
            out = np.empty(content.shape, np.uint8)
            out[..., :3] = rgb
            rgb = out
        rgb[..., 3] = content[..., 3]
        return rgb
    return rgb[..., :3] if rgb.shape[2] != 3 else rgb


def _composite(portrait: np.ndarray | None, background: np.ndarray | None, mask: np.ndarray,
               content: np.ndarray) -> np.ndarray:
    """Portrait over background through the mask, in row bands; alpha from content."""
    if portrait is None or background is None:
        only = portrait if portrait is not None else background
        assert only is not None
        return only.copy()
    height, width = mask.shape
    out = np.empty_like(portrait)
    for y0, y1 in row_bands(height, width):
        m = torch.from_numpy(mask[y0:y1].astype(np.float32) / 255.0)[..., None]
        p = torch.from_numpy(portrait[y0:y1, :, :3].astype(np.float32))
        b = torch.from_numpy(background[y0:y1, :, :3].astype(np.float32))
        out[y0:y1, :, :3] = (b + (p - b) * m).round_().clamp_(0, 255).to(torch.uint8).numpy()
    if content.shape[2] == 4:
        out[..., 3] = content[..., 3]
    return out
