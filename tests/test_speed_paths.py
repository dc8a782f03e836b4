"""Each speed-up of the pipeline computes what the plain path computes.

The plain paths are spelled out here as oracles (brute-force window means, the
transformer's batched forward over the repeated photo), and the fast ones must
match them: to float rounding for the filters and the network, and within
1/255 mean on the finished uint8 layers of a real job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from portrait_style.daemon import sizing
from portrait_style.daemon.engines.base import RegionSettings
from portrait_style.daemon.engines.magenta import MagentaEngine
from portrait_style.daemon.jobspec import JobContext, StylizeJob
from portrait_style.daemon.models.magenta import StylePredictor, StyleTransformer
from portrait_style.daemon.pipeline import PortraitPipeline
from portrait_style.daemon.regions import resolve_regions

REGIONS = [RegionSettings(strength=1.0), RegionSettings(strength=0.3, structure=0.75)]


def _window_means(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of every clipped (2r+1)² window, by brute force in float64."""
    h, w = x.shape[-2:]
    out = torch.empty(x.shape, dtype=torch.float64)
    x64 = x.double()
    for i in range(h):
        for j in range(w):
            win = x64[..., max(0, i - radius):i + radius + 1, max(0, j - radius):j + radius + 1]
            out[..., i, j] = win.mean(dim=(-2, -1))
    return out


@pytest.mark.parametrize("shape, radius", [((1, 2, 9, 13), 3), ((1, 1, 4, 30), 7),
                                           ((1, 3, 17, 5), 40), ((1, 1, 1, 6), 2)])
def test_box_filter_is_the_window_mean(shape: tuple[int, ...], radius: int) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    got = sizing.box_filter(x, radius)
    assert torch.allclose(got.double(), _window_means(x, radius), atol=1e-6)


def test_rgb_guided_coefficients_solve_each_window() -> None:
    """The stacked box filters still give a = (Σ + eps·I)⁻¹ cov(I, p) per window."""
    gen = torch.Generator().manual_seed(1)
    guide, src, radius, eps = torch.rand(1, 3, 9, 11, generator=gen), torch.rand(
        1, 1, 9, 11, generator=gen), 2, 1e-2
    means = _window_means(guide, radius)[0]  # [3,h,w]
    mean_p = _window_means(src, radius)[0, 0]
    outer = _window_means(guide[:, :, None] * guide[:, None], radius)[0]  # [3,3,h,w]
    cross = _window_means(guide * src, radius)[0]  # [3,h,w]
    sigma = outer - means[:, None] * means[None] + eps * torch.eye(3, dtype=torch.float64)[
        ..., None, None]
    cov = cross - means * mean_p
    want = torch.linalg.solve(sigma.permute(2, 3, 0, 1), cov.permute(1, 2, 0)[..., None])
    a, _ = sizing.guided_coefficients(guide, src, radius, eps)
    smoothed = _window_means(want[..., 0].permute(2, 0, 1)[None].float(), radius)  # box(a)
    assert torch.allclose(a[0, 0].double(), smoothed[0], atol=1e-3)


def test_resample_window_at_the_same_size_is_the_window() -> None:
    low = torch.rand(2, 4, 12, 19)
    full = F.interpolate(low, size=(12, 19), mode="bilinear", align_corners=False)
    assert torch.equal(sizing.resample_window(low, (12, 19), 3, 9, 2, 15), full[..., 3:9, 2:15])
    assert torch.equal(sizing.resample_window(low, (12, 19), 0, 12), full)


def _random_transformer(seed: int = 0) -> StyleTransformer:
    torch.manual_seed(seed)
    return StyleTransformer().eval().to(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [(40, 56), (37, 61)])  # a multiple of 4, and one padded
def test_shared_contracting_convs_match_the_batched_forward(size: tuple[int, int]) -> None:
    model = _random_transformer()
    content = torch.rand(1, 3, *size)
    bottlenecks = torch.randn(2, 100)
    with torch.inference_mode():
        plain = model(content.expand(2, -1, -1, -1), bottlenecks)
        features, hw = model.contract_features(content)
        per_region = torch.cat([model.stylize_features(features, bottlenecks[i:i + 1], hw)
                                for i in range(2)])
        batched = model.stylize_features(features, bottlenecks, hw)
    assert per_region.shape == plain.shape == (2, 3, *size)
    assert torch.allclose(per_region, plain, atol=1e-5)
    assert torch.allclose(batched, plain, atol=1e-5)


class _BatchedMagenta(MagentaEngine):
    """The engine as it was: every region in one batch through the whole transformer."""

    def stylize(self, content_state: Any, style_state: Any,
                regions: Any) -> torch.Tensor:
        strength = torch.tensor([r.strength for r in regions])[:, None]
        bottlenecks = strength * style_state.bottleneck + (1 - strength) * content_state.bottleneck
        batch = content_state.image.expand(len(regions), -1, -1, -1)
        return self.transformer(batch, bottlenecks).float().contiguous()


def _engines(real: bool, half: bool = False) -> tuple[MagentaEngine, MagentaEngine]:
    """(the engine as it is now, the batched float32 engine it replaced)."""
    if real:
        from portrait_style.weights.fetch import WeightsUnavailable

        try:
            fast = MagentaEngine.load("cpu", half=half)
            reference = MagentaEngine.load("cpu", half=False)
        except WeightsUnavailable as exc:
            pytest.skip(f"Magenta weights unavailable: {exc}")
        plain = _BatchedMagenta(reference.predictor, reference.transformer,
                                torch.device("cpu"), False)
        return fast, plain
    torch.manual_seed(0)
    predictor, transformer = StylePredictor(), StyleTransformer()
    return (MagentaEngine(predictor, transformer, torch.device("cpu"), False),
            _BatchedMagenta(predictor, transformer, torch.device("cpu"), False))


def test_engine_stylize_matches_the_batched_engine() -> None:
    fast, plain = _engines(real=False)
    content = torch.rand(1, 3, 48, 64)
    style = fast.encode_style(torch.rand(1, 3, 80, 80))
    state = fast.encode_content(content)
    assert torch.allclose(fast.stylize(state, style, REGIONS), plain.stylize(state, style, REGIONS),
                          atol=1e-5)


def _astronaut(size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from skimage import data

    content = np.asarray(Image.fromarray(data.astronaut()).resize((size, size)))
    style = np.asarray(Image.fromarray(data.coffee()).resize((300, 200)))
    return np.ascontiguousarray(content), np.ascontiguousarray(style)


def _job_layers(engines: tuple[MagentaEngine, MagentaEngine], segmenter: Any
                ) -> list[dict[str, np.ndarray]]:
    content, style = _astronaut(384)
    job = StylizeJob(content=content, style=style, style_key="coffee",
                     regions=resolve_regions("magenta", {}))
    return [PortraitPipeline(engine, segmenter, max_working_pixels=1 << 20).run(
        job, JobContext()).layers for engine in engines]


def _grey_level_diffs(new: dict[str, np.ndarray], old: dict[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    assert new.keys() == old.keys()
    return {name: np.abs(new[name].astype(np.int16) - old[name].astype(np.int16))
            for name in new}


@pytest.mark.slow
def test_a_real_job_matches_the_old_path_within_one_grey_level(selfie: Any) -> None:
    """Real weights and segmenter, default presets, float32: every layer as before."""
    new, old = _job_layers(_engines(real=True), selfie)
    for name, diff in _grey_level_diffs(new, old).items():
        assert diff.mean() <= 1.0, (name, diff.mean())
        assert diff.max() <= 2, (name, diff.max())


@pytest.mark.slow
def test_cpu_bfloat16_stays_within_one_grey_level_of_float32(selfie: Any) -> None:
    """The bfloat16 transformer (CPUs with native bf16): mean within 1/255 of the old path."""
    from portrait_style.daemon.engines.magenta import native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 / AMX)")
    engines = _engines(real=True, half=True)
    assert engines[0].describe()["dtype"] == "bfloat16"
    new, old = _job_layers(engines, selfie)
    for name, diff in _grey_level_diffs(new, old).items():
        assert diff.mean() <= 1.0, (name, diff.mean())
        assert (diff > 8).mean() < 1e-3, (name, (diff > 8).mean())
