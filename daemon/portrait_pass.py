"""The portrait pass: a painted person whose face stays the same person.

Why a split by scale: weakening the style network (low ``strength``) or blurring
its texture away (``structure``) keeps the face but also removes what makes it
painted, and measured landmark drift comes from stroke-scale texture, not from
the network moving geometry. So the portrait is rebuilt from bands:

* colour (chroma) and coarse tone (luminance blurred at the facial-feature
  scale) come from a full-strength stylization — the face sits in the painting's
  palette and light;
* the photo's own luminance detail *at and below the scale of the facial
  features* (eyes, nostrils, lips, jaw line) is put back with the ``likeness``
  knob — what a viewer and a face model read as "the same person";
* the painting's stroke texture stays on top, at ``1 - likeness`` in the feature
  band plus a fixed share of its fine band, so the face is painted, not tinted.

The feature scale is sized from the eye distance BlazeFace finds on the photo
(``FEATURE_SIGMA_PER_IOD``), so the split follows the face whatever its size in
the frame. The amount of photo detail is full on the face, easing out over about
a face width to ``BODY_LEVEL`` on the rest of the person mask, never above the
mask (except on the face's own core), and 0 outside it: outside the person the
portrait layer is the background pass itself. Its transitions are then laid on
the photo's own edges by a guided filter (``follow_edges``), so where the mask is
unsure (hair, a cap, a held object) the change between the two looks steps where
the photo steps instead of crossing it as a band.

Grey photos and colourless paintings (issue 22): the stylization's chroma on a
grey face is blotches unrelated to the face, and a colourless painting (ink, a
woodcut, pencil) is told only by its tones. So the face can take the painting's
colour keyed by luminance (``palette_chroma``: each tone gets the colour the
painting gave that tone on the person) and, under a colourless painting, its
tone distribution (``match_tones``, a monotone map). The face check's protection
(daemon/face_check.py) now reaches for the palette before the photo's colour,
so a face it has to protect stays painted rather than pasted in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from .color import rgb_to_ycbcr, ycbcr_to_rgb
from .engines.base import RegionSettings, Segmenter
from .face_check import (
    MIN_PRESENCE,
    PHOTO_MIN_PRESENCE,
    PROTECTION_STEPS,
    PresenceFn,
    mesh_presence,
)
from .mask import MaskSettings, guide_for, person_probability
from .sizing import guided_coefficients, lowpass, luminance, resize, to_uint8_hwc

__all__ = ["BODY_LEVEL", "FEATURE_SIGMA_PER_IOD", "STROKE_KEEP", "FaceFinder", "FaceGeometry",
           "apply_portrait_pass", "blazeface_finder", "feature_sigma", "find_faces",
           "keep_likeness", "likeness_ramp", "person_at", "portrait_blend"]

#: Gaussian sigma of the coarse/detail split, in eye distances: eyes are ~0.4 IOD
#: wide and the mouth ~0.8, so detail below ~0.25 IOD is the features themselves
FEATURE_SIGMA_PER_IOD = 0.25
#: share of the painting's fine band (below a quarter of the feature scale) kept
#: on the face even at likeness 1: the brush grain that makes it read as paint
STROKE_KEEP = 0.3
#: share of the photo's own coarse tone (light and shade at and above the feature
#: scale) mixed into the stylization's on the face at likeness 1
TONE_KEEP = 0.3
#: share of the photo's own colour on the face at likeness 1 (0: the painting's)
CHROMA_KEEP = 0.0
#: share of the painting's palette *keyed by luminance* on the face at likeness 1: the
#: colour the stylization gives each tone on the person, laid on the rebuilt
#: luminance, so hue follows the face's own light and shade (``palette_chroma``)
PALETTE_KEEP = 0.0
#: share of the painting's tone distribution imposed on the face at likeness 1 (a
#: monotone map, so the features' order of light and dark survives; ``match_tones``)
TONE_MATCH = 0.5
#: mean chroma magnitude (Cb, Cr in −0.5..0.5) of the painted face from which the
#: painting counts as colourful: no tone matching (``tonal_share``)
COLOURFUL = 0.06
#: amount above which a pixel counts as face for the tone statistics
FACE_LEVEL = 0.6
#: luminance bins of the palette and tone statistics
TONE_BINS = 64
#: inside this share of the face ellipse's axes, the face counts in full even where
#: the person mask misses it (a segmenter's hole on a face would otherwise paint it over)
CORE_SCALE = 0.8
#: guided filter that lays the amount's transitions on the photo's edges: window
#: radius in feature sigmas, regulariser (luminance guide in 0..1), grid long side
EDGE_RADIUS_SIGMAS = 1.5
EDGE_EPS = 2e-3
EDGE_GRID = 256
#: photo detail on the person away from the face, relative to the face's
BODY_LEVEL = 0.35
#: how far past the face ellipse the ramp eases down, in face half-widths
RAMP_WIDTHS = 1.0
#: the face ellipse around a detector box: wider for the hair line, taller for the chin
FACE_SCALE = (1.25, 1.45)
#: feature sigma used when no face is found, as a share of the long side
FALLBACK_SIGMA = 1 / 96


@dataclass(frozen=True)
class FaceGeometry:
    """One face in working-size pixels: centre, half-axes of its ellipse, eye distance."""

    cx: float
    cy: float
    rx: float
    ry: float
    iod: float
    #: the detector's box (x0, y0, x1, y1) and eye-levelling angle, for the face check
    box: tuple[float, float, float, float] | None = None
    rotation: float = 0.0


#: a face finder maps a [1,3,H,W] 0..1 photo (and the person mask [1,1,H,W] or None)
#: to faces in its pixels
FaceFinder = Callable[[torch.Tensor, "torch.Tensor | None"], list[FaceGeometry]]


def feature_sigma(faces: Sequence[FaceGeometry], height: int, width: int) -> float:
    """Sigma of the coarse/detail split: from the largest face's eye distance."""
    if not faces:
        return max(1.0, FALLBACK_SIGMA * max(height, width))
    return max(1.0, FEATURE_SIGMA_PER_IOD * max(f.iod for f in faces))


def _ellipse_ramp(faces: Sequence[FaceGeometry], ys: torch.Tensor, xs: torch.Tensor,
                  scale: float, width: float) -> torch.Tensor:
    """1 inside each face's ellipse (axes × ``scale``), smoothstep to 0 over ``width`` radii."""
    ramp = torch.zeros(ys.shape[0], xs.shape[1], device=ys.device)
    for f in faces:
        r = torch.sqrt(((xs - f.cx) / (f.rx * scale)) ** 2 + ((ys - f.cy) / (f.ry * scale)) ** 2)
        t = ((r - 1.0) / width).clamp(0, 1)
        ramp = torch.maximum(ramp, 1 - t * t * (3 - 2 * t))
    return ramp


def likeness_ramp(faces: Sequence[FaceGeometry], mask: torch.Tensor | None, height: int,
                  width: int, body_level: float | None = None,
                  photo: torch.Tensor | None = None, sigma: float | None = None
                  ) -> torch.Tensor:
    """[1,1,H,W] share of the photo's detail to keep: 1 on faces, ``body_level`` on the person.

    mask: the person mask at this size ([1,1,H,W] or [H,W], 0..1) or None. The
    amount never exceeds the person mask, except on the face's core (inside
    ``CORE_SCALE`` of its ellipse), which counts in full even where the mask
    misses it. So where the mask is unsure (hair, a cap, a held object) the
    portrait layer is already close to the background pass and the composite
    cannot show a step or a ghost of the photo.
    photo: [1,3,H,W] 0..1; when given, the amount's transitions are laid on the
    photo's own edges (``follow_edges``, window ~``sigma``) instead of a fixed ramp.
    """
    body_level = BODY_LEVEL if body_level is None else body_level
    device = mask.device if mask is not None else (
        photo.device if photo is not None else torch.device("cpu"))
    ys = torch.arange(height, device=device, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32)[None, :] + 0.5
    ramp = _ellipse_ramp(faces, ys, xs, 1.0, RAMP_WIDTHS)
    if mask is not None:
        person = mask.reshape(height, width).float().clamp(0, 1)
        core = _ellipse_ramp(faces, ys, xs, CORE_SCALE, 1.0 - CORE_SCALE)
        ramp = torch.maximum(torch.clamp(ramp, min=body_level) * person, core)
    ramp = ramp[None, None]
    if photo is not None and bool(ramp.any()):
        ramp = follow_edges(ramp, photo, sigma or feature_sigma(faces, height, width))
    return ramp


def follow_edges(amount: torch.Tensor, photo: torch.Tensor, sigma: float) -> torch.Tensor:
    """``amount`` [1,1,H,W] with its transitions moved onto the photo's edges (guided filter).

    Why: a geometric ramp (an ellipse, a feathered mask) crosses hair, a hat's
    brim or a held object wherever its geometry says, which shows as a band of
    half-photo, half-painting. The guided filter makes the amount locally an
    affine function of the photo's luminance, so inside a flat area it stays flat
    and it steps where the photo steps. Computed on a grid of at most
    ``EDGE_GRID`` px and applied at full size (the fast guided filter), so it
    costs a few milliseconds at any size. Inside an area where the amount is
    constant (the face's core) it is unchanged.
    """
    height, width = amount.shape[-2:]
    scale = min(1.0, EDGE_GRID / max(height, width))
    grid = (max(1, round(height * scale)), max(1, round(width * scale)))
    guide = luminance(photo.float())  # one channel: a third of the work of an RGB guide
    src = resize(amount.float(), grid)
    radius = max(1, round(EDGE_RADIUS_SIGMAS * sigma * scale))
    a, b = guided_coefficients(resize(guide, grid), src, radius, EDGE_EPS)
    coeff = resize(torch.cat([a[:, 0], b], dim=1), (height, width))  # [1,2,H,W]
    return (coeff[:, 0:1] * guide + coeff[:, 1:2]).clamp_(0, 1)


def _weighted_hist(values: torch.Tensor, weight: torch.Tensor, bins: int) -> torch.Tensor:
    """Weighted histogram of ``values`` (0..1) in ``bins`` equal bins."""
    idx = (values.flatten().clamp(0, 1) * (bins - 1)).round().long()
    return torch.zeros(bins, device=values.device).scatter_add_(0, idx, weight.flatten())


def _lookup(table: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear lookup of ``values`` (0..1) in a table sampled at even steps."""
    bins = table.shape[-1]
    pos = values.clamp(0, 1) * (bins - 1)
    lo = pos.floor().long().clamp(max=bins - 2)
    t = pos - lo
    flat = lo.flatten()
    left = table[..., flat].reshape(*table.shape[:-1], *values.shape)
    right = table[..., flat + 1].reshape(*table.shape[:-1], *values.shape)
    return left + (right - left) * t


def palette_chroma(y_ref: torch.Tensor, chroma_ref: torch.Tensor, weight: torch.Tensor,
                   y: torch.Tensor, bins: int = TONE_BINS) -> torch.Tensor:
    """The painting's colour for each tone, read off the stylization, laid on ``y``.

    y_ref [1,1,H,W], chroma_ref [1,2,H,W]: the stylization's luminance and chroma;
    weight [1,1,H,W]: where to read them (the face and person). Returns [1,2,H,W]:
    at each pixel the weighted mean chroma of the stylization's pixels of the same
    luminance as ``y`` there (bins smoothed, empty ones filled from neighbours).
    Why: on a grey photo the stylization's chroma is blotches unrelated to the
    face, which a face model (and a viewer) reads as a mask over it; keyed by
    luminance the same palette follows the face's light and shade, so it stays
    a face and is still in the painting's colours.
    """
    idx = (y_ref.flatten().clamp(0, 1) * (bins - 1)).round().long()
    w = weight.flatten().float()
    sums = torch.zeros(3, bins, device=y.device)
    sums[0].scatter_add_(0, idx, w)
    for c in range(2):
        sums[c + 1].scatter_add_(0, idx, w * chroma_ref[0, c].flatten())
    if float(sums[0].sum()) <= 0:
        return chroma_ref
    kernel = torch.exp(-0.5 * (torch.arange(-6, 7, device=y.device, dtype=torch.float32)
                               / 2.0) ** 2)
    smooth = F.conv1d(sums[:, None], kernel[None, None], padding=6)[:, 0]
    table = smooth[1:] / smooth[0:1].clamp(min=1e-6)  # [2,bins]
    return _lookup(table, y[0, 0])[None]


def _face_weight(amount: torch.Tensor) -> torch.Tensor:
    """Where the amount is high enough to count as face (0..1)."""
    return ((amount - FACE_LEVEL) / (1 - FACE_LEVEL)).clamp(min=0)


def tonal_share(chroma: torch.Tensor, weight: torch.Tensor) -> float:
    """1 for a painting without colour on the face, falling to 0 at ``COLOURFUL`` chroma.

    Why: a painting without colour (ink, pencil, a woodcut) can only be told by
    its tones, so there the face takes the painting's tones; a colourful one is
    told by its palette, and forcing its tones on a face as well only costs
    likeness (measured: the cameraman under Starry Night drops back towards a
    photo when the face check has to undo it).
    """
    total = float(weight.sum())
    if total <= 0:
        return 0.0
    colour = float((chroma.norm(dim=1, keepdim=True) * weight).sum()) / total
    return max(0.0, 1.0 - colour / COLOURFUL)


def match_tones(y: torch.Tensor, y_ref: torch.Tensor, weight: torch.Tensor,
                bins: int = TONE_BINS * 4) -> torch.Tensor:
    """``y`` mapped monotonically so its distribution (under ``weight``) is ``y_ref``'s.

    Why: a two-tone painting (woodcut, ink) is drawn in a few flat tones; the
    photo's continuous-tone face detail inside it reads as a photograph. The map
    keeps the order of light and dark (so the features stay where they are) and
    takes the painting's tones.
    """
    h_y = _weighted_hist(y, weight, bins)
    h_r = _weighted_hist(y_ref, weight, bins)
    if float(h_y.sum()) <= 0 or float(h_r.sum()) <= 0:
        return y
    cdf_y = torch.cumsum(h_y, 0) / h_y.sum()
    cdf_r = torch.cumsum(h_r, 0) / h_r.sum()
    levels = torch.linspace(0, 1, bins, device=y.device)
    # the reference level at each of y's cumulative shares (inverse CDF, interpolated)
    pos = torch.searchsorted(cdf_r.contiguous(), cdf_y.contiguous()).clamp(max=bins - 1)
    prev = (pos - 1).clamp(min=0)
    c0, c1 = cdf_r[prev], cdf_r[pos]
    t = ((cdf_y - c0) / (c1 - c0).clamp(min=1e-6)).clamp(0, 1)
    table = torch.where(pos > 0, levels[prev] + t * (levels[pos] - levels[prev]), levels[pos])
    return _lookup(table, y)


def portrait_blend(stylized: torch.Tensor, photo: torch.Tensor, ramp: torch.Tensor,
                   sigma: float, likeness: float, stroke_keep: float | None = None,
                   tone_keep: float | None = None, chroma_keep: float | None = None,
                   palette_keep: float | None = None, tone_match: float | None = None
                   ) -> torch.Tensor:
    """Full-strength ``stylized`` [N,3,H,W] with the photo's feature detail where ``ramp`` says.

    Luminance = coarse tone (the stylization's, ``a·tone_keep`` of the way to the
    photo's) + a·photo detail + (1 − a)·stylized detail + a·stroke_keep·stylized
    fine band, then ``a·tone_match`` of the way to the painting's tone distribution
    (``match_tones``); chroma is the stylization's, ``a·palette_keep`` of the way to
    its palette keyed by luminance (``palette_chroma``), then ``a·chroma_keep`` of
    the way to the photo's; with a = likeness·ramp. At a = 0 the result is
    ``stylized`` exactly.
    """
    if stylized.shape[-2:] != photo.shape[-2:] or ramp.shape[-2:] != photo.shape[-2:]:
        raise ValueError(f"sizes differ: stylized {tuple(stylized.shape)}, photo "
                         f"{tuple(photo.shape)}, ramp {tuple(ramp.shape)}")
    stroke_keep = STROKE_KEEP if stroke_keep is None else stroke_keep
    tone_keep = TONE_KEEP if tone_keep is None else tone_keep
    chroma_keep = CHROMA_KEEP if chroma_keep is None else chroma_keep
    palette_keep = PALETTE_KEEP if palette_keep is None else palette_keep
    tone_match = TONE_MATCH if tone_match is None else tone_match
    a = (float(likeness) * ramp.float()).clamp(0, 1)
    if not bool(a.any()):
        return stylized
    s = rgb_to_ycbcr(stylized.float())
    ys = s[:, 0:1]
    yp = rgb_to_ycbcr(photo.float())[:, 0:1]
    coarse_s = lowpass(ys, sigma)
    coarse_p = lowpass(yp, sigma)
    detail_p = yp - coarse_p
    detail_s = ys - coarse_s
    fine_s = ys - lowpass(ys, max(0.5, sigma / 4))
    coarse = coarse_s + (a * tone_keep) * (coarse_p - coarse_s)
    y = coarse + a * detail_p + (1 - a) * detail_s + (a * stroke_keep) * fine_s
    chroma = s[:, 1:3]
    # the face's tones: statistics where the amount is high; a colourful painting
    # gets no tone matching (``tonal_share``), which is decided on a sparse grid
    shares = [tone_match * tonal_share(chroma[i:i + 1, :, ::4, ::4],
                                       _face_weight(a[:1, :, ::4, ::4]))
              if tone_match > 0 else 0.0 for i in range(s.shape[0])]
    if any(share > 0 for share in shares) or palette_keep > 0:
        ys_out, chroma_out = [], []
        for i, share in enumerate(shares):  # statistics per region pass
            yi, ci, ai = y[i:i + 1], chroma[i:i + 1], a[:1]
            if share > 0:
                yi = yi + (ai * share) * (match_tones(yi, ys[i:i + 1], _face_weight(ai)) - yi)
            if palette_keep > 0:
                ci = ci + (ai * palette_keep) * (
                    palette_chroma(ys[i:i + 1], ci, ai, yi.clamp(0, 1)) - ci)
            ys_out.append(yi)
            chroma_out.append(ci)
        y, chroma = torch.cat(ys_out), torch.cat(chroma_out)
    if chroma_keep > 0:
        chroma = chroma + (a * chroma_keep) * (rgb_to_ycbcr(photo.float())[:, 1:3] - chroma)
    out = ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp_(0, 1)
    return out.to(stylized.dtype)


# ---------------------------------------------------------------------- faces


def find_faces(detect: Callable[[torch.Tensor], list], photo: torch.Tensor,
               mask: torch.Tensor | None = None, min_score: float = 0.5
               ) -> list[FaceGeometry]:
    """Faces in ``photo`` [1,3,H,W] via a BlazeFace-like ``detect`` (boxes + eye keypoints).

    The short-range detector wants a face that fills a good part of its 128²
    input, so a full-body shot's small face is missed on the whole frame; then
    square windows of ½ and ⅓ of the short side are searched, only those that
    overlap the person mask (when there is one), and the best hit is kept.
    """
    height, width = photo.shape[-2:]
    found = [f for f in detect(photo) if f.score >= min_score]
    if found:
        return [_geometry(f, 0, 0) for f in found]
    best = None
    for fraction in (2, 3):
        side = min(height, width) // fraction
        if side < 32:
            continue
        stride = max(1, side // 2)
        for y0 in _starts(height, side, stride):
            for x0 in _starts(width, side, stride):
                if mask is not None and float(
                        mask[..., y0:y0 + side, x0:x0 + side].float().mean()) < 0.05:
                    continue
                for f in detect(photo[..., y0:y0 + side, x0:x0 + side]):
                    if f.score >= min_score and (best is None or f.score > best[0].score):
                        best = (f, x0, y0)
        if best is not None:
            break
    return [] if best is None else [_geometry(best[0], best[1], best[2])]


def _starts(n: int, tile: int, stride: int) -> list[int]:
    points = list(range(0, max(1, n - tile + 1), stride))
    if points[-1] != max(0, n - tile):
        points.append(max(0, n - tile))
    return points


def _geometry(face, dx: float, dy: float) -> FaceGeometry:
    x0, y0, x1, y1 = face.box
    eyes = face.keypoints[:2].float()
    iod = float(torch.linalg.vector_norm(eyes[1] - eyes[0]))
    half_w, half_h = (x1 - x0) / 2, (y1 - y0) / 2
    (ex0, ey0), (ex1, ey1) = eyes[0].tolist(), eyes[1].tolist()
    return FaceGeometry(cx=(x0 + x1) / 2 + dx, cy=(y0 + y1) / 2 + dy,
                        rx=max(1.0, half_w * FACE_SCALE[0]), ry=max(1.0, half_h * FACE_SCALE[1]),
                        iod=max(iod, 0.3 * (x1 - x0)),
                        box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
                        rotation=math.atan2(ey1 - ey0, ex1 - ex0))


def blazeface_finder(device: torch.device) -> FaceFinder | None:
    """A face finder on ``device`` from MediaPipe's BlazeFace (loaded once), or None.

    None when the model file cannot be had: the pass then uses the person mask
    and a size-based feature scale, which is still seam-free, only less exact.
    """
    from .models.face import loaded_once

    detector = loaded_once("detector", device)
    if detector is None:
        return None

    def finder(photo: torch.Tensor, mask: torch.Tensor | None = None) -> list[FaceGeometry]:
        return find_faces(detector, photo.float(), mask)

    return finder


def apply_portrait_pass(stylized: torch.Tensor, photo: torch.Tensor, likeness: float,
                        faces: Sequence[FaceGeometry], person: torch.Tensor | None,
                        presence: PresenceFn | None = None) -> torch.Tensor:
    """One region's output [1,3,h,w] → with the face's detail kept by ``likeness``.

    person: the person mask (any size, 0..1) or None; resized to the image here.
    presence: the face check (daemon/face_check.py); None skips it.
    """
    height, width = photo.shape[-2:]
    mask = None
    if person is not None:
        mask = resize(person.float().reshape(1, 1, *person.shape[-2:]), (height, width))
    sigma = feature_sigma(faces, height, width)
    ramp = likeness_ramp(faces, mask, height, width, photo=photo, sigma=sigma).to(photo.device)
    out = portrait_blend(stylized, photo, ramp, sigma, likeness)
    if presence is None:
        return out
    for face in faces:
        if face.box is None or presence(photo, face.box, face.rotation) < PHOTO_MIN_PRESENCE:
            continue
        own = None
        for step in PROTECTION_STEPS:
            if presence(out, face.box, face.rotation) >= MIN_PRESENCE:
                break
            if own is None:  # this face's own share of the amount, on the same edges
                own = likeness_ramp([face], mask, height, width, body_level=0.0, photo=photo,
                                    sigma=sigma).to(photo.device)
            safer = portrait_blend(stylized, photo, ramp, sigma, max(likeness, step.likeness),
                                   stroke_keep=step.stroke_keep, tone_keep=step.tone_keep,
                                   chroma_keep=step.chroma_keep,
                                   palette_keep=step.palette_keep,
                                   tone_match=step.tone_match * TONE_MATCH)
            out = torch.lerp(out, safer, own)
    return out


def person_at(mask: np.ndarray, height: int, width: int, device: torch.device) -> torch.Tensor:
    """A full-size uint8 mask as [1,1,height,width] 0..1 (decimated first: it can be 16 MP)."""
    step = max(1, min(mask.shape[0] // max(1, height), mask.shape[1] // max(1, width)) // 2)
    small = torch.from_numpy(np.array(mask[::step, ::step], copy=True)).to(device)  # read-only ok
    return resize(small.float().div_(255.0)[None, None], (height, width))


def keep_likeness(stylized: torch.Tensor, photo: torch.Tensor,
                  settings: Sequence[RegionSettings], segmenter: Segmenter,
                  mask: np.ndarray | None, finder: FaceFinder | None = None,
                  presence: PresenceFn | None = None,
                  mask_settings: MaskSettings | None = None) -> torch.Tensor:
    """Apply the portrait pass to the regions of ``stylized`` [N,3,h,w] whose likeness > 0.

    photo: the working-size photo [1,3,h,w]. mask: the job's full-size person mask
    (segmented or the artist's); without one the mask's own framed, cleaned
    probability (``mask.person_probability``, with ``mask_settings``) is used,
    so the portrait layer is the same whether or not the mask was asked for.
    finder: faces in the photo (default: BlazeFace, loaded once per device).
    presence: the face check (default: MediaPipe's face mesh, loaded once per device).
    """
    if not any(s.likeness > 0 for s in settings):
        return stylized
    height, width = photo.shape[-2:]
    if mask is not None:
        person = person_at(mask, height, width, photo.device)
    else:
        settings_m = mask_settings or MaskSettings()
        photo_u8 = to_uint8_hwc(photo)
        guide = guide_for(photo_u8, segmenter.device, settings_m, photo)
        prob, _ = person_probability(segmenter, photo_u8, guide, settings_m)
        person = resize(prob.float().to(photo.device), (height, width)).clamp_(0, 1)
    finder = finder or blazeface_finder(photo.device)
    faces = finder(photo, person) if finder is not None else []
    if faces and presence is None:
        presence = mesh_presence(photo.device)
    out = stylized.clone()
    for i, s in enumerate(settings):
        if s.likeness > 0:
            out[i:i + 1] = apply_portrait_pass(stylized[i:i + 1], photo, s.likeness, faces,
                                               person, presence)
    return out
