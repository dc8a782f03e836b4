"""The person mask: a segmenter's coarse probability made to follow the photo.

Why: person segmenters work at a small native size (MediaPipe's selfie model at
256²). Upsampled as is, their probability is a soft blob whose border wanders
across hair and shoulders by several full-resolution pixels, which shows as a
halo once the two region passes are composited. A guided filter (He et al.)
with the photo as guide turns that blob into a mask whose transitions sit on the
photo's own edges. It is run at a guide resolution (≤ ``guide_long_side``) and
its smooth linear coefficients are upsampled and applied to the full-resolution
photo band by band (the "fast guided filter"), so a 16 MP layer costs about as
much as a 1 MP one.

Clean-up before refinement (``clean_probability``, at the segmenter's native
size, so it costs well under a millisecond of pooling), two rules:

* **Only what is connected to the person is the person.** Regions above 0.5
  are labelled; those smaller than ``blob_share`` of the largest are dropped,
  and every value further than ``support_native`` native pixels from what is
  kept is zeroed — stray blobs and detached grey haze go, while the soft
  fringe around the person (hair) is untouched. A held object (a helmet, a
  camera) follows the same rule: it is part of the portrait when the segmenter
  joins it to the person, background when it stands apart.
* **Low confidence at the frame's edge is background.** Within ``edge_band``
  (a share of the short side) of the border, values below ``edge_threshold``
  are faded out, fully at the border and not at all at the band's inner side:
  the selfie model leaves half-transparent smears where the background runs
  off the frame, while a body cut by the frame is confidently person there.

Framing (``framing.py``): the segmenter first sees the whole frame; a person
who fills less than ``reframe_max_share`` of it is segmented again on their
own box, so a full-body or seated person in a wide frame gets solid limbs
instead of grey ones. The clean-up and the refinement then run on the guide
grid, their sizes kept in the segmenter's native pixels.

No person: if almost nothing crosses probability 0.5, the mask is empty and
``person_found`` is False, so the host can tell the user instead of showing a
portrait layer that covers a random patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from .engines.base import Segmenter
from .framing import Box, FramedProbability, framed_probability
from .sizing import (
    guided_coefficients,
    lowpass,
    resample_window,
    resize,
    row_bands,
    uint8_band_to_float,
)

__all__ = ["MaskResult", "MaskSettings", "artist_mask", "clean_probability", "component_areas",
           "feather", "guide_for", "keep_large_components", "person_mask", "person_probability",
           "refine_probability"]


@dataclass(frozen=True)
class MaskSettings:
    """Knobs of the mask refinement.

    guide_long_side: longer side of the grid the guided filter's coefficients are
        computed on; they are applied to the photo at full resolution, so edges
        stay sharp. 512 instead of 1024 costs 57 instead of 350 ms at 1024² (the
        mask's IoU with the 1024 grid's 0.992, mean difference 1.3/255, the
        differences in the segmenter's own low-confidence areas).
    radius_native: filter radius in the segmenter's native pixels: the coarse
        border is uncertain by about that much, so the window must reach across it.
    eps: guided-filter regulariser (guide in 0..1); smaller follows weaker edges.
    contrast: slope of a linear stretch around 0.5 after filtering (1 = none);
        > 1 tightens the soft band left where the photo has no edge to follow.
    feather_px: Gaussian sigma, in full-resolution pixels, applied last.
    min_person_fraction: share of the frame that must reach probability 0.5
        for a person to count as found.
    blob_share: regions above 0.5 smaller than this share of the largest are dropped.
    support_native: how far (native pixels) from the kept regions soft values survive.
    edge_band: width of the frame-edge band, as a share of the short side (0 = off).
    edge_threshold: inside that band, values below this fade out.
    reframe_max_share: a person whose box (with its margin) covers less than this
        share of the frame is segmented again on that box (0 = never).
    reframe_margin: margin around the person's box, a share of its longer side.
    reframe_threshold: probability from which a pixel counts toward the box
        (below 0.5, so limbs the whole-frame pass left grey are inside it).
    """

    guide_long_side: int = 512
    radius_native: float = 3.0
    eps: float = 1e-3
    contrast: float = 1.5
    feather_px: float = 0.0
    min_person_fraction: float = 0.005
    blob_share: float = 0.1
    support_native: int = 4
    edge_band: float = 0.08
    edge_threshold: float = 0.75
    reframe_max_share: float = 0.5
    reframe_margin: float = 0.25
    reframe_threshold: float = 0.25


@dataclass
class MaskResult:
    """uint8 H×W mask plus what the host should know about it."""

    mask: np.ndarray
    person_found: bool
    person_fraction: float
    source: str  # "segmenter" | "artist"
    framed_box: Box | None = None  # guide-grid box the segmenter was reframed on


def artist_mask(mask: np.ndarray, height: int, width: int) -> MaskResult:
    """Use the artist's painted mask as is (checked, never altered)."""
    if mask.shape != (height, width) or mask.dtype != np.uint8:
        raise ValueError(f"mask must be {height}×{width} uint8, got {mask.shape} {mask.dtype}")
    fraction = float(np.count_nonzero(mask >= 128)) / mask.size
    return MaskResult(mask=mask, person_found=fraction > 0.0, person_fraction=fraction,
                      source="artist")


def person_mask(
    segmenter: Segmenter,
    photo: np.ndarray,
    photo_small: torch.Tensor | None = None,
    settings: MaskSettings = MaskSettings(),
) -> MaskResult:
    """Segment ``photo`` (H×W×≥3 uint8) and return the refined full-size mask.

    photo_small: the photo already reduced for the style pass ([1,3,h,w] 0..1);
    reused as the segmenter's input so the full-resolution photo is decoded
    only band by band here.
    """
    height, width = photo.shape[:2]
    guide = guide_for(photo, segmenter.device, settings, photo_small)
    prob, framed = person_probability(segmenter, photo, guide, settings)
    fraction = float((prob >= 0.5).float().mean())
    if fraction < settings.min_person_fraction:
        empty = np.zeros((height, width), dtype=np.uint8)
        return MaskResult(mask=empty, person_found=False, person_fraction=fraction,
                          source="segmenter", framed_box=framed.box)
    mask = refine_probability(prob, photo, settings, guide=guide, native_px=framed.native_px)
    return MaskResult(mask=mask, person_found=True, person_fraction=fraction,
                      source="segmenter", framed_box=framed.box)


def guide_for(photo: np.ndarray, device: torch.device, settings: MaskSettings = MaskSettings(),
              photo_small: torch.Tensor | None = None) -> torch.Tensor:
    """The photo on the guide grid ([1,3,gh,gw] 0..1); from ``photo_small`` if big enough."""
    height, width = photo.shape[:2]
    guide_hw = _fit_long_side(height, width, settings.guide_long_side)
    if photo_small is None or photo_small.shape[-2] < guide_hw[0]:
        photo_small = resize(uint8_band_to_float(photo, 0, height, device), guide_hw)
    return resize(photo_small.to(device).float(), guide_hw)


def person_probability(segmenter: Segmenter, photo: np.ndarray, guide: torch.Tensor,
                       settings: MaskSettings = MaskSettings()
                       ) -> tuple[torch.Tensor, FramedProbability]:
    """The framed, cleaned person probability on the guide grid ([1,1,gh,gw]), unrefined.

    The one place that decides what the segmenter sees: the mask refines this,
    and the portrait pass reads it directly when no mask was asked for, so the
    portrait layer is the same either way.
    """
    framed = framed_probability(
        segmenter, photo, guide,
        locate=lambda p, native_px: clean_probability(p, settings, native_px),
        max_share=settings.reframe_max_share, margin=settings.reframe_margin,
        threshold=settings.reframe_threshold)
    prob = framed.located
    if prob is None:
        prob = clean_probability(framed.prob, settings, framed.native_px)
    return prob, framed


def _fit_long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the longer side at most ``long_side``, never upscaled."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def refine_probability(
    prob: torch.Tensor,
    photo: np.ndarray,
    settings: MaskSettings = MaskSettings(),
    guide: torch.Tensor | None = None,
    native_px: float | None = None,
) -> np.ndarray:
    """Probability [1,1,h,w] → H×W uint8 mask following the photo's edges.

    guide: the photo at the guide grid size ([1,3,gh,gw], 0..1); made from
    ``photo`` if absent.
    native_px: guide-grid pixels per segmenter pixel (sets the filter radius);
    by default ``prob`` is taken to be at the segmenter's native size.
    """
    height, width = photo.shape[:2]
    device = prob.device
    if guide is None:
        guide_hw = _fit_long_side(height, width, settings.guide_long_side)
        guide = resize(uint8_band_to_float(photo, 0, height, device), guide_hw)
    guide = guide.to(device).float()
    gh, gw = guide.shape[-2:]
    p = resize(prob.float(), (gh, gw)).clamp(0, 1)
    if native_px is None:
        native_px = max(gh / prob.shape[-2], gw / prob.shape[-1])
    radius = max(1, round(settings.radius_native * native_px))
    a, b = guided_coefficients(guide, p, radius, settings.eps)  # a [1,1,3,gh,gw]
    ab = torch.cat([a[:, 0], b], dim=1)  # [1,4,gh,gw]: one resampling call per band
    del a, b
    full = torch.empty((height, width), dtype=torch.float32, device=device)
    for y0, y1 in row_bands(height, width):
        img = uint8_band_to_float(photo, y0, y1, device)  # [1,3,n,W]
        coeff = resample_window(ab, (height, width), y0, y1)
        q = (coeff[:, :3] * img).sum(dim=1) + coeff[:, 3]
        full[y0:y1] = q[0]
        del img, q, coeff
    full.sub_(0.5).mul_(settings.contrast).add_(0.5).clamp_(0, 1)
    if settings.feather_px > 0:
        full = feather(full, settings.feather_px)
    return full.mul_(255.0).round_().to(torch.uint8).cpu().numpy()


def feather(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian feather of an H×W mask by ``sigma`` full-resolution pixels."""
    return lowpass(mask[None, None], sigma)[0, 0]


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the True runs of a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def component_areas(binary: np.ndarray) -> tuple[list[list[tuple[int, int, int]]], list[int],
                                                  list[int]]:
    """8-connected components of an [h,w] bool map, as runs joined by union-find.

    Returns (per row: (start, stop, run id)), each run's root id, and each
    run's component area (same list order). Runs, not pixels, are the unit:
    a segmenter's mask has a few per row, so this is milliseconds in Python.
    """
    parent: list[int] = []
    length: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rows: list[list[tuple[int, int, int]]] = []
    previous: list[tuple[int, int, int]] = []
    for y in range(binary.shape[0]):
        current = []
        for x0, x1 in _runs(binary[y]):
            rid = len(parent)
            parent.append(rid)
            length.append(x1 - x0)
            for p0, p1, pid in previous:  # 8-connected: touching diagonally counts
                if p0 <= x1 and p1 >= x0:
                    a, b = find(rid), find(pid)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            current.append((x0, x1, rid))
        rows.append(current)
        previous = current
    roots = [find(i) for i in range(len(parent))]
    area: dict[int, int] = {}
    for root, n in zip(roots, length, strict=True):
        area[root] = area.get(root, 0) + n
    return rows, roots, [area[r] for r in roots]


def keep_large_components(binary: np.ndarray, share: float) -> np.ndarray:
    """The components of ``binary`` whose area is at least ``share`` of the largest."""
    rows, _roots, areas = component_areas(binary)
    out = np.zeros_like(binary, dtype=bool)
    if not areas:
        return out
    floor = share * max(areas)
    for y, runs in enumerate(rows):
        for x0, x1, rid in runs:
            if areas[rid] >= floor:
                out[y, x0:x1] = True
    return out


def clean_probability(prob: torch.Tensor, settings: MaskSettings = MaskSettings(),
                      native_px: float = 1.0) -> torch.Tensor:
    """The two clean-up rules of the module docstring on a [1,1,h,w] probability.

    native_px: pixels of ``prob`` per segmenter pixel (``support_native`` is in those).
    """
    p = prob.float().clamp(0, 1)
    h, w = p.shape[-2:]
    if settings.edge_band > 0:
        band = max(1.0, settings.edge_band * min(h, w))
        ys = torch.arange(h, device=p.device, dtype=torch.float32)[:, None]
        xs = torch.arange(w, device=p.device, dtype=torch.float32)[None, :]
        dist = torch.minimum(torch.minimum(ys, h - 1 - ys), torch.minimum(xs, w - 1 - xs))
        weight = ((band - dist) / (band / 2)).clamp(0, 1)  # 1 on the outer half, 0 inside
        confident = ((p - settings.edge_threshold) / 0.1 + 0.5).clamp(0, 1)
        p = p * (1 - weight * (1 - confident))
    # the connectivity rule works in the segmenter's own pixels: labelling a
    # 512² grid in Python costs 9× the native 256² one, for the same answer
    coarse_hw = (max(1, round(h / native_px)), max(1, round(w / native_px)))
    coarse = F.interpolate(p, size=coarse_hw, mode="area") if coarse_hw != (h, w) else p
    binary = (coarse[0, 0] >= 0.5).cpu().numpy()
    if not binary.any():
        return p
    kept = torch.from_numpy(keep_large_components(binary, settings.blob_share))
    kept = kept.to(p.device, torch.float32)[None, None]
    r = max(0, round(settings.support_native))
    support = F.max_pool2d(kept, 2 * r + 1, stride=1, padding=r) if r else kept
    support = F.avg_pool2d(F.pad(support, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    if coarse_hw != (h, w):
        support = F.interpolate(support, size=(h, w), mode="bilinear", align_corners=False)
    return p * support
