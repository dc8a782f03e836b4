"""A pipeline without a model: every requested layer is the content itself.

Why it exists: the protocol tests and the wire benchmark need a real daemon
(sockets, queue, progress, cancel) but must not load models, and the benchmark
must measure the transport alone. ``portrait-style serve --engine noop`` uses
it; ``--noop-delay SECONDS`` makes each job take that long (spread over its
stages, cancellable every 10 ms) so tests can cancel a running job and watch
progress and queue positions.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .jobspec import JobCancelled, JobContext, StylizeJob, StylizeResult

__all__ = ["NoopPipeline"]

STAGES: tuple[str, ...] = ("segment", "transform", "compose")


class NoopPipeline:
    """Returns the content as background/portrait/composite; the artist's mask or none."""

    def __init__(self, delay_s: float = 0.0) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must be ≥ 0")
        self.delay_s = float(delay_s)

    def describe(self) -> dict[str, Any]:
        return {"engine": {"name": "noop", "device": "cpu"}, "segmenter": None,
                "device": "cpu", "available_engines": ["noop"], "delay_s": self.delay_s}

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult:
        height, width = job.content.shape[:2]
        for index, stage in enumerate(STAGES):
            ctx.stage(stage, index / len(STAGES))
            self._sleep(self.delay_s / len(STAGES), ctx)
        ctx.stage("encode_reply", 0.97)
        mask = job.mask if job.mask is not None else np.zeros((height, width), np.uint8)
        layers = {name: (mask if name == "mask" else job.content) for name in job.outputs}
        info = {
            "person_found": bool(job.mask is not None and job.mask.any()),
            "engine": "noop",
            "working_size": [width, height],
            "style_key": job.style_key,
            "regions": {name: vars(settings) for name, settings in job.regions.items()},
            "timings": dict(ctx.timings),
        }
        return StylizeResult(layers=layers, info=info)

    @staticmethod
    def _sleep(seconds: float, ctx: JobContext) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if ctx.cancelled:
                raise JobCancelled("cancelled")
            time.sleep(min(left, 0.01))
