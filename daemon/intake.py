"""From a checked ``stylize`` message to the pipeline's ``StylizeJob``.

Why its own module: this is the request's meaning, not transport — which style
(sent, or cached by key, the key verified against the pixels), which region
presets (the engine's, under the request's knobs). The socket loop only asks
``style_for`` when accepting (so ``unknown_style`` is refused before any
progress) and the worker asks ``build`` when the job starts (hashing a style
and resolving presets are work, kept off the loop).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..protocol import errors
from ..protocol.constants import REGION_NAMES
from ..protocol.errors import WireError
from ..protocol.messages import Stylize, style_key
from .jobs import Job
from .jobspec import RegionSettings, StylizeJob
from .regions import resolve_regions
from .style_cache import StyleCache

__all__ = ["JobIntake"]


class JobIntake:
    """Styles and presets for jobs; ``describe`` is the pipeline's (engine name)."""

    def __init__(self, styles: StyleCache, describe: Callable[[], dict[str, Any]]) -> None:
        self.styles = styles
        self.describe = describe

    def style_for(self, message: Stylize) -> tuple[np.ndarray, bool]:
        """(style pixels, whether they came with the request). Raises ``unknown_style``."""
        if message.style is not None:
            return message.style.to_array()[:, :, :3], True
        cached = self.styles.get(message.style_key or "")
        if cached is None:
            raise WireError("the daemon does not have this style; send its pixels",
                            code=errors.UNKNOWN_STYLE, field="style_key")
        return cached, False

    def build(self, job: Job) -> StylizeJob:
        request = job.message
        return StylizeJob.from_request(
            content=request.content.to_array() if request.content else np.empty(0),
            style=job.style, style_key=self._style_key(job), params=request.params,
            regions=self._regions(request.params.regions),
            mask=request.mask.to_array() if request.mask is not None else None)

    def _style_key(self, job: Job) -> str:
        """The verified key of the job's style; caches the pixels it came with."""
        request = job.message
        if not job.verify_key or request.style is None:
            return request.style_key or ""
        key = style_key(request.style)
        if request.style_key is not None and not hmac.compare_digest(key, request.style_key):
            raise WireError("style_key does not match the style pixels", code=errors.BAD_PARAMS,
                            field="style_key")
        self.styles.put(key, job.style)
        return key

    def _regions(self, knobs: Mapping[str, Mapping[str, float | bool]]) -> dict[
            str, RegionSettings]:
        """Requested knobs over the engine's presets, for the regions the request names.

        Regions the request leaves out are left to the pipeline's own defaults.
        """
        if not knobs:
            return {}
        engine = self.describe().get("engine")
        engine_name = str(engine.get("name") if isinstance(engine, dict) else engine)
        try:
            resolved = resolve_regions(engine_name, knobs)
        except ValueError as exc:
            raise WireError(str(exc), code=errors.BAD_PARAMS, field="regions") from exc
        return {name: resolved[name] for name in knobs if name in REGION_NAMES}
