"""The engines and the pipeline on CUDA agree with the CPU, half precision included.

Skipped without a GPU (CI and the developers' machines have none); run by
``bench/gpu.sh`` on a lent GPU machine. Each test compares the CUDA result
with the float32 CPU result of the same engine on the same real input.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: no GPU on this machine"),
]


def _photo_and_style(size: int = 384) -> tuple[torch.Tensor, torch.Tensor]:
    from skimage import data, transform

    photo = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    style = transform.resize(data.coffee(), (256, 256), anti_aliasing=True)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    return as_tensor(photo), as_tensor(style)


def _run(engine, photo: torch.Tensor, style: torch.Tensor, regions) -> torch.Tensor:
    device = engine.device
    with torch.inference_mode():
        style_state = engine.encode_style(style.to(device))
        content_state = engine.encode_content(photo.to(device))
        return engine.stylize(content_state, style_state, regions).float().cpu()


def test_magenta_half_on_cuda_matches_cpu() -> None:
    from portrait_style.daemon.engines.magenta import MagentaEngine
    from portrait_style.daemon.jobspec import RegionSettings

    photo, style = _photo_and_style()
    regions = [RegionSettings(strength=1.0), RegionSettings(strength=0.4)]
    cpu = _run(MagentaEngine.load("cpu", half=False), photo, style, regions)
    gpu = _run(MagentaEngine.load("cuda"), photo, style, regions)
    assert gpu.shape == cpu.shape
    assert (gpu - cpu).abs().mean() < 0.01
    assert (gpu - cpu).abs().max() < 0.15


def test_sanet_on_cuda_matches_cpu() -> None:
    from portrait_style.daemon.engines.sanet import SANetEngine
    from portrait_style.daemon.jobspec import RegionSettings
    from portrait_style.daemon.models.sanet import SANetModel

    torch.manual_seed(0)
    model = SANetModel()
    photo, style = _photo_and_style(256)
    regions = [RegionSettings(), RegionSettings(strength=0.7, w_low=1.0, w_high=0.3)]
    # the engine moves its model to its device: give each engine its own copy
    cpu = _run(SANetEngine(copy.deepcopy(model), "cpu"), photo, style, regions)
    gpu32 = _run(SANetEngine(copy.deepcopy(model), "cuda", half=False), photo, style, regions)
    assert (gpu32 - cpu).abs().max() < 1e-3
    gpu16 = _run(SANetEngine(copy.deepcopy(model), "cuda", half=True), photo, style, regions)
    assert (gpu16 - cpu).abs().mean() < 0.01


def test_pipeline_on_cuda_returns_full_size_layers() -> None:
    from skimage import data

    from portrait_style.daemon.jobspec import JobContext, StylizeJob
    from portrait_style.daemon.regions import resolve_regions
    from portrait_style.daemon.runtime import load_pipeline

    pipeline, _ = load_pipeline(engine="magenta", device="cuda")
    content = data.astronaut()
    job = StylizeJob(content=content, style=data.coffee(), style_key="coffee",
                     regions=resolve_regions("magenta", {}))
    result = pipeline.run(job, JobContext())
    assert result.layers["composite"].shape == content.shape
    assert result.info.get("person_found") is True
    assert torch.cuda.max_memory_allocated() < 4 * 2**30
