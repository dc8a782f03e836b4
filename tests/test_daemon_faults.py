"""Faults the daemon must survive: GPU out of memory, a tampered model file.

Out of memory is injected by a fake engine (no GPU needed): it fails while the
working size is above what "fits", the way a real CUDA allocation would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portrait_style.daemon.jobspec import JobContext, StylizeJob, StylizeResult
from portrait_style.daemon.oom_fallback import OomFallback, is_out_of_memory


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError``, which is how it is recognised."""


class FakeEngine:
    """Runs only when the job's working size is at most ``fits`` pixels."""

    def __init__(self, fits: int | None, *, error: type[Exception] = OutOfMemoryError,
                 default_working: int = 1 << 22) -> None:
        self.fits = fits
        self.error = error
        self.default_working = default_working
        self.sizes: list[int | None] = []

    def describe(self) -> dict:
        return {"engine": "fake", "max_working_pixels": self.default_working}

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult:
        self.sizes.append(job.max_working_pixels)
        ctx.stage("segment", 0.1)
        ctx.stage("transform", 0.5)
        working = job.max_working_pixels or self.default_working
        if self.fits is None or working > self.fits:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        ctx.stage("compose", 0.9)
        return StylizeResult(layers={"background": job.content}, info={"engine": "fake"})


def _job() -> StylizeJob:
    image = np.zeros((64, 64, 3), np.uint8)
    return StylizeJob(content=image, style=image, style_key="k", regions={})


def _context() -> tuple[JobContext, list[float]]:
    seen: list[float] = []
    return JobContext(on_progress=lambda stage, fraction: seen.append(fraction)), seen


def test_oom_is_retried_at_a_smaller_working_size_with_a_notice():
    engine = FakeEngine(fits=1 << 18)
    ctx, seen = _context()
    result = OomFallback(engine).run(_job(), ctx)
    assert engine.sizes == [None, 1 << 20, 1 << 18]
    assert result.info["fallback"] == {"device": "gpu", "max_working_pixels": 1 << 18}
    assert len(result.info["notices"]) == 2 and "out of GPU memory" in result.info["notices"][0]
    assert seen == sorted(seen), "progress went backwards across attempts"


def test_oom_at_the_smallest_size_runs_on_the_cpu():
    gpu, cpu = FakeEngine(fits=None), FakeEngine(fits=1 << 30)
    made: list[FakeEngine] = []
    fallback = OomFallback(gpu, cpu_pipeline=lambda: made.append(cpu) or cpu)
    ctx, _ = _context()
    result = fallback.run(_job(), ctx)
    assert result.info["fallback"] == {"device": "cpu"}
    assert "ran on the CPU" in result.info["notices"][-1]
    fallback.run(_job(), _context()[0])
    assert made == [cpu], "the CPU pipeline is built once and kept"


def test_oom_without_a_cpu_fallback_is_raised():
    with pytest.raises(OutOfMemoryError):
        OomFallback(FakeEngine(fits=None)).run(_job(), _context()[0])


def test_message_only_oom_is_recognised_and_other_errors_pass_through():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20 MiB"))
    assert not is_out_of_memory(ValueError("out of range"))
    with pytest.raises(KeyError):
        OomFallback(FakeEngine(fits=None, error=KeyError)).run(_job(), _context()[0])
    engine = FakeEngine(fits=1 << 20, error=RuntimeError)
    assert OomFallback(engine).run(_job(), _context()[0]).info["fallback"]["device"] == "gpu"


def test_tampered_model_file_is_refused_at_load_naming_the_mismatch(tmp_path: Path,
                                                                    monkeypatch):
    """A cached file whose sha256 is wrong is never handed to the converter."""
    from portrait_style.weights.fetch import WeightsUnavailable, cached_path, load_converted
    from portrait_style.weights.registry import get_entry

    monkeypatch.setenv("PORTRAIT_STYLE_WEIGHTS_CACHE", str(tmp_path / "weights"))
    entry = get_entry("lraspp_mobilenet_v3_large_coco")  # sources unreachable offline
    monkeypatch.setenv("PORTRAIT_STYLE_WEIGHTS_DIR", str(tmp_path / "none"))
    path = cached_path(entry)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered weights")
    said: list[str] = []

    def convert(_: Path) -> dict:
        raise AssertionError("a file with the wrong sha256 reached the converter")

    with pytest.raises(WeightsUnavailable):
        load_converted(entry.name, convert, "v1", report=said.append)
    assert any("corrupt" in line and entry.pin in line for line in said), said
    assert not path.exists()
