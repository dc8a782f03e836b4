"""Preserve colour: the painting's strokes and tones, the photo's colours.

Why luminance transfer: keeping a person's skin and clothes in their own colours
while taking the painting's brushwork is a common artist request (Gatys et al.
2017, "Controlling perceptual factors"). Swapping the chroma after the fact is
engine-agnostic and costs nothing. The stylized luminance is first matched in
mean and standard deviation to the photo's, otherwise a dark or pale style
washes the photo's colours out or crushes them.

Full-range BT.601 YCbCr, the JPEG colour space: cheap, invertible, and
luminance close enough to perceived lightness for this purpose.
"""

from __future__ import annotations

import torch

__all__ = ["preserve_color", "rgb_to_ycbcr", "ycbcr_to_rgb"]


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] RGB 0..1 → Y, Cb, Cr (Y in 0..1, chroma centred on 0)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_ycbcr`` (not clamped)."""
    y, cb, cr = ycc[:, 0], ycc[:, 1], ycc[:, 2]
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], dim=1)


def preserve_color(stylized: torch.Tensor, photo: torch.Tensor,
                   match_luminance: bool = True) -> torch.Tensor:
    """Stylized luminance + the photo's chroma, per image of the batch.

    stylized: [N,3,H,W] 0..1; photo: [1,3,H,W] or [N,3,H,W] 0..1, same H, W.
    """
    if stylized.shape[-2:] != photo.shape[-2:]:
        raise ValueError(f"sizes differ: stylized {tuple(stylized.shape)}, "
                         f"photo {tuple(photo.shape)}")
    s = rgb_to_ycbcr(stylized.float())
    p = rgb_to_ycbcr(photo.float())
    y = s[:, 0:1]
    if match_luminance:
        y_mean = y.mean(dim=(2, 3), keepdim=True)
        y_std = y.std(dim=(2, 3), keepdim=True).clamp(min=1e-4)
        p_mean = p[:, 0:1].mean(dim=(2, 3), keepdim=True)
        p_std = p[:, 0:1].std(dim=(2, 3), keepdim=True)
        y = (y - y_mean) / y_std * p_std + p_mean
    chroma = p[:, 1:3].expand(y.shape[0], -1, -1, -1)
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp_(0, 1).to(stylized.dtype)
