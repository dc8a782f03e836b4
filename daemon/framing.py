"""Where the segmenter looks: the whole frame, then the person's own box.

Why: MediaPipe's selfie model is made for a person who fills the frame (a
selfie, a video call). It stretches any photo to 256², so a full-body or seated
person in a wide or large frame ends up a few native pixels across the legs
and arms, and the model answers with grey — half-transparent limbs — or misses
the person altogether. The model is fine once the person fills its input again,
so the mask is found in two steps, as pose and face pipelines do:

1. **Locate.** The whole frame, plus square windows along the long side of an
   elongated frame (a person in a 3:2 frame is squeezed 1.5× by the stretch; in
   a square window they are not). Only used to find the person's box.
2. **Reframe.** When that box (with a margin) covers less than
   ``reframe_max_share`` of the frame, the segmenter runs again on the box,
   cut from the full-resolution photo, and that answer is the probability;
   outside the box it is 0 (the box already holds every component the clean-up
   would keep, plus a margin). A person who fills the frame is left to the
   whole-frame pass, so ordinary portraits are unchanged.

On 28 synthetic small-person frames made from the photos in shared/ (a
portrait scaled to 35–60 % on a 1:1 or 3:2 canvas) the mean IoU with the
person's own mask went 0.29 → 0.64, and the grey share inside the person on
e.g. the 2012 official portrait at 50 % in a 3:2 frame 0.31 → 0.02
(``bench/mask_framing.py --synthetic``, ``bench/results/mask-framing.md``).

Everything here works on the *guide grid* (the photo at ≤ ``guide_long_side``)
that the mask refinement runs on; ``native_px`` says how many grid pixels one
segmenter pixel spans, so the clean-up and the guided filter keep their sizes
in the segmenter's own units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .engines.base import Segmenter
from .sizing import resize

__all__ = ["Box", "FramedProbability", "grid_box_to_full", "person_box", "square_windows",
           "framed_probability"]

#: (y0, y1, x0, x1), half-open, in the pixels of the grid it was made on
Box = tuple[int, int, int, int]

#: frames at least this elongated get square locating windows
WINDOW_FROM_ASPECT = 1.2
#: the crop handed to the segmenter is decimated to at most this long side first
#: (it resizes to its own size from there; 4× MediaPipe's 256 keeps detail)
CROP_LONG_SIDE = 1024


@dataclass
class FramedProbability:
    """The person probability on the guide grid and how it was framed."""

    prob: torch.Tensor  # [1,1,gh,gw] float32 0..1
    native_px: float  # guide-grid pixels per segmenter pixel
    box: Box | None  # the reframed box on the guide grid; None = whole frame
    #: ``locate`` already applied to ``prob`` (saves a second clean-up), if it was
    located: torch.Tensor | None = None


def square_windows(height: int, width: int) -> list[Box]:
    """Square windows (side = the short side) along the long side; none if near-square.

    They overlap by at least a third, so a person is whole in one of them.
    """
    short, long_ = min(height, width), max(height, width)
    if long_ < WINDOW_FROM_ASPECT * short:
        return []
    count = int(np.ceil(1.5 * long_ / short))
    starts = np.linspace(0, long_ - short, count).round().astype(int).tolist()
    if width >= height:
        return [(0, short, a, a + short) for a in starts]
    return [(a, a + short, 0, short) for a in starts]


def person_box(located: torch.Tensor, threshold: float, margin: float) -> Box | None:
    """Square box around everything ≥ ``threshold`` in [1,1,h,w], grown by ``margin``.

    margin: a share of the box's longer side added on each side. The box is
    squared (the selfie model's own aspect) and clipped to the frame.
    """
    hits = (located[0, 0] >= threshold).nonzero()
    if hits.numel() == 0:
        return None
    h, w = located.shape[-2:]
    y0, x0 = hits.min(dim=0).values.tolist()
    y1, x1 = (hits.max(dim=0).values + 1).tolist()
    side = max(y1 - y0, x1 - x0) * (1 + 2 * margin)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return (max(0, int(cy - side / 2)), min(h, int(np.ceil(cy + side / 2))),
            max(0, int(cx - side / 2)), min(w, int(np.ceil(cx + side / 2))))


def grid_box_to_full(box: Box, grid_hw: tuple[int, int], full_hw: tuple[int, int]) -> Box:
    """A box on the guide grid as the same region of the full-resolution photo."""
    sy, sx = full_hw[0] / grid_hw[0], full_hw[1] / grid_hw[1]
    y0, y1, x0, x1 = box
    return (int(y0 * sy), min(full_hw[0], int(np.ceil(y1 * sy))),
            int(x0 * sx), min(full_hw[1], int(np.ceil(x1 * sx))))


def _crop(photo: np.ndarray, box: Box, device: torch.device) -> torch.Tensor:
    """The full-resolution region ``box`` as [1,3,h,w] 0..1, decimated to ≤ CROP_LONG_SIDE.

    Decimating by slicing keeps a 24 MP photo's crop from being copied whole
    into float; the segmenter's own resize then antialiases from there.
    """
    y0, y1, x0, x1 = box
    step = max(1, int(max(y1 - y0, x1 - x0) // CROP_LONG_SIDE))
    region = np.array(photo[y0:y1:step, x0:x1:step, :3], copy=True)
    return torch.from_numpy(region).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def _probability_on(segmenter: Segmenter, image: torch.Tensor, size: tuple[int, int]
                    ) -> tuple[torch.Tensor, float]:
    """The segmenter's probability for ``image`` resized to ``size``, and grid px per native px."""
    with torch.inference_mode():
        native = segmenter.person_probability(image.to(segmenter.device)).float()
    native_px = max(size[0] / native.shape[-2], size[1] / native.shape[-1])
    return resize(native, size).clamp(0, 1), native_px  # not in place: may be an inference tensor


def framed_probability(
    segmenter: Segmenter,
    photo: np.ndarray,
    guide: torch.Tensor,
    locate: Callable[[torch.Tensor, float], torch.Tensor],
    max_share: float,
    margin: float,
    threshold: float,
) -> FramedProbability:
    """Locate the person on the whole frame (and windows), reframe on them if small.

    locate: turns a raw located probability (and its native_px) into the one
        the box is read from — the mask's clean-up, so stray blobs and edge
        smears do not widen the box.
    max_share: reframe only when the box covers less than this share of the
        frame (0 = never).
    """
    gh, gw = guide.shape[-2:]
    whole, native_px = _probability_on(segmenter, guide, (gh, gw))
    if max_share <= 0:
        return FramedProbability(whole, native_px, None)
    windows = square_windows(gh, gw)
    located = whole.clone() if windows else whole
    for y0, y1, x0, x1 in windows:
        window, _ = _probability_on(segmenter, guide[..., y0:y1, x0:x1], (y1 - y0, x1 - x0))
        located[..., y0:y1, x0:x1] = torch.maximum(located[..., y0:y1, x0:x1], window)
    cleaned = locate(located, native_px)
    box = person_box(cleaned, threshold, margin)
    if box is None or (box[1] - box[0]) * (box[3] - box[2]) >= max_share * gh * gw:
        return FramedProbability(whole, native_px, None, None if windows else cleaned)
    y0, y1, x0, x1 = box
    crop = _crop(photo, grid_box_to_full(box, (gh, gw), photo.shape[:2]), segmenter.device)
    inside, crop_px = _probability_on(segmenter, crop, (y1 - y0, x1 - x0))
    prob = torch.zeros_like(whole)
    prob[..., y0:y1, x0:x1] = inside
    return FramedProbability(prob, crop_px, box)
