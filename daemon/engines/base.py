"""The interface every style engine implements, and the per-region settings.

Why an interface: the portrait pipeline (segment → two region passes → compose)
is the same whichever network does the restyling. The embedded Magenta engine
and SANet plug in behind these few methods, so presets, tiling, the quality
benchmark and the daemon never special-case an engine.

Tensors here are float32 (or half on CUDA) NCHW RGB in 0..1 on the engine's device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from ..jobspec import RegionSettings

__all__ = ["RegionSettings", "Segmenter", "StyleEngine"]


class StyleEngine(ABC):
    """A feed-forward arbitrary style network kept warm by the daemon.

    The split into ``encode_style`` / ``encode_content`` / ``stylize`` is what
    lets the pipeline encode the style once per style image (cached by the
    caller) and the content once per request, then run several region passes
    (as one batch where the engine can) from those encodings.
    """

    #: short name shown in ``hello`` and logs, e.g. "magenta" or "sanet"
    name: str = "engine"

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the engine's weights live."""

    @abstractmethod
    def encode_style(self, style: torch.Tensor) -> Any:
        """Encode a [1,3,H,W] style image into an engine-specific state."""

    @abstractmethod
    def encode_content(self, content: torch.Tensor) -> Any:
        """Encode a [1,3,H,W] content image into an engine-specific state."""

    @abstractmethod
    def stylize(
        self, content_state: Any, style_state: Any, regions: Sequence[RegionSettings]
    ) -> torch.Tensor:
        """Return [len(regions),3,H,W] images in 0..1, one per region setting.

        H, W equal the content's size. Engines that need a size multiple (e.g.
        16) pad and crop internally.
        """

    def describe(self) -> dict[str, Any]:
        """What ``hello`` reports about this engine."""
        return {"name": self.name, "device": str(self.device)}


class Segmenter(ABC):
    """A person segmenter: photo in, person probability at its native size out."""

    name: str = "segmenter"

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the segmenter's weights live."""

    @abstractmethod
    def person_probability(self, image: torch.Tensor) -> torch.Tensor:
        """Map a [1,3,H,W] RGB 0..1 image to a [1,1,h,w] probability map.

        (h, w) is whatever the model works at; the pipeline upsamples and
        refines it to the layer's size guided by the photo.
        """
