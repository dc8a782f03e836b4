"""The person mask: guided refinement, feather, no-person detection, artist masks.

Synthetic photos with a known person border let the tests measure how far a
mask strays from the true edge; the real MediaPipe segmenter is checked on the
astronaut (always available) and on a scene without people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from doubles import ConstantSegmenter

from portrait_style.daemon.engines.base import Segmenter
from portrait_style.daemon.framing import grid_box_to_full, person_box, square_windows
from portrait_style.daemon.mask import (
    MaskSettings,
    artist_mask,
    clean_probability,
    component_areas,
    keep_large_components,
    person_mask,
    refine_probability,
)
from portrait_style.daemon.sizing import (
    box_filter,
    gaussian_blur,
    guided_coefficients,
    resample_window,
)

torch.set_num_threads(2)


def _disk_photo(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright 'person' disk off the coarse grid on a darker textured background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    truth = ((yy - 141.3) ** 2 / 70.7 ** 2 + (xx - 119.6) ** 2 / 57.1 ** 2) < 1.0
    photo = np.where(truth[..., None], [200, 160, 140], [40, 70, 110]).astype(np.float64)
    photo += rng.normal(0, 6, photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def _coarse_probability(truth: np.ndarray, native: int = 32) -> torch.Tensor:
    """What a segmenter at ``native`` px sees: an area-averaged, slightly blurred truth."""
    t = torch.from_numpy(truth.astype(np.float32))[None, None]
    coarse = F.adaptive_avg_pool2d(t, native)
    return gaussian_blur(coarse, 0.7).clamp(0, 1)


def _border_error(mask: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(mask.astype(np.float64) / 255.0 - truth).mean())


def test_refinement_follows_a_sharp_edge_better_than_bilinear() -> None:
    photo, truth = _disk_photo()
    prob = _coarse_probability(truth)
    refined = refine_probability(prob, photo, MaskSettings())
    bilinear = F.interpolate(prob, size=truth.shape, mode="bilinear", align_corners=False)
    bilinear_mask = (bilinear[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    err_refined = _border_error(refined, truth)
    err_bilinear = _border_error(bilinear_mask, truth)
    assert refined.shape == truth.shape and refined.dtype == np.uint8
    assert err_refined < 0.6 * err_bilinear, (err_refined, err_bilinear)
    # and the transition band is narrower
    soft = lambda m: int(((m > 25) & (m < 230)).sum())  # noqa: E731
    assert soft(refined) < 0.6 * soft(bilinear_mask)


def test_vertical_step_edge_lands_on_the_photo_edge() -> None:
    size, edge = 128, 77  # an edge between two coarse cells
    photo = np.full((size, size, 3), 30, np.uint8)
    photo[:, :edge] = 220
    truth = np.zeros((size, size), bool)
    truth[:, :edge] = True
    refined = refine_probability(_coarse_probability(truth, 16), photo)
    row = refined[size // 2].astype(int)
    assert row[edge - 3] > 200 and row[edge + 2] < 55, row[edge - 6:edge + 6]


def test_feather_widens_the_transition() -> None:
    photo, truth = _disk_photo()
    prob = _coarse_probability(truth)
    sharp = refine_probability(prob, photo, MaskSettings(feather_px=0))
    soft = refine_probability(prob, photo, MaskSettings(feather_px=6))

    def band(m: np.ndarray) -> int:
        return int(((m > 12) & (m < 243)).sum())

    assert band(soft) > 1.5 * band(sharp)
    # feathering keeps the mask where it was (mean barely moves)
    assert abs(soft.mean() - sharp.mean()) < 3


def test_no_person_gives_an_empty_mask_and_says_so() -> None:
    photo, _ = _disk_photo(96)
    seg = ConstantSegmenter(torch.full((1, 1, 32, 32), 0.2))
    result = person_mask(seg, photo)
    assert not result.person_found
    assert result.mask.shape == (96, 96) and not result.mask.any()
    # a speck of probability below the minimum area is still "no person"
    speck = torch.zeros((1, 1, 32, 32))
    speck[0, 0, 3, 3] = 0.9
    assert not person_mask(ConstantSegmenter(speck), photo).person_found


def test_person_found_mask_is_full_size_uint8() -> None:
    photo, truth = _disk_photo(200)
    seg = ConstantSegmenter(_coarse_probability(truth, 32))
    result = person_mask(seg, photo)
    assert result.person_found and result.source == "segmenter"
    assert result.mask.shape == (200, 200) and result.mask.dtype == np.uint8
    assert _border_error(result.mask, truth) < 0.03


def test_rectangular_photo_and_guide_smaller_than_photo() -> None:
    photo, truth = _disk_photo(256)
    photo, truth = photo[:, 40:220], truth[:, 40:220]
    settings = MaskSettings(guide_long_side=128)  # refinement grid half the photo's size
    refined = refine_probability(_coarse_probability(truth, 32), photo, settings)
    assert refined.shape == truth.shape
    assert _border_error(refined, truth) < 0.04


def test_artist_mask_is_used_as_is() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    result = artist_mask(mask, 20, 30)
    assert result.mask is mask and result.person_found and result.source == "artist"
    with pytest.raises(ValueError, match="20×31"):
        artist_mask(mask, 20, 31)
    with pytest.raises(ValueError, match="uint8"):
        artist_mask(mask.astype(np.float32), 20, 30)


# ----------------------------------------------------------------------------- primitives


def test_box_filter_matches_avg_pool_with_clipped_borders() -> None:
    x = torch.rand(1, 2, 37, 51)
    ref = F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)
    assert torch.allclose(box_filter(x, 3), ref, atol=1e-5)


def test_gaussian_blur_has_the_requested_spread() -> None:
    x = torch.zeros(1, 1, 101, 101)
    x[0, 0, 50, 50] = 1.0
    y = gaussian_blur(x, 5.0)[0, 0]
    assert abs(float(y.sum()) - 1.0) < 1e-4
    pos = torch.arange(101, dtype=torch.float32) - 50
    var = float((y.sum(dim=0) * pos**2).sum())
    assert 4.0**2 < var < 6.0**2


def test_guided_filter_keeps_a_constant_and_reproduces_a_linear_function() -> None:
    guide = torch.rand(1, 3, 40, 40)
    const = torch.full((1, 1, 40, 40), 0.3)
    a, b = guided_coefficients(guide, const, 3, 1e-3)
    out = (a[:, 0] * guide).sum(1) + b[:, 0]
    assert torch.allclose(out, const[:, 0], atol=1e-5)
    # src linear in the guide: the filter reproduces it when eps is tiny
    src = (0.5 * guide[:, 0] - 0.2 * guide[:, 2] + 0.1)[:, None]
    a, b = guided_coefficients(guide, src, 3, 1e-7)
    out = (a[:, 0] * guide).sum(1) + b[:, 0]
    assert torch.allclose(out, src[:, 0], atol=1e-3)


def test_resample_window_matches_interpolate() -> None:
    low = torch.rand(1, 3, 13, 17)
    full = F.interpolate(low, size=(61, 90), mode="bilinear", align_corners=False)
    part = resample_window(low, (61, 90), 10, 33, 5, 77)
    assert torch.allclose(part, full[..., 10:33, 5:77], atol=1e-5)


# ----------------------------------------------------------------------------- real model




def test_selfie_on_the_astronaut(selfie: Segmenter) -> None:
    from skimage.data import astronaut

    photo = astronaut()  # 512², the person fills the lower right two thirds
    result = person_mask(selfie, photo)
    assert result.person_found
    m = result.mask
    assert m.shape == (512, 512)
    assert m[170:230, 200:280].mean() > 230  # her face
    assert m[20:80, 20:80].mean() < 25  # sky/flag corner above the shoulder
    assert 0.25 < (m >= 128).mean() < 0.75
    # the grey smear and stray blobs at the bottom left (flag, frame edge) are gone
    assert m[300:500, 0:12].mean() < 25


def test_a_photo_at_the_segmenters_own_size_outside_inference_mode(selfie: Segmenter) -> None:
    """256² is the model's size: its output is used as is, and must not be written in place."""
    from skimage.data import astronaut

    photo = np.ascontiguousarray(astronaut()[::2, ::2])  # 256²
    assert not torch.is_inference_mode_enabled()
    result = person_mask(selfie, photo)
    assert result.person_found and result.mask.shape == (256, 256)


@pytest.mark.slow
def test_selfie_finds_no_person_in_a_landscape(selfie: Segmenter, shared_data: Path) -> None:
    from PIL import Image

    path = shared_data / "content" / "nonportrait_kodak_mountain_stream.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    photo = np.asarray(Image.open(path).convert("RGB"))
    result = person_mask(selfie, photo)
    assert not result.person_found, result.person_fraction
    assert not result.mask.any()


# ----------------------------------------------------------------- clean-up rules


def test_components_are_8_connected_and_small_ones_dropped() -> None:
    binary = np.zeros((40, 40), bool)
    binary[5:25, 5:25] = True  # the person: 400 px
    binary[25:35, 25:35] = True  # touches it only diagonally: the same component
    binary[2:5, 32:35] = True  # a 9 px blob, apart
    binary[30:40, 0:10] = True  # 100 px, a quarter of the person: kept at share 0.1
    rows, roots, areas = component_areas(binary)
    assert sorted(set(areas)) == [9, 100, 500]
    kept = keep_large_components(binary, 0.1)
    assert kept[30, 30] and kept[35, 5] and not kept[3, 33]
    assert not keep_large_components(np.zeros((5, 5), bool), 0.1).any()


def _prob(h: int = 128, w: int = 128) -> torch.Tensor:
    """A confident person in the middle, cut by the bottom edge."""
    p = torch.zeros(1, 1, h, w)
    p[..., 40:, 40:88] = 0.97
    return p


def test_clean_removes_blobs_haze_and_edge_smears_but_keeps_the_soft_fringe() -> None:
    p = _prob()
    p[..., 10:14, 10:14] = 0.9  # a stray blob
    p[..., 20:60, 100:110] = 0.3  # detached grey haze
    p[..., 80:128, 0:40] = 0.6  # a grey smear along the left edge, joined to the person
    p[..., 30:40, 40:88] = 0.3  # the hair's soft fringe above the head
    out = clean_probability(p, MaskSettings())[0, 0]
    assert float(out[12, 12]) == 0.0 and float(out[40, 105]) == 0.0
    assert float(out[100, 1]) < 0.05  # the smear at the frame's edge is gone
    assert float(out[100, 30]) == pytest.approx(0.6)  # inside the band's inner side: kept
    assert float(out[100, 60]) == pytest.approx(0.97)  # the body at the bottom edge stays
    assert float(out[127, 60]) == pytest.approx(0.97)
    assert float(out[37, 60]) == pytest.approx(0.3)  # the fringe is untouched


def test_clean_rules_can_be_turned_off() -> None:
    p = _prob()
    p[..., 80:128, 0:40] = 0.6
    off = MaskSettings(edge_band=0.0)
    assert float(clean_probability(p, off)[0, 0, 100, 1]) == pytest.approx(0.6)
    assert torch.equal(clean_probability(torch.zeros(1, 1, 8, 8)), torch.zeros(1, 1, 8, 8))


def test_person_mask_applies_the_clean_up() -> None:
    p = _prob(64, 64)
    p[..., 2:5, 2:5] = 0.9  # blob
    photo = np.full((128, 128, 3), 128, np.uint8)
    result = person_mask(ConstantSegmenter(p), photo, settings=MaskSettings(contrast=1.0))
    assert result.person_found and result.mask[7, 7] < 10 and result.mask[110, 110] > 200


# -- framing: a small person is segmented again on their own box ------------------------------
def _load_mask_framing_bench():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / "mask_framing.py"
    if str(path.parent) not in sys.path:  # its helpers (machine.py) sit beside it
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location("bench_mask_framing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_square_windows_cover_elongated_frames_only() -> None:
    assert square_windows(100, 110) == []
    wide = square_windows(100, 150)
    assert all(y1 - y0 == 100 and x1 - x0 == 100 for y0, y1, x0, x1 in wide)
    assert wide[0][2] == 0 and wide[-1][3] == 150 and len(wide) == 3
    tall = square_windows(300, 100)
    assert tall[0][0] == 0 and tall[-1][1] == 300 and all(x1 == 100 for *_, x1 in tall)


def test_person_box_is_square_with_a_margin_and_clipped() -> None:
    p = torch.zeros(1, 1, 100, 200)
    p[..., 40:60, 90:100] = 0.3  # 20 tall, 10 wide, above the 0.25 threshold
    assert person_box(p, 0.25, 0.25) == (35, 65, 80, 110)  # side 20·1.5, centred
    p[..., 90:100, 0:4] = 0.9  # reaches the corner: the box is clipped there
    y0, y1, x0, x1 = person_box(p, 0.25, 0.0)
    assert (y1, x0) == (100, 0)
    assert person_box(torch.zeros(1, 1, 8, 8), 0.25, 0.25) is None
    assert grid_box_to_full((10, 20, 30, 40), (100, 200), (1000, 2000)) == (100, 200, 300, 400)


class _BrightSegmenter(Segmenter):
    """Person = bright pixels, seen at a coarse 24² like a small model: a small person blurs."""

    name = "bright"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def person_probability(self, image: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(image.shape[-2:]))
        bright = (image.mean(dim=1, keepdim=True) > 0.5).float()
        return F.interpolate(bright, size=(24, 24), mode="area")


def test_a_small_person_is_reframed_and_comes_out_solid() -> None:
    photo = np.full((300, 450, 3), 30, np.uint8)
    photo[200:290, 300:330] = 220  # a thin figure, 30 px wide: about 1.6 native px
    seg = _BrightSegmenter()
    framed = person_mask(seg, photo)
    assert framed.framed_box is not None
    whole_only = person_mask(_BrightSegmenter(), photo, settings=MaskSettings(reframe_max_share=0))
    assert whole_only.framed_box is None
    inside = (slice(205, 285), slice(305, 325))
    assert framed.mask[inside].mean() > 240, "reframed: the figure is solid"
    assert whole_only.mask[inside].mean() < framed.mask[inside].mean() - 40, \
        "the whole-frame pass alone leaves it grey (what the reframing fixes)"
    assert framed.mask[:150].max() == 0 and framed.mask[:, :250].max() == 0
    assert len(seg.sizes) >= 2 and max(seg.sizes[-1]) < 300  # the last pass saw only the box


def test_a_person_who_fills_the_frame_is_not_reframed() -> None:
    photo, truth = _disk_photo()
    result = person_mask(_BrightSegmenter(), photo)
    assert result.person_found and result.framed_box is None


@pytest.mark.parametrize(("photo_name", "scale", "on_at_least", "off_at_most"), [
    ("obama_official_portrait_2012", 0.35, 0.85, 0.5),  # standing, small in the frame
    ("katherine_johnson_nasa_desk", 0.6, 0.6, 0.4),  # seated at a desk (README figure)
])
def test_real_small_person_in_a_wide_frame(selfie: Segmenter, shared_data: Path,
                                           photo_name: str, scale: float, on_at_least: float,
                                           off_at_most: float) -> None:
    """A portrait small in a 3:2 frame: whole-frame segmentation greys or loses it; reframing
    brings it back solid."""
    from PIL import Image

    bench = _load_mask_framing_bench()
    photo = np.asarray(Image.open(shared_data / "content" / f"{photo_name}.jpg").convert("RGB"))
    assert person_mask(selfie, photo).framed_box is None  # fills its own frame
    person = bench.mediapipe_pipeline(selfie, photo) >= 0.5
    frame, where = bench.small_person_frame(photo, person, scale, 1.5, 0.6)
    on = person_mask(selfie, frame)
    off = person_mask(selfie, frame, settings=MaskSettings(reframe_max_share=0))
    iou_on, iou_off = bench.iou(on.mask >= 128, where), bench.iou(off.mask >= 128, where)
    assert on.framed_box is not None and iou_on >= on_at_least, iou_on
    assert iou_off <= off_at_most, f"whole-frame IoU {iou_off:.3f}: no longer needs reframing"
    assert bench.grey_share(on.mask / 255.0, where) < 0.12
