"""Out of GPU memory is a slower answer, not an error: retry smaller, then on the CPU.

Why a wrapper around the pipeline: the pipeline already knows how to work at
any working size (``StylizeJob.max_working_pixels``) and on any device, so the
fallback needs no hook inside it, only a second attempt with a smaller size
or a CPU copy of the pipeline. The result's ``info`` says what happened
(``notices``, ``fallback``), so the artist learns why it was slow, or soft.

Out of memory is recognised by type name (``torch.cuda.OutOfMemoryError``) or
by PyTorch's message, so this module never imports torch itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..protocol.constants import MIN_WORKING_PIXELS
from .jobspec import JobContext, StylizeJob, StylizeResult

__all__ = ["OomFallback", "is_out_of_memory"]

log = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch running out of (GPU) memory."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class OomFallback:
    """Run ``pipeline``; on out-of-memory retry at 1/``shrink`` the working size
    (down to ``MIN_WORKING_PIXELS``), then once on ``cpu_pipeline()`` when given.

    ``cpu_pipeline`` is built on first need and kept: loading models takes
    seconds, and a GPU that ran out once will likely run out again.
    """

    def __init__(self, pipeline: Any, *, cpu_pipeline: Callable[[], Any] | None = None,
                 shrink: int = 4, min_working_pixels: int = MIN_WORKING_PIXELS) -> None:
        self.pipeline = pipeline
        self._make_cpu = cpu_pipeline
        self._cpu: Any = None
        self.shrink = shrink
        self.min_working_pixels = min_working_pixels

    def describe(self) -> dict[str, Any]:
        return self.pipeline.describe()

    def __getattr__(self, name: str) -> Any:  # warmup() and other extras of the pipeline
        return getattr(self.pipeline, name)

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult:
        high = [0.0]  # progress never goes back when an attempt restarts its stages
        notices: list[str] = []
        working = self._working_pixels(job)
        attempt = job
        while True:
            try:
                result = self.pipeline.run(attempt, _attempt_context(ctx, high))
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                _free_cuda_cache()
                smaller = working // self.shrink
                if smaller < self.min_working_pixels:
                    return self._on_cpu(job, ctx, high, notices, exc)
                notices.append(f"out of GPU memory at {working} working pixels: retried at "
                               f"{smaller}")
                log.warning("%s", notices[-1])
                working, attempt = smaller, replace(job, max_working_pixels=smaller)
        if notices:
            result.info.setdefault("notices", []).extend(notices)
            result.info["fallback"] = {"device": "gpu", "max_working_pixels": working}
        return result

    def _on_cpu(self, job: StylizeJob, ctx: JobContext, high: list[float],
                notices: list[str], exc: BaseException) -> StylizeResult:
        if self._make_cpu is None:
            raise exc
        notices.append("out of GPU memory even at the smallest working size: ran on the CPU")
        log.warning("%s", notices[-1])
        if self._cpu is None:
            self._cpu = self._make_cpu()
        result = self._cpu.run(job, _attempt_context(ctx, high))
        result.info.setdefault("notices", []).extend(notices)
        result.info["fallback"] = {"device": "cpu"}
        return result

    def _working_pixels(self, job: StylizeJob) -> int:
        if job.max_working_pixels:
            return int(job.max_working_pixels)
        described = self.pipeline.describe()
        default = described.get("max_working_pixels") if isinstance(described, dict) else None
        height, width = job.content.shape[:2]
        return int(default or height * width)


def _attempt_context(outer: JobContext, high: list[float]) -> JobContext:
    """A context for one attempt whose progress reaches the job's own, never lower."""

    def forward(stage: str, fraction: float) -> None:
        high[0] = max(high[0], fraction)
        outer.stage(stage, high[0])  # raises JobCancelled once the job is cancelled

    # the same cancel event, so a pipeline polling ``cancelled`` mid-stage sees it
    return JobContext(on_progress=forward, cancel=outer._cancel)  # noqa: SLF001
