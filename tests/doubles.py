"""Test doubles shared by the pipeline and mask tests."""

from __future__ import annotations

import torch

from portrait_style.daemon.engines.base import Segmenter


class ConstantSegmenter(Segmenter):
    """Returns a fixed native-size probability map whatever the photo; counts calls."""

    name = "constant"

    def __init__(self, prob: torch.Tensor) -> None:
        self.prob = prob
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def person_probability(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.prob


class EllipseSegmenter(ConstantSegmenter):
    """A person-shaped ellipse at 64², whatever the photo (or nobody, with empty=True)."""

    name = "ellipse"

    def __init__(self, empty: bool = False) -> None:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64),
                                indexing="ij")
        inside = ((yy - 0.2) / 0.7) ** 2 + (xx / 0.45) ** 2 < 1
        super().__init__(torch.zeros(1, 1, 64, 64) if empty else inside.float()[None, None])
