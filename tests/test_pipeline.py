"""The portrait pipeline over small test engines, plus sizing, colour and runtime.

``TinyEngine`` is a random-weight conv net with instance norm and AdaIN-style
style statistics: the same shape of computation as the real engines (and the
same per-image normalisation that makes tiles disagree), at a size the tests
can afford. ``EllipseSegmenter`` returns a fixed ellipse at a native 64².
Real engines are exercised at the end, skipped while their modules are absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from doubles import EllipseSegmenter
from shared_data import SHARED_DATA

from portrait_style.daemon.color import preserve_color, rgb_to_ycbcr, ycbcr_to_rgb
from portrait_style.daemon.engines.base import RegionSettings, Segmenter, StyleEngine
from portrait_style.daemon.framing import square_windows
from portrait_style.daemon.jobspec import JobCancelled, JobContext, StylizeJob
from portrait_style.daemon.pipeline import PortraitPipeline
from portrait_style.daemon.regions import PRESETS
from portrait_style.daemon.sizing import (
    guided_upsample_into,
    stylize_tiled,
    tile_grid,
    working_size,
)
from portrait_style.daemon.strokes import EDGE_PAD

torch.set_num_threads(2)
ALL = frozenset({"background", "portrait", "mask", "composite"})
STAGES = ["decode", "segment", "encode", "transform", "upsample", "compose", "encode_reply"]


class TinyEngine(StyleEngine):
    """Random-weight conv net: instance-normalised features, style mean/std (test double)."""

    name = "tiny"

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(8, 3, 3, 3, generator=g) * 0.5
        self.w2 = torch.randn(3, 8, 3, 3, generator=g) * 0.3
        self.calls: list[list[RegionSettings]] = []
        self.content_sizes: list[tuple[int, int]] = []
        self.style_encodes = 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode_style(self, style: torch.Tensor) -> Any:
        self.style_encodes += 1
        return style.mean(dim=(2, 3), keepdim=True), style.std(dim=(2, 3), keepdim=True)

    def encode_content(self, content: torch.Tensor) -> Any:
        self.content_sizes.append(tuple(content.shape[-2:]))
        return content

    def stylize(self, content_state: Any, style_state: Any,
                regions: Sequence[RegionSettings]) -> torch.Tensor:
        self.calls.append(list(regions))
        x = content_state
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, max(0, 4 - w), 0, max(0, 4 - h)), mode="replicate")
        feat = F.instance_norm(F.relu(F.conv2d(padded, self.w1, padding=1)))
        out = F.instance_norm(F.conv2d(feat, self.w2, padding=1))[..., :h, :w]
        mean, std = style_state
        out = (out * std + mean).clamp(0, 1)
        return torch.cat([s.strength * out + (1 - s.strength) * x for s in regions])


def _photo(h: int, w: int, channels: int = 3, seed: int = 1) -> np.ndarray:
    """A smooth synthetic photo with a few sharp shapes (and a graded alpha)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.5 + 0.4 * np.cos(5 * yy), 0.3 + 0.5 * xx * yy],
                   -1)
    img[h // 4: h // 2, w // 3: w // 2] = [0.9, 0.2, 0.1]
    rng = np.random.default_rng(seed)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    out = (img * 255).astype(np.uint8)
    if channels == 4:
        alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
        out = np.concatenate([out, alpha[..., None]], -1)
    return out


def _style() -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.random((48, 64, 3)) * np.array([255, 120, 60])).astype(np.uint8)


def _job(content: np.ndarray, **kw: Any) -> StylizeJob:
    kw.setdefault("regions", dict(PRESETS["magenta"]))
    return StylizeJob(content=content, style=_style(), style_key="s1", **kw)


def _pipeline(engine: StyleEngine | None = None, segmenter: Segmenter | None = None,
              **kw: Any) -> PortraitPipeline:
    kw.setdefault("max_working_pixels", 512 * 512)
    return PortraitPipeline(engine or TinyEngine(), segmenter or EllipseSegmenter(), **kw)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def __call__(self, name: str, fraction: float) -> None:
        self.events.append((name, fraction))

    @property
    def stages(self) -> list[str]:
        names = [n for n, _ in self.events]
        return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


# ----------------------------------------------------------------------------- layers


def test_all_layers_full_size_rgba_alpha_preserved() -> None:
    content = _photo(90, 120, 4)
    engine, seg = TinyEngine(), EllipseSegmenter()
    result = _pipeline(engine, seg).run(_job(content), JobContext())
    assert set(result.layers) == ALL
    for name in ("background", "portrait", "composite"):
        layer = result.layers[name]
        assert layer.shape == (90, 120, 4) and layer.dtype == np.uint8, name
        assert np.array_equal(layer[..., 3], content[..., 3]), name
    assert result.layers["mask"].shape == (90, 120) and result.layers["mask"].dtype == np.uint8
    # ONE engine call, background first; the portrait's full-strength stylization is the
    # background's own network output (same engine knobs), so it is not run twice
    assert engine.calls == [[PRESETS["magenta"]["background"]]]
    # the network sees the working size plus strokes.EDGE_PAD of mirrored margin
    assert engine.content_sizes == [(90 + 2 * EDGE_PAD, 120 + 2 * EDGE_PAD)]
    # the mask is made once: its whole-frame pass plus the 4:3 frame's locating windows
    assert seg.calls == 1 + len(square_windows(90, 120))
    assert result.info["person_found"] is True and result.info["sizing"] == "none"
    assert not np.array_equal(result.layers["background"], result.layers["portrait"])


def test_rgb_in_gives_rgb_out_and_composite_blends_through_the_mask() -> None:
    content = _photo(80, 100)
    result = _pipeline().run(_job(content), JobContext())
    bg = result.layers["background"].astype(float)
    pt = result.layers["portrait"].astype(float)
    m = result.layers["mask"].astype(float)[..., None] / 255
    assert result.layers["composite"].shape == (80, 100, 3)
    assert np.abs(result.layers["composite"] - (bg + (pt - bg) * m)).max() <= 1.0
    assert m.min() == 0 and m.max() == 1  # the ellipse is inside, the corners outside


def test_only_the_portrait_skips_segmentation_and_the_background_pass() -> None:
    engine, seg = TinyEngine(), EllipseSegmenter()
    result = _pipeline(engine, seg).run(_job(_photo(64, 64), outputs=frozenset({"portrait"})),
                                        JobContext())
    assert set(result.layers) == {"portrait"}
    assert engine.calls == [[PRESETS["magenta"]["portrait"]]]
    # the likeness ramp needs the person: the mask is made once (not returned)
    assert seg.calls == (1 if PRESETS["magenta"]["portrait"].likeness > 0 else 0)


def test_the_portrait_asked_for_alone_equals_the_one_beside_the_mask() -> None:
    content = _photo(72, 96)
    alone = _pipeline(TinyEngine(), EllipseSegmenter()).run(
        _job(content, outputs=frozenset({"portrait"})), JobContext())
    beside = _pipeline(TinyEngine(), EllipseSegmenter()).run(
        _job(content, outputs=frozenset({"portrait", "mask", "composite"})), JobContext())
    assert np.array_equal(alone.layers["portrait"], beside.layers["portrait"])


def test_only_the_mask_runs_no_style_pass() -> None:
    engine = TinyEngine()
    result = _pipeline(engine).run(_job(_photo(64, 64), outputs=frozenset({"mask"})),
                                   JobContext())
    assert set(result.layers) == {"mask"} and engine.calls == []


def test_whole_image_is_background_settings_everywhere_with_an_empty_mask() -> None:
    engine, seg = TinyEngine(), EllipseSegmenter()
    content = _photo(60, 70, 4)
    result = _pipeline(engine, seg).run(_job(content, whole_image=True), JobContext())
    assert engine.calls == [[PRESETS["magenta"]["background"]]] and seg.calls == 0
    assert not result.layers["mask"].any()
    assert np.array_equal(result.layers["portrait"], result.layers["background"])
    assert np.array_equal(result.layers["composite"], result.layers["background"])
    assert result.layers["portrait"] is not result.layers["background"]


def test_artist_mask_is_used_as_is() -> None:
    engine, seg = TinyEngine(), EllipseSegmenter()
    content = _photo(50, 60)
    mask = np.zeros((50, 60), np.uint8)
    mask[:, :30] = 255
    result = _pipeline(engine, seg).run(_job(content, mask=mask), JobContext())
    assert seg.calls == 0 and result.info["mask_source"] == "artist"
    assert np.array_equal(result.layers["mask"], mask)
    comp = result.layers["composite"]
    assert np.array_equal(comp[:, :30], result.layers["portrait"][:, :30])
    assert np.array_equal(comp[:, 30:], result.layers["background"][:, 30:])


def test_no_person_composite_is_the_background_and_skips_the_portrait_pass() -> None:
    engine = TinyEngine()
    result = _pipeline(engine, EllipseSegmenter(empty=True)).run(
        _job(_photo(64, 64), outputs=frozenset({"composite", "mask"})), JobContext())
    assert result.info["person_found"] is False
    assert not result.layers["mask"].any()
    assert engine.calls == [[PRESETS["magenta"]["background"]]]


def test_job_regions_reach_the_engine_and_preserve_color_keeps_chroma() -> None:
    engine = TinyEngine()
    content = _photo(64, 80)
    regions = {"background": RegionSettings(strength=1.0),
               "portrait": RegionSettings(strength=0.9, preserve_color=True)}
    result = _pipeline(engine).run(_job(content, regions=regions), JobContext())
    assert engine.calls[0] == [regions["background"], regions["portrait"]]

    def chroma(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
        return rgb_to_ycbcr(t)[:, 1:]

    photo_c = chroma(content)
    # not exact: RGB clamping of saturated colours at a new luminance moves chroma a little
    kept = (chroma(result.layers["portrait"]) - photo_c).abs().mean()
    styled = (chroma(result.layers["background"]) - photo_c).abs().mean()
    assert kept < 0.025 and kept < 0.3 * styled, (kept, styled)


def test_style_encoding_is_cached_by_key() -> None:
    engine = TinyEngine()
    pipe = _pipeline(engine, style_cache_size=1)
    content = _photo(40, 40)
    pipe.run(_job(content), JobContext())
    pipe.run(_job(content), JobContext())
    assert engine.style_encodes == 1
    pipe.run(StylizeJob(content=content, style=_style(), style_key="s2", regions={}),
             JobContext())
    pipe.run(_job(content), JobContext())  # s1 was evicted (cache of one)
    assert engine.style_encodes == 3


def test_content_style_and_mask_are_never_written() -> None:
    content = _photo(70, 90, 4)
    mask = np.full((70, 90), 200, np.uint8)
    job = _job(content, mask=mask)
    before = [hashlib.sha256(a.tobytes()).hexdigest() for a in (content, job.style, mask)]
    for a in (content, job.style, mask):
        a.flags.writeable = False  # any write would raise
    _pipeline(max_working_pixels=64 * 64).run(job, JobContext())
    _pipeline(max_working_pixels=64 * 64, sizing="tiles").run(job, JobContext())
    after = [hashlib.sha256(a.tobytes()).hexdigest() for a in (content, job.style, mask)]
    assert before == after


# ----------------------------------------------------------------------------- progress


def test_stages_in_order_without_upsampling() -> None:
    rec = Recorder()
    ctx = JobContext(rec)
    result = _pipeline().run(_job(_photo(64, 64)), ctx)
    assert rec.stages == [s for s in STAGES if s != "upsample"]
    fractions = [f for _, f in rec.events]
    assert fractions == sorted(fractions)
    assert set(result.info["timings"]) >= {"decode", "segment", "transform", "compose"}


def test_large_layer_is_stylized_at_working_size_and_upsampled() -> None:
    engine, rec = TinyEngine(), Recorder()
    content = _photo(150, 200, 4)
    result = _pipeline(engine, max_working_pixels=64 * 64).run(_job(content), JobContext(rec))
    assert rec.stages == STAGES
    h, w = (n - 2 * EDGE_PAD for n in engine.content_sizes[0])
    assert h * w <= 64 * 64 and abs(w / h - 200 / 150) < 0.05
    assert result.info["working_size"] == [w, h] and result.info["sizing"] == "guided"
    assert result.layers["background"].shape == (150, 200, 4)
    assert np.array_equal(result.layers["portrait"][..., 3], content[..., 3])


def test_a_job_can_lower_the_working_size() -> None:
    engine = TinyEngine()
    _pipeline(engine).run(_job(_photo(100, 100), max_working_pixels=50 * 50), JobContext())
    assert engine.content_sizes == [(50 + 2 * EDGE_PAD, 50 + 2 * EDGE_PAD)]


def test_tiles_strategy_runs_tiles_and_reports_transform_progress() -> None:
    engine, rec = TinyEngine(), Recorder()
    content = _photo(150, 200, 4)
    result = _pipeline(engine, max_working_pixels=64 * 64, sizing="tiles").run(
        _job(content), JobContext(rec))
    assert result.layers["composite"].shape == (150, 200, 4)
    assert len(engine.content_sizes) > 4  # working-size pass + tiles
    # every pass, the working-size one and each tile, has strokes.EDGE_PAD of mirrored margin
    unpadded = [(h - 2 * EDGE_PAD, w - 2 * EDGE_PAD) for h, w in engine.content_sizes]
    assert max(h * w for h, w in unpadded) <= 64 * 64
    assert [n for n, _ in rec.events].count("transform") > 4
    assert "upsample" not in rec.stages


def test_tiles_keep_each_regions_stroke_size() -> None:
    """A stroke size of 2 runs every tile of that region at half size, as the guided path does."""
    engine = TinyEngine()
    regions = dict(PRESETS["magenta"])
    regions["background"] = replace(regions["background"], stroke_size=2.0)
    regions["portrait"] = replace(regions["portrait"], stroke_size=1.0)
    _pipeline(engine, max_working_pixels=160 * 160, sizing="tiles").run(
        _job(_photo(300, 400, 4), regions=regions), JobContext())
    tiles = [(h - 2 * EDGE_PAD, w - 2 * EDGE_PAD) for h, w in engine.content_sizes[2:]]
    full = [hw for hw in tiles if max(hw) > 100]
    half = [hw for hw in tiles if max(hw) <= 100]
    assert full and len(half) == len(full), tiles  # each tile once per stroke size


@pytest.mark.parametrize("cancel_after", ["decode", "segment", "encode", "transform"])
def test_cancel_takes_effect_at_the_next_stage_boundary(cancel_after: str) -> None:
    engine = TinyEngine()
    cancel = threading.Event()
    seen: list[str] = []

    def on_progress(name: str, fraction: float) -> None:
        seen.append(name)
        if name == cancel_after:
            cancel.set()

    with pytest.raises(JobCancelled):
        _pipeline(engine).run(_job(_photo(64, 64)), JobContext(on_progress, cancel))
    assert seen[-1] == cancel_after
    assert bool(engine.calls) == (cancel_after == "transform")


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 500), (500, 3)])
@pytest.mark.parametrize("sizing", ["guided", "tiles"])
def test_thumbnails_and_strips(size: tuple[int, int], sizing: str) -> None:
    content = _photo(*size, 4)
    result = _pipeline(max_working_pixels=64 * 64, sizing=sizing).run(_job(content),
                                                                       JobContext())
    assert result.layers["composite"].shape == (*size, 4)
    assert result.layers["mask"].shape == size


def test_bad_input_is_refused_clearly() -> None:
    pipe = _pipeline()
    with pytest.raises(ValueError, match="content must be H×W×3/4"):
        pipe.run(_job(np.zeros((10, 10), np.uint8)), JobContext())
    with pytest.raises(ValueError, match="uint8"):
        pipe.run(_job(np.zeros((10, 10, 3), np.float32)), JobContext())
    with pytest.raises(ValueError, match="outputs"):
        pipe.run(_job(_photo(10, 10), outputs=frozenset({"sketch"})), JobContext())
    with pytest.raises(ValueError, match="mask must be"):
        pipe.run(_job(_photo(10, 10), mask=np.zeros((5, 5), np.uint8)), JobContext())
    with pytest.raises(ValueError, match="sizing"):
        _pipeline(sizing="magic")


def test_describe() -> None:
    info = _pipeline().describe()
    assert info["engine"]["name"] == "tiny" and info["segmenter"]["name"] == "ellipse"
    assert info["device"] == "cpu" and info["max_working_pixels"] == 512 * 512
    json.dumps(info)


# ----------------------------------------------------------------------------- sizing, colour


def test_working_size_bounds_pixels_keeps_aspect_never_upscales() -> None:
    assert working_size(300, 400, 10**6) == (300, 400)
    for h, w, cap in [(4000, 6000, 1024**2), (3264, 4896, 512**2), (1080, 1920, 300**2)]:
        wh, ww = working_size(h, w, cap)
        assert 0.97 * cap < wh * ww <= cap
        assert abs(ww / wh - w / h) / (w / h) < 0.02
    wh, ww = working_size(10, 5000, 4096)  # a strip: whole pixels cannot keep the aspect
    assert wh * ww <= 4096 and wh >= 1


def test_tile_grid_covers_the_layer_with_overlap() -> None:
    grid = tile_grid(1000, 1500, 512, 64)
    cover = np.zeros((1000, 1500), int)
    for y0, y1, x0, x1 in grid:
        assert y1 - y0 <= 512 and x1 - x0 <= 512
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    assert tile_grid(300, 300, 512, 64) == [(0, 300, 0, 300)]


def test_guided_upsampling_is_sharper_than_bilinear() -> None:
    yy, xx = np.mgrid[0:240, 0:320]
    disk = ((yy - 110.5) ** 2 + (xx - 170.3) ** 2 < 70**2)[..., None]
    photo = np.where(disk, [220, 180, 150], [40, 60, 90]).astype(np.uint8)
    photo[100:104] = [250, 250, 250]  # a thin line the working size cannot hold
    full = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    small = F.interpolate(full, size=(60, 80), mode="bilinear", antialias=True)
    out = np.empty_like(photo)
    guided_upsample_into([out], small, photo)
    bilinear = F.interpolate(small, size=(240, 320), mode="bilinear")
    bil = (bilinear[0].permute(1, 2, 0) * 255).round().numpy()
    err_guided = np.abs(out.astype(float) - photo).mean()
    err_bilinear = np.abs(bil - photo).mean()
    assert err_guided < 0.7 * err_bilinear, (err_guided, err_bilinear)


def test_tiles_of_a_pointwise_engine_blend_to_the_whole_frame() -> None:
    class Pointwise(TinyEngine):
        def stylize(self, content_state: Any, style_state: Any,
                    regions: Sequence[RegionSettings]) -> torch.Tensor:
            return torch.cat([content_state.sqrt() * s.strength for s in regions])

    content = torch.rand(1, 3, 130, 170)
    regions = [RegionSettings(strength=1.0), RegionSettings(strength=0.5)]
    tiled = stylize_tiled(Pointwise(), content, None, regions, tile=64, overlap=16)
    whole = Pointwise().stylize(content, None, regions)
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_shared_low_frequencies_reduce_tile_disagreement() -> None:
    engine = TinyEngine()
    full = torch.from_numpy(_photo(192, 256).copy()).permute(2, 0, 1)[None].float() / 255
    style = engine.encode_style(torch.rand(1, 3, 32, 32))
    regions = [RegionSettings()]
    whole = engine.stylize(full, style, regions)
    reference = F.interpolate(whole, size=(96, 128), mode="bilinear", antialias=True)
    plain = stylize_tiled(engine, full, style, regions, 80, 16)
    shared = stylize_tiled(engine, full, style, regions, 80, 16, reference=reference)
    blur = lambda x: F.avg_pool2d(x, 16)  # noqa: E731
    err_shared = (blur(shared) - blur(whole)).abs().mean()
    assert err_shared < 0.6 * (blur(plain) - blur(whole)).abs().mean()


def test_preserve_color_keeps_chroma_and_matches_luminance_stats() -> None:
    photo = 0.3 + 0.4 * torch.rand(1, 3, 40, 50)  # in gamut after the swap
    stylized = 0.1 + 0.3 * torch.rand(2, 3, 40, 50)  # dark style
    out = preserve_color(stylized, photo)
    y_out, y_photo = rgb_to_ycbcr(out)[:, 0], rgb_to_ycbcr(photo)[:, 0]
    assert torch.allclose(y_out.mean(dim=(1, 2)), y_photo.mean().expand(2), atol=0.02)
    assert torch.allclose(y_out.std(dim=(1, 2)), y_photo.std().expand(2), atol=0.03)
    y_raw = rgb_to_ycbcr(preserve_color(stylized, photo, match_luminance=False))[:, 0]
    assert (y_raw - rgb_to_ycbcr(stylized)[:, 0]).abs().mean() < 0.01
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(photo)), photo, atol=1e-5)


# ----------------------------------------------------------------------------- 16 MP

_BIG_SCRIPT = r"""
import importlib.util, json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(2)
spec = importlib.util.spec_from_file_location("tp", sys.argv[1])
tp = importlib.util.module_from_spec(spec); spec.loader.exec_module(tp)
from portrait_style.daemon.jobspec import JobContext
h, w = 3264, 4896
small = tp._photo(408, 612, 4)
content = np.repeat(np.repeat(small, 8, 0), 8, 1)
assert content.shape == (h, w, 4)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pipe = tp._pipeline(max_working_pixels=512 * 512, sizing=sys.argv[2])
t = time.perf_counter()
result = pipe.run(tp._job(content), JobContext())
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mb": base / 1024,
                  "shapes": {k: list(v.shape) for k, v in result.layers.items()}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sizing", ["guided", "tiles"])
def test_16_megapixels_with_bounded_memory(sizing: str) -> None:
    tests_dir = str(Path(__file__).parent)  # the script imports this module and its doubles
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", _BIG_SCRIPT, __file__, sizing],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["shapes"]["composite"] == [3264, 4896, 4]
    assert report["shapes"]["mask"] == [3264, 4896]
    assert report["peak_rss_mb"] < 6 * 1024, report


# ----------------------------------------------------------------------------- real models




@pytest.fixture(scope="module")
def magenta() -> StyleEngine:
    try:
        from portrait_style.daemon.engines.magenta import MagentaEngine
    except ModuleNotFoundError as exc:
        pytest.skip(f"Magenta engine module not available yet: {exc}")
    from portrait_style.weights.fetch import WeightsUnavailable

    try:
        return MagentaEngine.load("cpu")
    except WeightsUnavailable as exc:
        pytest.skip(f"Magenta weights unavailable: {exc}")


def _astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return np.asarray(astronaut())


@pytest.mark.slow
def test_real_selfie_mask_in_the_pipeline(selfie: Segmenter) -> None:
    content = _astronaut()[::2, ::2].copy()  # 256²
    result = PortraitPipeline(TinyEngine(), selfie, max_working_pixels=256 * 256).run(
        _job(content), JobContext())
    m = result.layers["mask"]
    assert result.info["person_found"] and m[85:115, 100:140].mean() > 230
    assert m[10:40, 10:40].mean() < 25


@pytest.mark.slow
def test_magenta_and_selfie_on_the_astronaut(magenta: StyleEngine, selfie: Segmenter) -> None:
    from skimage.data import astronaut  # noqa: F401  (always available)

    content = _astronaut()[::2, ::2].copy()
    style = np.asarray(_style_image())
    pipe = PortraitPipeline(magenta, selfie, max_working_pixels=192 * 192)
    rec = Recorder()
    job = StylizeJob(content=content, style=style, style_key="starry",
                     regions=dict(PRESETS["magenta"]))
    result = pipe.run(job, JobContext(rec))
    assert rec.stages == STAGES
    bg = result.layers["background"].astype(float)
    pt = result.layers["portrait"].astype(float)
    photo = content.astype(float)
    face = (slice(85, 115), slice(100, 140))
    # the portrait pass keeps the face closer to the photo than the background pass does
    assert np.abs(pt[face] - photo[face]).mean() < np.abs(bg[face] - photo[face]).mean()
    assert result.info["person_found"] and result.layers["composite"].shape == (256, 256, 3)


def _style_image() -> Any:
    from PIL import Image

    path = SHARED_DATA / "style" / (
        "van_gogh_starry_night.jpg")
    if not path.exists():
        rng = np.random.default_rng(0)
        return (rng.random((128, 128, 3)) * 255).astype(np.uint8)
    image = Image.open(path).convert("RGB")
    image.thumbnail((256, 256))
    return image


# ----------------------------------------------------------------------------- runtime


def test_runtime_refuses_sanet_without_weights_naming_the_files(tmp_path: Path) -> None:
    from portrait_style.daemon.runtime import load_pipeline

    with pytest.raises(FileNotFoundError, match="vgg_normalised.pth"):
        load_pipeline(engine="sanet", device="cpu", sanet_weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown engine"):
        load_pipeline(engine="avatar", device="cpu")


@pytest.mark.slow
def test_runtime_auto_falls_back_to_magenta_with_a_note(tmp_path: Path) -> None:
    from portrait_style.daemon.runtime import load_pipeline

    pipe, notes = load_pipeline(engine="auto", device="cpu", sanet_weights_dir=tmp_path)
    assert pipe.engine.name == "magenta"
    assert any("SANet weights not installed: using the embedded engine" in n for n in notes)
    assert pipe.max_working_pixels == 1024 * 1024


def test_request_feather_softens_only_the_segmented_mask() -> None:
    """``mask_feather`` widens the mask's transition; an artist's mask stays as given."""
    content = _photo(96, 128)

    def transition(job: StylizeJob) -> int:
        mask = _pipeline().run(job, JobContext()).layers["mask"]
        return int(((mask > 10) & (mask < 245)).sum())

    sharp = transition(_job(content, outputs=frozenset({"mask"})))
    soft = transition(_job(content, outputs=frozenset({"mask"}), mask_feather=6.0))
    assert soft > 2 * max(sharp, 1)
    artist = np.zeros((96, 128), np.uint8)
    artist[:, 64:] = 255
    kept = _pipeline().run(_job(content, mask=artist, mask_feather=6.0,
                                outputs=frozenset({"mask"})), JobContext()).layers["mask"]
    assert np.array_equal(kept, artist)
