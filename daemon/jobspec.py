"""What a stylize job is, once the wire message has been decoded.

This is the seam between the server (sockets, queue, cancel) and the pipeline
(models). The server turns a checked protocol message into a ``StylizeJob`` and
hands the pipeline a ``JobContext``; the pipeline reports stages through it and
stops at the next stage boundary once the job is cancelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np

from ..protocol.constants import LAYER_NAMES, REGION_NAMES
from ..protocol.knobs import TABLE
from ..protocol.request import JobParams

__all__ = ["LAYER_NAMES", "REGION_NAMES", "JobCancelled", "JobContext", "StylizeJob",
           "StylizeResult", "ProgressFn", "RegionSettings"]

ProgressFn = Callable[[str, float], None]


def _region_settings() -> type:
    """A frozen dataclass with one field per knob of ``protocol.knobs.TABLE``.

    Why generated: the knob table is the one list of knobs, so a knob added
    there is a field here too (never a ``TypeError`` when a request sets it);
    each field's default is the knob's ``neutral`` value, the one that leaves
    the network's output as it is. What a knob means is its table entry's
    tooltip; where the daemon applies it: strokes.py (strength, w_low, w_high,
    stroke_size through the engine), color.py (preserve_color), structure.py,
    portrait_pass.py (likeness), pipeline.py (the rest).
    """
    spec = [(k.name, k.kind, field(default=k.neutral)) for k in TABLE]
    cls = make_dataclass("RegionSettings", spec, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = ("Knobs of one region pass (background or portrait): one field per "
                   "protocol.knobs.TABLE entry, e.g. strength, likeness, stroke_size.")
    return cls


#: the knobs of one region pass; ``RegionSettings(strength=0.5)``, ``replace``, ``asdict``
RegionSettings: Any = _region_settings()


class JobCancelled(Exception):
    """Raised at a stage boundary once the client asked to cancel."""


@dataclass
class StylizeJob:
    """One stylize request, pixels already checked and viewed as arrays.

    content: H×W×3 or H×W×4 uint8 (RGBA keeps its alpha in every output).
    style: h×w×3 uint8 painting.
    style_key: stable id of the style pixels, used to cache the style encoding.
    mask: optional H×W uint8 person mask supplied by the artist; when given it
        is used as is instead of segmenting.
    regions: settings per region name ("background", "portrait").
    outputs: which of LAYER_NAMES to return.
    whole_image: the plain transfer (background settings on the whole frame),
        for comparison; the mask is then empty.
    max_working_pixels: cap on the pixels the style network sees at once; larger
        layers are stylized at a working size (or in tiles) and brought back to
        full size by the pipeline. None = the daemon's default.
    mask_feather: Gaussian softening of the segmented mask's edge, in layer
        pixels (an artist's own mask is never changed). None = the daemon's default.
    preview: long side of a preview: every layer comes back at
        ``protocol.request.preview_size`` instead of full size (None = full size).
    """

    content: np.ndarray
    style: np.ndarray
    style_key: str
    regions: dict[str, RegionSettings]
    outputs: frozenset[str] = frozenset(LAYER_NAMES)
    mask: np.ndarray | None = None
    whole_image: bool = False
    max_working_pixels: int | None = None
    mask_feather: float | None = None
    preview: int | None = None

    @classmethod
    def from_request(cls, *, content: np.ndarray, style: np.ndarray, style_key: str,
                     params: JobParams, regions: dict[str, RegionSettings],
                     mask: np.ndarray | None) -> StylizeJob:
        """The job for a checked request: ``params`` (protocol.request) owns the fields.

        ``regions`` are the request's knobs already resolved over the engine's
        presets (the server does that); everything else is taken as sent.
        """
        return cls(content=content, style=style, style_key=style_key, regions=regions,
                   outputs=frozenset(params.outputs), mask=mask, whole_image=params.whole_image,
                   max_working_pixels=params.max_working_pixels,
                   mask_feather=params.mask_feather, preview=params.preview)


@dataclass
class StylizeResult:
    """Layers at the content's full size plus facts the host may show.

    layers: name → uint8 array (RGB/RGBA H×W×C for images, H×W for the mask).
    info: e.g. {"person_found": bool, "engine": "magenta", "timings": {stage: s},
        "working_size": [w, h]}.
    """

    layers: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


class JobContext:
    """Progress reporting and cooperative cancel for one running job.

    The pipeline calls ``stage(name, fraction)`` at each stage boundary: it
    raises ``JobCancelled`` if cancel was requested, otherwise reports progress
    and records how long the previous stage took (``timings``).
    """

    def __init__(
        self, on_progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> None:
        self._on_progress = on_progress
        self._cancel = cancel or threading.Event()
        self.timings: dict[str, float] = {}
        self._current: str | None = None
        self._started = time.perf_counter()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def stage(self, name: str, fraction: float) -> None:
        """Enter stage ``name``; ``fraction`` is the whole job's progress 0..1."""
        self._close_stage()
        if self._cancel.is_set():
            raise JobCancelled(f"cancelled before {name}")
        self._current = name
        if self._on_progress is not None:
            self._on_progress(name, max(0.0, min(1.0, fraction)))

    def finish(self) -> dict[str, float]:
        """Close the last stage and return the per-stage timings in seconds."""
        self._close_stage()
        self._current = None
        return dict(self.timings)

    def _close_stage(self) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self.timings[self._current] = self.timings.get(self._current, 0.0) + (
                now - self._started)
        self._started = now
