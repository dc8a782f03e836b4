"""Moving between a layer's full size and the size a style network can afford.

Why this module exists: a style network's memory and time grow with the pixels it
sees, while layers range from thumbnails to 16 MP. Two strategies bring any layer
through a network that only ever sees ``max_working_pixels`` at once:

- ``"guided"`` (default): stylize once at a working size, then bring the result
  back to full size with a *guided upsampling* whose guide is the photo's
  luminance at full resolution. The upsampling fits, at working size, a local
  linear model ``stylized ≈ a·luma + b`` and applies it to the full-resolution
  luma. Where the painting follows the photo's structure (contours, hair, eyes)
  the local slope ``a`` is large and the photo's fine edges come back crisp;
  where the painting has its own texture unrelated to the photo (brush strokes,
  flat colour) ``a`` is near 0 and only the smoothly upsampled painting remains,
  so no photographic grain is pasted into a painted area. ``eps`` is that
  threshold: photo structure with a local variance well below ``eps`` is not
  transferred. Brush strokes keep the scale they have at working size, which is
  also the scale the artist sees in a preview.
- ``"tiles"``: stylize the full-resolution layer in overlapping tiles and blend
  them with feathered weights. Engines normalise per image (Magenta's instance
  norm, SANet's mean-variance normalisation), so every tile gets its own
  statistics and a seam appears at tile borders; the strategy therefore also
  stylizes the whole frame once at working size and replaces each tile's low
  frequencies with that global result's (engine-agnostic "shared
  conditioning"). Strokes are at full-resolution scale (tiny on a 16 MP layer),
  and the cost grows with the layer's pixels.

``bench/sizing_compare.py`` compares the two; see its table for why ``guided``
is the default.

The primitives (box filter by cumulative sums, guided filter, band-wise bilinear
resampling, Gaussian-like blur) are shared with the mask refinement. All
full-resolution work is done in row bands, written straight into uint8 arrays,
so a 16 MP layer never needs more than a few full-size float planes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .engines.base import RegionSettings, StyleEngine

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "GuidedUpsampling",
    "TileSettings",
    "box_filter",
    "gaussian_blur",
    "guided_coefficients",
    "guided_upsample_into",
    "lowpass",
    "luminance",
    "resample_window",
    "resize",
    "row_bands",
    "shrink_layer",
    "stylize_tiled",
    "tile_grid",
    "working_size",
]

STRATEGIES: tuple[str, ...] = ("guided", "tiles")
#: chosen by bench/sizing_compare.py (16 MP portrait, Magenta, 1 MP working size, 2 CPU
#: threads): guided 13 s, no seam (overlap-band gradient ratio 0.98 vs the photo's), edges
#: on the photo's contours (r = 0.86); full-size tiles 75-90 s, texture ghosting in every
#: overlap band (ratio 0.84), strokes at pixel scale unrelated to the photo (r = 0.21).
DEFAULT_STRATEGY = "guided"

#: rows per band for full-resolution work; bounds the float working set
_BAND_PIXELS = 2_000_000

_LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------- sizes


def working_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest (h, w) with the layer's aspect ratio and h·w ≤ ``max_pixels``.

    Never upscales: a layer already within the bound keeps its size.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty layer {width}×{height}")
    if max_pixels < 64:
        raise ValueError(f"max_working_pixels must be at least 64, got {max_pixels}")
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    h = max(1, int(height * scale))
    w = max(1, int(width * scale))
    while h * w > max_pixels:  # float rounding guard
        if h >= w:
            h -= 1
        else:
            w -= 1
    return h, w


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [N,C,H,W] to ``size``; antialiased when shrinking."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False,
                         antialias=shrink)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [N,3,H,W] as [N,1,H,W] (the guide for stylized upsampling)."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def row_bands(height: int, width: int, band_pixels: int = _BAND_PIXELS) -> Iterator[
        tuple[int, int]]:
    """Split rows into bands of about ``band_pixels`` pixels each."""
    rows = max(1, band_pixels // max(1, width))
    for y0 in range(0, height, rows):
        yield y0, min(height, y0 + rows)


def uint8_band_to_float(array: np.ndarray, y0: int, y1: int, device: torch.device
                        ) -> torch.Tensor:
    """Rows y0:y1 of an H×W×C uint8 array as a [1,3,h,W] float 0..1 tensor.

    Copies the band, so the caller's array is never aliased by a tensor that a
    later in-place op could write to.
    """
    band = torch.from_numpy(np.array(array[y0:y1, :, :3], copy=True))
    return band.to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def shrink_layer(image: np.ndarray, size: tuple[int, int], device: torch.device
                 ) -> torch.Tensor:
    """An H×W×C uint8 layer reduced to ``size`` (h, w) as [1,3,h,w] float 0..1.

    Why not one antialiased resize of the whole float layer: for a 24 MP layer
    that is a 288 MB float copy and a wide filter kernel, a third of a
    preview's time. Here each band of rows is averaged over k×k blocks (k the
    largest whole factor, a box prefilter) as it is converted, and only the
    remaining < 2× step is an antialiased bilinear resize. The few rows and
    columns past the last whole block (< k) are left out.
    """
    height, width = image.shape[:2]
    k = int(min(height / size[0], width / size[1]))
    if k < 2:
        return resize(uint8_band_to_float(image, 0, height, device), size)
    hk, wk = height // k, width // k
    blocks = torch.empty((1, 3, hk, wk), device=device)
    rows = max(k, _BAND_PIXELS // max(1, width) // k * k)
    for y0 in range(0, hk * k, rows):
        y1 = min(hk * k, y0 + rows)
        band = uint8_band_to_float(image[:, :wk * k], y0, y1, device)
        blocks[:, :, y0 // k:y1 // k] = F.avg_pool2d(band, k)
    return resize(blocks, size)


# ----------------------------------------------------------------------------- filters


def _box_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Mean over a (2r+1) window along ``dim``, windows clipped at the border.

    Cumulative sums make it O(1) per pixel whatever the radius (a 16 MP mask is
    feathered by tens of pixels). float32 is enough: inputs are in 0..1 and rows
    are at most a few thousand long, so the running sums lose < 1e-3 of a grey level.
    """
    n = x.shape[dim]
    r = min(radius, n - 1)
    if r <= 0:
        return x
    dim = dim % x.dim()
    c = torch.cumsum(x, dim=dim)  # c[i] = sum of x[:i + 1]
    # window [max(i-r, 0), min(i+r+1, n)): sum = c[min(i+r, n-1)] - c[i-r-1] (0 if i ≤ r),
    # written as slice copies into one buffer: no concatenated intermediates, which
    # were most of the filter's time (bit-identical to the concatenating version)
    out = torch.empty_like(c)
    if n >= 2 * r + 2:  # three runs, each written once: starts at 0 / inside / ends at n
        out.narrow(dim, 0, r + 1).copy_(c.narrow(dim, r, r + 1))
        torch.sub(c.narrow(dim, 2 * r + 1, n - 2 * r - 1), c.narrow(dim, 0, n - 2 * r - 1),
                  out=out.narrow(dim, r + 1, n - 2 * r - 1))
        torch.sub(c.narrow(dim, n - 1, 1), c.narrow(dim, n - 2 * r - 1, r),
                  out=out.narrow(dim, n - r, r))
    else:  # windows that reach both ends: copy the upper sums, subtract the lower ones
        out.narrow(dim, 0, n - r).copy_(c.narrow(dim, r, n - r))
        out.narrow(dim, n - r, r).copy_(
            c.narrow(dim, n - 1, 1).expand_as(out.narrow(dim, n - r, r)))
        if n - r - 1 > 0:
            out.narrow(dim, r + 1, n - r - 1).sub_(c.narrow(dim, 0, n - r - 1))
    del c
    idx = torch.arange(n, device=x.device, dtype=x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    count = ((idx + r + 1).clamp(max=n) - (idx - r).clamp(min=0)).view(shape)
    return out.div_(count)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)² window of [..., H, W], border-normalised."""
    return _box_1d(_box_1d(x, radius, x.dim() - 2), radius, x.dim() - 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Approximate Gaussian blur of [..., H, W]: three box passes.

    Three successive boxes of width w have variance 3·(w²−1)/12, so choosing w
    from sigma gives a close Gaussian at O(1) cost per pixel, which matters for
    feathering a 16 MP mask by tens of pixels.
    """
    if sigma <= 0:
        return x
    if sigma < 3.0:
        return _gaussian_exact(x, sigma)
    # box widths wl and wl+2 mixed so the three passes' variance equals sigma² (Kovesi)
    ideal = math.sqrt(12.0 * sigma * sigma / 3 + 1.0)
    wl = int(ideal) - (1 - int(ideal) % 2)  # odd, ≤ ideal
    wl = max(1, wl)
    m = round((12.0 * sigma * sigma - 3 * wl * wl - 12 * wl - 9) / (-4.0 * wl - 4.0))
    for i in range(3):
        width = wl if i < m else wl + 2
        x = box_filter(x, (width - 1) // 2)
    return x


def _gaussian_exact(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian convolution (replicated border); for small sigma where
    box passes are too coarse and the kernel is short anyway."""
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum()
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"),
                    kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"),
                    kernel.view(1, 1, -1, 1))
    return flat.reshape(shape)


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of [..., H, W] computed on a grid ``sigma/3`` times coarser.

    A wide blur is smooth by definition, so it is computed area-reduced, blurred
    and bilinearly enlarged: the result differs from the full-size blur by well
    under a grey level while a 40 px blur of 16 MP costs a fraction of the time.
    """
    factor = int(sigma // 3)
    if factor < 2:
        return gaussian_blur(x, sigma)
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])
    small = F.avg_pool2d(flat, factor, ceil_mode=True)
    # area reduction already spreads by ~factor/sqrt(12); blur the rest
    rest = math.sqrt(max(sigma**2 - factor**2 / 12.0, 0.25)) / factor
    small = gaussian_blur(small, rest)
    out = torch.empty_like(flat)
    for y0, y1 in row_bands(shape[-2], shape[-1]):
        out[:, :, y0:y1] = resample_window(small, tuple(shape[-2:]), y0, y1)
    return out.reshape(shape)


def guided_coefficients(
    guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The guided filter's (He et al. 2010/2013) smoothed linear coefficients.

    guide: [1,C,h,w] with C = 1 (luma) or 3 (RGB); src: [1,K,h,w].
    Returns (a, b) with a: [1,K,C,h,w], b: [1,K,h,w], such that the filtered
    output is ``sum_c a[:, k, c] * guide[:, c] + b[:, k]``. Because a and b are
    smooth, they can be upsampled and applied to a finer guide (the "fast"
    guided filter): that is how the photo's full-resolution edges reach masks and
    stylized layers computed at a smaller size.
    """
    if guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and src {tuple(src.shape)} differ in size")
    channels, k = guide.shape[1], src.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"guide must have 1 or 3 channels, got {channels}")
    # every first-level window mean as ONE box filter over a stack of planes (the
    # same per-plane arithmetic as one call each; the cumulative sums then run
    # across planes): guide, src, the guide's channel products, guide × src
    pairs = [(i, j) for i in range(channels) for j in range(i, channels)]
    planes = [guide, src, *(guide[:, i:i + 1] * guide[:, j:j + 1] for i, j in pairs),
              *(guide[:, i:i + 1] * src for i in range(channels))]
    means = box_filter(torch.cat(planes, dim=1), radius)
    del planes
    mean_i, mean_p = means[:, :channels], means[:, channels:channels + k]
    products = means[:, channels + k:channels + k + len(pairs)]
    cross = means[:, channels + k + len(pairs):].unflatten(1, (channels, k))  # [1,C,K,h,w]
    if channels == 1:
        var = products - mean_i * mean_i
        cov = cross[:, 0] - mean_i * mean_p  # [1,K,h,w]
        a = (cov / (var + eps)).unsqueeze(2)  # [1,K,1,h,w]
    else:
        a = _rgb_guided_slopes(products, cross, mean_i, mean_p, eps)
    del means, products, cross
    b = mean_p - (a * mean_i.unsqueeze(1)).sum(dim=2)
    return box_filter(a, radius), box_filter(b, radius)


def _rgb_guided_slopes(products: torch.Tensor, cross: torch.Tensor, mean_i: torch.Tensor,
                       mean_p: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-pixel a = (Σ + eps·I)⁻¹ cov(I, p) for an RGB guide, by 3×3 cofactors.

    products: window means of rr, rg, rb, gg, gb, bb [1,6,h,w]; cross: of the
    guide × src [1,3,K,h,w]; mean_i [1,3,h,w], mean_p [1,K,h,w].
    """
    m_r, m_g, m_b = mean_i[:, 0], mean_i[:, 1], mean_i[:, 2]
    rr = products[:, 0] - m_r * m_r + eps
    rg = products[:, 1] - m_r * m_g
    rb = products[:, 2] - m_r * m_b
    gg = products[:, 3] - m_g * m_g + eps
    gb = products[:, 4] - m_g * m_b
    bb = products[:, 5] - m_b * m_b + eps
    # inverse of the symmetric matrix [[rr rg rb][rg gg gb][rb gb bb]]
    c_rr = gg * bb - gb * gb
    c_rg = gb * rb - rg * bb
    c_rb = rg * gb - gg * rb
    c_gg = rr * bb - rb * rb
    c_gb = rb * rg - rr * gb
    c_bb = rr * gg - rg * rg
    det = rr * c_rr + rg * c_rg + rb * c_rb
    slopes = []
    for k in range(mean_p.shape[1]):
        mp = mean_p[:, k]
        cr = cross[:, 0, k] - m_r * mp
        cg = cross[:, 1, k] - m_g * mp
        cb = cross[:, 2, k] - m_b * mp
        a_r = (c_rr * cr + c_rg * cg + c_rb * cb) / det
        a_g = (c_rg * cr + c_gg * cg + c_gb * cb) / det
        a_b = (c_rb * cr + c_gb * cg + c_bb * cb) / det
        slopes.append(torch.stack([a_r, a_g, a_b], dim=1))  # [1,3,h,w]
    return torch.stack(slopes, dim=1)  # [1,K,3,h,w]


# ----------------------------------------------------------------------------- resampling


def _source_coords(n_out: int, n_in: int, start: int, stop: int, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weights of bilinear sampling (align_corners=False) for out[start:stop]."""
    pos = (torch.arange(start, stop, device=device, dtype=torch.float64) + 0.5) * (
        n_in / n_out) - 0.5
    pos = pos.clamp(0, n_in - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (pos - i0).to(torch.float32)


def resample_window(low: torch.Tensor, out_size: tuple[int, int], y0: int, y1: int,
                    x0: int = 0, x1: int | None = None) -> torch.Tensor:
    """Window [y0:y1, x0:x1] of ``low`` bilinearly resized to ``out_size``.

    Same values as ``F.interpolate(low, out_size, mode="bilinear",
    align_corners=False)[..., y0:y1, x0:x1]`` without materialising the full
    output, so coefficients can be brought to 16 MP one band at a time.
    Works on any leading dims [..., h, w].
    """
    out_h, out_w = out_size
    x1 = out_w if x1 is None else x1
    h, w = low.shape[-2:]
    if (h, w) == (out_h, out_w):  # the weights are exactly 0: the window itself
        return low[..., y0:y1, x0:x1]
    iy0, iy1, wy = _source_coords(out_h, h, y0, y1, low.device)
    wy = wy.to(low.dtype).view(-1, 1)
    rows = low.index_select(-2, iy0) * (1 - wy) + low.index_select(-2, iy1) * wy
    if x0 == 0 and x1 == out_w:
        # whole rows: the library kernel is an order of magnitude faster than gathers
        lead = rows.shape[:-2]
        flat = rows.reshape(-1, 1, *rows.shape[-2:])
        out = F.interpolate(flat, size=(y1 - y0, out_w), mode="bilinear", align_corners=False)
        return out.reshape(*lead, y1 - y0, out_w)
    ix0, ix1, wx = _source_coords(out_w, w, x0, x1, low.device)
    wx = wx.to(low.dtype)
    return rows.index_select(-1, ix0) * (1 - wx) + rows.index_select(-1, ix1) * wx


# ----------------------------------------------------------------------------- guided


@dataclass(frozen=True)
class GuidedUpsampling:
    """Knobs of the guided upsampling of a stylized image.

    radius: window radius at working size (pixels); small keeps the fit local.
    eps: regulariser on the luma variance (luma in 0..1); photo structure with
        a local std well below sqrt(eps) is not transferred.
    max_slope: clamp on |a| so flat photo areas cannot amplify noise.
    """

    radius: int = 2
    eps: float = 2e-3
    max_slope: float = 3.0


def guided_upsample_into(
    outs: Sequence[np.ndarray],
    stylized: torch.Tensor,
    photo: np.ndarray,
    settings: GuidedUpsampling = GuidedUpsampling(),
    photo_small: torch.Tensor | None = None,
) -> None:
    """Write each of ``stylized`` ([R,3,h,w], 0..1) upsampled to the photo's size into ``outs``.

    outs: R arrays H×W×≥3 uint8 (their RGB channels are written, alpha is left alone).
    photo: H×W×≥3 uint8 full-resolution photo; its luma is the guide.
    photo_small: the photo at the stylized size (computed if absent).
    All regions share one pass over the photo: each band's luma is decoded once.
    """
    if len(outs) != stylized.shape[0]:
        raise ValueError(f"{len(outs)} outputs for {stylized.shape[0]} stylized images")
    height, width = photo.shape[:2]
    device = stylized.device
    if photo_small is None:
        full = uint8_band_to_float(photo, 0, height, device)
        photo_small = resize(full, tuple(stylized.shape[-2:]))
        del full
    guide_small = luminance(photo_small.float())
    coeffs = []
    for i in range(stylized.shape[0]):
        a, b = guided_coefficients(guide_small, stylized[i:i + 1].float(), settings.radius,
                                   settings.eps)
        a = a[:, :, 0].clamp_(-settings.max_slope, settings.max_slope)  # [1,3,h,w]
        coeffs.append(torch.cat([a, b], dim=1))  # [1,6,h,w]
    stacked = torch.cat(coeffs, dim=0)  # [R,6,h,w]: one resampling call per band
    for y0, y1 in row_bands(height, width):
        luma = luminance(uint8_band_to_float(photo, y0, y1, device))  # [1,1,n,W]
        ab = resample_window(stacked, (height, width), y0, y1)
        for i, out in enumerate(outs):
            band = torch.addcmul(ab[i:i + 1, 3:], ab[i:i + 1, :3], luma)
            out[y0:y1, :, :3] = to_uint8_hwc(band)
        del ab, luma


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """[1,3,h,w] 0..1 → h×w×3 uint8 numpy (rounded, clamped)."""
    img = image[0].clamp(0, 1).mul(255.0).round_().to(torch.uint8)
    return img.permute(1, 2, 0).cpu().numpy()


# ----------------------------------------------------------------------------- tiles


@dataclass(frozen=True)
class TileSettings:
    """Tile layout: ``tile`` side in pixels (None: from max_working_pixels) and overlap."""

    tile: int | None = None
    overlap_fraction: float = 0.125
    #: sigma (px) of the low-pass whose band is taken from the global pass; None: overlap/2
    lowpass_sigma: float | None = None


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int,
                                                                               int]]:
    """Tiles (y0, y1, x0, x1) of side ≤ ``tile`` covering the layer with ≥ ``overlap``."""
    if tile <= overlap:
        raise ValueError(f"tile {tile} must exceed overlap {overlap}")

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        count = math.ceil((n - overlap) / (tile - overlap))
        step = (n - tile) / (count - 1)
        return [round(i * step) for i in range(count)]

    return [(y, min(height, y + tile), x, min(width, x + tile))
            for y in starts(height) for x in starts(width)]


def _ramp(n: int, lo_inner: bool, hi_inner: bool, overlap: int, device: torch.device
          ) -> torch.Tensor:
    """1-D blend weight: rises over ``overlap`` px on sides shared with another tile."""
    w = torch.ones(n, device=device)
    if overlap <= 0:
        return w
    pos = torch.arange(n, device=device, dtype=torch.float32) + 0.5
    if lo_inner:
        w = torch.minimum(w, (pos / overlap).clamp(0, 1))
    if hi_inner:
        w = torch.minimum(w, ((n - pos) / overlap).clamp(0, 1))
    return w.clamp(min=1e-3)


def stylize_tiled(
    engine: StyleEngine,
    content: torch.Tensor,
    style_state: Any,
    regions: Sequence[RegionSettings],
    tile: int,
    overlap: int,
    reference: torch.Tensor | None = None,
    lowpass_sigma: float | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    stylize_tile: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Stylize [1,3,H,W] ``content`` tile by tile → [R,3,H,W] blended result.

    reference: [R,3,h,w] whole-frame stylization at a working size; when given,
        each tile's low frequencies (Gaussian, ``lowpass_sigma``) are replaced
        by the reference's, so tiles agree on colour and tone where their
        per-tile normalisation would disagree.
    on_tile(i, n): called before each tile (progress, cancel).
    stylize_tile: the network call for one tile ([1,3,h,w] → [R,3,h,w]); by
        default the engine's plain pass. The pipeline hands in the region
        passes of ``strokes.py`` so each region's stroke size holds in tiles too.
    """
    _, _, height, width = content.shape
    grid = tile_grid(height, width, tile, overlap)
    sigma = lowpass_sigma if lowpass_sigma is not None else max(1.0, overlap / 2)
    if reference is not None:
        # blur once at the reference's size (sigma scaled), then only resample per tile
        reference = gaussian_blur(reference.float(), sigma * reference.shape[-2] / height)
    acc = torch.zeros((len(regions), 3, height, width), device=content.device)
    weight = torch.zeros((1, 1, height, width), device=content.device)
    for i, (y0, y1, x0, x1) in enumerate(grid):
        if on_tile is not None:
            on_tile(i, len(grid))
        crop = content[:, :, y0:y1, x0:x1]
        if stylize_tile is not None:
            out = stylize_tile(crop).float()
        else:
            out = engine.stylize(engine.encode_content(crop), style_state, regions).float()
        if reference is not None:
            out = out - lowpass(out, sigma) + resample_window(reference, (height, width),
                                                              y0, y1, x0, x1)
        wy = _ramp(y1 - y0, y0 > 0, y1 < height, overlap, content.device)
        wx = _ramp(x1 - x0, x0 > 0, x1 < width, overlap, content.device)
        w = (wy.view(-1, 1) * wx.view(1, -1))[None, None]
        acc[:, :, y0:y1, x0:x1] += out * w
        weight[:, :, y0:y1, x0:x1] += w
        del out
    acc /= weight
    return acc.clamp_(0, 1)
