"""The portrait pass (daemon/portrait_pass.py): bands, ramp, face scale, faces, the hook.

Why these tests: the pass decides what of the photo survives on the face. A
band split that leaks the stylization's detail back in, a ramp that cuts at a
seam, or a feature scale that ignores the face's size would each pass by eye on
one photo and fail the benchmark on others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from doubles import ConstantSegmenter

from portrait_style.daemon import portrait_pass as pp
from portrait_style.daemon.color import rgb_to_ycbcr
from portrait_style.daemon.jobspec import RegionSettings
from portrait_style.daemon.sizing import lowpass

SAMPLES = Path(__file__).resolve().parents[1] / "portrait_style" / "samples"


def _images(h: int = 96, w: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    photo = torch.rand(1, 3, h, w, generator=g)
    stylized = torch.rand(1, 3, h, w, generator=g)
    return stylized, photo


def _luma(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_ycbcr(x)[:, 0:1]


def test_zero_likeness_or_zero_ramp_is_the_stylization_itself() -> None:
    stylized, photo = _images()
    ones = torch.ones(1, 1, 96, 96)
    assert torch.equal(pp.portrait_blend(stylized, photo, ones, 4.0, 0.0), stylized)
    assert torch.equal(pp.portrait_blend(stylized, photo, 0 * ones, 4.0, 1.0), stylized)


def test_full_likeness_takes_the_photos_detail_and_the_stylizations_tone_and_colour() -> None:
    stylized, photo = _images()
    stylized = stylized * 0.5 + 0.25  # room for the photo's detail without clamping
    photo = photo * 0.5 + 0.25
    sigma = 4.0
    out = pp.portrait_blend(stylized, photo, torch.ones(1, 1, 96, 96), sigma, 1.0,
                            stroke_keep=0.0, tone_keep=0.0, chroma_keep=0.0)
    y_out, y_s, y_p = _luma(out), _luma(stylized), _luma(photo)
    detail_p = y_p - lowpass(y_p, sigma)
    expected = lowpass(y_s, sigma) + detail_p
    clamped = ycbcr_clamp_mask(stylized, expected)
    assert torch.allclose(y_out[clamped], expected[clamped], atol=1e-4)
    chroma_out, chroma_s = rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(stylized)[:, 1:]
    assert torch.allclose(chroma_out[clamped.expand_as(chroma_out)],
                          chroma_s[clamped.expand_as(chroma_s)], atol=1e-4)


def ycbcr_clamp_mask(stylized: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pixels whose rebuilt RGB needs no clamping (where the identities hold exactly)."""
    from portrait_style.daemon.color import ycbcr_to_rgb

    ycc = torch.cat([y, rgb_to_ycbcr(stylized)[:, 1:]], 1)
    rgb = ycbcr_to_rgb(ycc)
    return ((rgb >= 0) & (rgb <= 1)).all(dim=1, keepdim=True)


def test_stroke_keep_puts_the_paintings_fine_band_back() -> None:
    stylized, photo = _images()
    ones = torch.ones(1, 1, 96, 96)
    without = pp.portrait_blend(stylized, photo, ones, 8.0, 1.0, stroke_keep=0.0, tone_keep=0.0)
    with_strokes = pp.portrait_blend(stylized, photo, ones, 8.0, 1.0, stroke_keep=0.5,
                                     tone_keep=0.0)
    fine_s = _luma(stylized) - lowpass(_luma(stylized), 2.0)
    added = _luma(with_strokes) - _luma(without)
    # what was added correlates with the painting's fine band, and is half its size
    corr = torch.corrcoef(torch.stack([added.flatten(), fine_s.flatten()]))[0, 1]
    assert corr > 0.9
    assert 0.3 < float(added.std() / fine_s.std()) < 0.6


def test_ramp_is_one_on_the_face_body_level_on_the_person_and_falls_without_a_step() -> None:
    face = pp.FaceGeometry(cx=50, cy=30, rx=10, ry=12, iod=8)
    mask = torch.zeros(1, 1, 100, 100)
    mask[..., 20:, 20:80] = 1.0
    ramp = pp.likeness_ramp([face], mask, 100, 100, body_level=0.3)[0, 0]
    assert ramp[30, 50] == 1.0
    assert ramp[95, 50] == pytest.approx(0.3)  # far down the body
    assert ramp[95, 95] == 0.0  # outside the person, far from the face
    ray = ramp[30, 50:80]  # from the face's centre to the right, inside the person
    assert bool((ray[1:] <= ray[:-1] + 1e-6).all())
    assert float((ray[1:] - ray[:-1]).abs().max()) < 0.2  # eased, no seam
    # no mask: only the faces count
    bare = pp.likeness_ramp([face], None, 100, 100)[0, 0]
    assert bare[30, 50] == 1.0 and bare[95, 50] == 0.0


def test_feature_scale_follows_the_eye_distance() -> None:
    small = pp.FaceGeometry(cx=0, cy=0, rx=5, ry=5, iod=20)
    large = pp.FaceGeometry(cx=0, cy=0, rx=5, ry=5, iod=80)
    assert pp.feature_sigma([small], 512, 512) == pytest.approx(
        pp.FEATURE_SIGMA_PER_IOD * 20)
    assert pp.feature_sigma([small, large], 512, 512) == pytest.approx(
        pp.FEATURE_SIGMA_PER_IOD * 80)
    assert pp.feature_sigma([], 960, 480) == pytest.approx(pp.FALLBACK_SIGMA * 960)


@dataclass
class _Face:
    box: tuple[float, float, float, float]
    keypoints: torch.Tensor
    score: float


class _WindowDetector:
    """Finds a face only in crops no larger than half the frame (as BlazeFace on a full body)."""

    def __init__(self, frame: int) -> None:
        self.frame = frame
        self.crops: list[tuple[int, int]] = []

    def __call__(self, image: torch.Tensor) -> list[_Face]:
        h, w = image.shape[-2:]
        self.crops.append((h, w))
        if max(h, w) > self.frame // 2:
            return []
        eyes = torch.tensor([[10.0, 12.0], [20.0, 12.0], [0, 0], [0, 0], [0, 0], [0, 0]])
        return [_Face(box=(5.0, 5.0, 25.0, 29.0), keypoints=eyes, score=0.9)]


def test_a_small_face_is_found_in_windows_and_mapped_back() -> None:
    detect = _WindowDetector(256)
    photo = torch.rand(1, 3, 256, 256)
    faces = pp.find_faces(detect, photo)
    assert len(faces) == 1 and faces[0].iod == pytest.approx(10.0)
    assert detect.crops[0] == (256, 256) and (128, 128) in detect.crops
    # windows away from the person are not searched
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 128:, 128:] = 1
    detect = _WindowDetector(256)
    faces = pp.find_faces(detect, photo, mask)
    # the first window overlapping the person starts at (64, 64); (0, 0) was skipped
    assert faces and (faces[0].cx, faces[0].cy) == (64 + 15.0, 64 + 17.0)
    assert len(detect.crops) < 1 + 9  # fewer than every ½-side window


def test_keep_likeness_touches_only_the_regions_that_ask_and_reads_the_given_mask() -> None:
    stylized = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    seg = ConstantSegmenter(torch.ones(1, 1, 16, 16))
    face = pp.FaceGeometry(cx=32, cy=32, rx=10, ry=10, iod=8)
    settings = [RegionSettings(), RegionSettings(likeness=0.8)]
    mask = np.full((128, 128), 255, np.uint8)
    out = pp.keep_likeness(stylized, photo, settings, seg, mask, lambda p, m: [face],
                           _always_a_face)
    assert torch.equal(out[0], stylized[0]) and not torch.equal(out[1], stylized[1])
    assert seg.calls == 0
    # without a mask, the segmenter's probability stands in (same ramp here: all person)
    again = pp.keep_likeness(stylized, photo, settings, seg, None, lambda p, m: [face],
                             _always_a_face)
    assert seg.calls == 1 and torch.allclose(again, out, atol=1e-5)
    # nothing asks: nothing happens, no model is called
    none = pp.keep_likeness(stylized, photo, [RegionSettings()] * 2, seg, None, None)
    assert none is stylized and seg.calls == 1


def _always_a_face(image: torch.Tensor, box: tuple, rotation: float) -> float:
    return 1.0


class _Mesh:
    """Presence = 1 on the photo; on a painted image, 1 once it is close enough to the photo."""

    def __init__(self, photo: torch.Tensor, photo_presence: float = 1.0) -> None:
        self.photo, self.photo_presence, self.calls = photo, photo_presence, 0

    def __call__(self, image: torch.Tensor, box: tuple, rotation: float) -> float:
        self.calls += 1
        if torch.equal(image, self.photo):
            return self.photo_presence
        return 1.0 if float((image - self.photo).abs().mean()) < 0.05 else 0.1


def test_a_face_the_mesh_no_longer_reads_is_protected_until_it_does() -> None:
    stylized, photo = _images()
    face = pp.FaceGeometry(cx=48, cy=48, rx=20, ry=20, iod=16, box=(32.0, 32.0, 64.0, 64.0))
    plain = pp.apply_portrait_pass(stylized, photo, 0.8, [face], None)
    mesh = _Mesh(photo)
    guarded = pp.apply_portrait_pass(stylized, photo, 0.8, [face], None, mesh)
    inside = (slice(None), slice(None), slice(40, 56), slice(40, 56))
    def off(x: torch.Tensor) -> float:
        return float((x - photo)[inside].abs().mean())

    assert off(guarded) < off(plain)
    assert mesh.calls >= 3  # the photo, then the painted face at least twice
    # far from the face nothing changed
    assert torch.equal(guarded[..., :4, :4], plain[..., :4, :4])
    # a face the photo itself does not hold is left as painted
    unsure = _Mesh(photo, photo_presence=0.2)
    assert torch.equal(pp.apply_portrait_pass(stylized, photo, 0.8, [face], None, unsure), plain)
    assert unsure.calls == 1


def test_person_at_decimates_a_big_mask_to_the_working_size() -> None:
    mask = np.zeros((1000, 800), np.uint8)
    mask[:, 400:] = 255
    small = pp.person_at(mask, 100, 80, torch.device("cpu"))
    assert small.shape == (1, 1, 100, 80)
    assert float(small[0, 0, :, :38].max()) == 0.0 and float(small[0, 0, :, 42:].min()) == 1.0


@pytest.mark.slow
def test_on_the_astronaut_the_face_keeps_the_photos_detail_and_is_still_painted() -> None:
    """Real models: the portrait's face detail tracks the photo's, its colours the painting's."""
    from PIL import Image

    from portrait_style.daemon.jobspec import JobContext, StylizeJob
    from portrait_style.daemon.regions import resolve_regions
    from portrait_style.daemon.runtime import load_pipeline

    try:
        pipeline, _ = load_pipeline(engine="magenta", device="cpu")
    except Exception as exc:  # weights not fetchable here
        pytest.skip(f"embedded models unavailable: {exc}")
    finder = pp.blazeface_finder(torch.device("cpu"))
    if finder is None:
        pytest.skip("face detector unavailable")
    content = np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize(
        (256, 256))).copy()
    style = np.asarray(Image.open(SAMPLES / "starry_night.jpg").convert("RGB")).copy()
    job = StylizeJob(content=content, style=style, style_key="t", outputs=frozenset(
        {"background", "portrait"}), regions=resolve_regions("magenta"))
    layers = pipeline.run(job, JobContext()).layers
    photo = torch.from_numpy(content).permute(2, 0, 1)[None].float() / 255
    faces = finder(photo, None)
    assert faces, "the astronaut's face is found"
    f = faces[0]
    y0, y1 = int(f.cy - f.ry * 0.6), int(f.cy + f.ry * 0.6)
    x0, x1 = int(f.cx - f.rx * 0.6), int(f.cx + f.rx * 0.6)

    def detail(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
        y = _luma(t)
        return (y - lowpass(y, 3.0))[..., y0:y1, x0:x1].flatten()

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    d_photo = detail(content)
    assert corr(detail(layers["portrait"]), d_photo) > corr(detail(layers["background"]),
                                                            d_photo) + 0.2
    # colour: the portrait's face is nearer the background's (painted) chroma than the photo's
    def chroma(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
        return rgb_to_ycbcr(t)[:, 1:, y0:y1, x0:x1]

    to_bg = (chroma(layers["portrait"]) - chroma(layers["background"])).abs().mean()
    to_photo = (chroma(layers["portrait"]) - chroma(content)).abs().mean()
    assert to_bg < to_photo


# ----------------------------------------------------------------- issue 22


def _grey_photo_and_blue_painting(h: int = 96, w: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """A grey photo with a face-like light/shade pattern; a painting in blues and yellows."""
    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    grey = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(5 * yy))[None, None]
    photo = grey.expand(1, 3, h, w).clone()
    lum = (grey + 0.1 * torch.randn(1, 1, h, w, generator=g)).clamp(0.05, 0.95)
    # dark = deep blue, light = yellow: the palette depends on the tone, plus blotches
    blotch = 0.15 * torch.randn(1, 1, h // 8, w // 8, generator=g)
    blotch = torch.nn.functional.interpolate(blotch, size=(h, w), mode="bilinear")
    cb = 0.22 - 0.2 * lum + blotch
    cr = -0.1 + 0.05 * lum
    from portrait_style.daemon.color import ycbcr_to_rgb

    stylized = ycbcr_to_rgb(torch.cat([lum, cb, cr], 1)).clamp(0, 1)
    return stylized, photo


def test_palette_chroma_is_the_paintings_colour_for_each_tone() -> None:
    stylized, _ = _grey_photo_and_blue_painting()
    s = rgb_to_ycbcr(stylized)
    weight = torch.ones(1, 1, 96, 96)
    ramp_y = torch.linspace(0.2, 0.8, 96).reshape(1, 1, 1, 96).expand(1, 1, 96, 96)
    chroma = pp.palette_chroma(s[:, :1], s[:, 1:], weight, ramp_y)
    # darker tones get bluer (Cb up), as the painting gives them, with the blotches averaged out
    cb = chroma[0, 0, 48]
    assert float(cb[5]) > float(cb[90]) + 0.08
    assert float(chroma[0, 0].std(dim=0).max()) < 1e-5  # a function of the tone alone


def test_a_grey_photos_face_gets_the_paintings_colour_even_when_the_face_check_steps_in(
        ) -> None:
    """Before issue 22 the face check's last resort was the photo's grey: a photograph
    pasted into the painting. Now the painting's palette stays on the face."""
    stylized, photo = _grey_photo_and_blue_painting()
    face = pp.FaceGeometry(cx=48, cy=48, rx=30, ry=30, iod=24, box=(28.0, 28.0, 68.0, 68.0))

    def never_a_face(image: torch.Tensor, box: tuple, rotation: float) -> float:
        return 1.0 if torch.equal(image, photo) else 0.1  # every protection step runs

    out = pp.apply_portrait_pass(stylized, photo, 0.8, [face], None, never_a_face)
    inside = (slice(None), slice(None), slice(40, 56), slice(40, 56))
    chroma_out = rgb_to_ycbcr(out)[:, 1:][inside].norm(dim=1).mean()
    chroma_painting = rgb_to_ycbcr(stylized)[:, 1:][inside].norm(dim=1).mean()
    assert float(chroma_out) > 0.35 * float(chroma_painting)  # before: 0 (the photo's grey)
    # and it is still the photo's face: its light and shade track the photo's
    y_out, y_photo = _luma(out)[inside].flatten(), _luma(photo)[inside].flatten()
    assert float(torch.corrcoef(torch.stack([y_out, y_photo]))[0, 1]) > 0.8


def test_under_a_two_tone_painting_the_face_takes_its_tones_in_the_photos_order() -> None:
    g = torch.Generator().manual_seed(7)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    photo = (0.3 + 0.4 * xx * yy + 0.05 * torch.rand(64, 64, generator=g))[None, None]
    photo = photo.expand(1, 3, 64, 64).clone()
    ink = (torch.rand(1, 1, 64, 64, generator=g) > 0.4).float().expand(1, 3, 64, 64).clone()
    ones = torch.ones(1, 1, 64, 64)
    flat = pp.portrait_blend(ink, photo, ones, 4.0, 1.0, tone_match=0.0)
    matched = pp.portrait_blend(ink, photo, ones, 4.0, 1.0, tone_match=1.0)

    def mid_tones(x: torch.Tensor) -> float:
        y = _luma(x)
        return float(((y > 0.2) & (y < 0.8)).float().mean())

    assert mid_tones(flat) > 0.5  # the continuous-tone photo face the issue saw
    assert mid_tones(matched) < 0.25  # now in the painting's two tones
    # monotone: the order of light and dark follows the face, not the ink's noise
    y_flat, y_matched = _luma(flat).flatten(), _luma(matched).flatten()
    order = torch.argsort(y_flat)
    assert float(torch.diff(y_matched[order]).min()) > -1e-4


def test_tone_matching_is_for_paintings_without_colour() -> None:
    weight = torch.ones(1, 1, 8, 8)
    assert pp.tonal_share(torch.zeros(1, 2, 8, 8), weight) == 1.0
    assert pp.tonal_share(torch.full((1, 2, 8, 8), 0.2), weight) == 0.0


def test_the_seam_between_the_two_looks_follows_the_photos_edge() -> None:
    """A fixed ramp crosses the photo's edge (a hat brim, hair) as a band; guided, it steps
    where the photo steps and stays flat on either side."""
    h, w = 64, 96
    photo = torch.full((1, 3, h, w), 0.2)
    photo[..., 52:] = 0.8  # the photo's edge at x = 52
    ramp = torch.linspace(1, 0, w).clamp(0, 1).reshape(1, 1, 1, w).expand(1, 1, h, w)
    ramp = ((ramp - 0.25) * 2).clamp(0, 1)  # a fixed ramp from x ≈ 24 to x ≈ 72
    guided = pp.follow_edges(ramp, photo, sigma=8.0)[0, 0, h // 2]
    fixed = ramp[0, 0, h // 2]
    step_guided = float(guided[50] - guided[54])
    step_fixed = float(fixed[50] - fixed[54])
    assert step_guided > 3 * step_fixed
    # on either side of the edge the amount changes less than the fixed ramp did
    assert float((guided[30] - guided[48]).abs()) < 0.8 * float((fixed[30] - fixed[48]).abs())
    assert float((guided[56] - guided[74]).abs()) < 0.8 * float((fixed[56] - fixed[74]).abs())


def test_the_amount_stays_inside_the_person_except_on_the_faces_core() -> None:
    face = pp.FaceGeometry(cx=50, cy=30, rx=10, ry=12, iod=8)
    mask = torch.zeros(1, 1, 100, 100)
    mask[..., :, :48] = 1.0  # the person mask stops mid-face (a segmenter's hole)
    ramp = pp.likeness_ramp([face], mask, 100, 100, body_level=0.3)[0, 0]
    assert ramp[30, 52] == 1.0  # the face's core counts in full
    # past the face's ellipse, outside the person: nothing of the photo (before: the
    # ellipse's ramp reached 0.5 here, a ghost over the background)
    assert ramp[30, 62] == 0.0
