"""The ``structure`` knob: stylized colours kept, edges moved back onto the photo's."""

from __future__ import annotations

import torch

from portrait_style.daemon.structure import keep_structure, structure_radius


def _disk(size: int, cy: float, cx: float, r: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()


def _edges(image: torch.Tensor) -> torch.Tensor:
    gray = image.mean(dim=1, keepdim=True)
    gy = (gray[..., 1:, :-1] - gray[..., :-1, :-1]).abs()
    gx = (gray[..., :-1, 1:] - gray[..., :-1, :-1]).abs()
    return (gx + gy)[0, 0]


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A photo with a dark 'eye', and a stylization that moved it and added strokes."""
    size = 128
    torch.manual_seed(0)
    eye = _disk(size, 64, 64, 14)
    photo = (0.8 - 0.6 * eye).expand(1, 3, size, size).clone()
    moved_eye = _disk(size, 64, 70, 14)  # the network shifted the feature by 6 px
    tint = torch.tensor([0.9, 0.6, 0.3]).view(1, 3, 1, 1)
    strokes = 0.15 * torch.randn(1, 1, size, size)
    stylized = ((0.75 - 0.5 * moved_eye) * tint + strokes).clamp(0, 1)
    return photo, stylized


def test_amount_zero_is_the_identity() -> None:
    photo, stylized = _scene()
    assert torch.equal(keep_structure(stylized, photo, 0.0), stylized)


def test_full_structure_puts_edges_where_the_photo_has_them() -> None:
    photo, stylized = _scene()
    kept = keep_structure(stylized, photo, 1.0)
    photo_edges = _edges(photo) > 0.1
    def on_photo_edges(image: torch.Tensor) -> float:
        """Share of the image's edge energy lying on the photo's edges."""
        energy = _edges(image)
        return float(energy[photo_edges].sum() / energy.sum())
    assert on_photo_edges(kept) > 2 * on_photo_edges(stylized)
    # the strokes in flat areas are smoothed away
    flat = _edges(photo) == 0
    assert _edges(kept)[flat].mean() < 0.5 * _edges(stylized)[flat].mean()


def test_colours_come_from_the_stylization_not_the_photo() -> None:
    photo, stylized = _scene()
    kept = keep_structure(stylized, photo, 1.0)
    stylized_means = stylized.mean(dim=(2, 3))
    kept_means = kept.mean(dim=(2, 3))
    assert torch.allclose(kept_means, stylized_means, atol=0.03)
    assert (kept_means - photo.mean(dim=(2, 3))).abs().max() > 0.2  # the tint stays


def test_half_structure_is_between() -> None:
    photo, stylized = _scene()
    half = keep_structure(stylized, photo, 0.5)
    full = keep_structure(stylized, photo, 1.0)
    assert torch.allclose(half, (stylized + full) / 2, atol=1e-5)


def test_radius_scales_with_the_image() -> None:
    assert structure_radius(1024, 768) == 4
    assert structure_radius(2048, 2048) == 8
    assert structure_radius(100, 60) == 2
