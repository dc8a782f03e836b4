"""Region passes through the network (daemon/strokes.py): stroke size, sharing, edge margin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from portrait_style.daemon.engines.base import StyleEngine
from portrait_style.daemon.jobspec import RegionSettings
from portrait_style.daemon.strokes import (
    EDGE_PAD,
    MIN_STROKE_SIDE,
    pad_edges,
    stroke_hw,
    stylize_regions,
)


class RecordingEngine(StyleEngine):
    """Returns the content scaled by each region's strength; records every call."""

    name = "recording"

    def __init__(self) -> None:
        self.content_sizes: list[tuple[int, int]] = []
        self.calls: list[list[RegionSettings]] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode_style(self, style: torch.Tensor) -> Any:
        return None

    def encode_content(self, content: torch.Tensor) -> Any:
        self.content_sizes.append(tuple(content.shape[-2:]))
        return content

    def stylize(self, content_state: Any, style_state: Any,
                regions: Sequence[RegionSettings]) -> torch.Tensor:
        self.calls.append(list(regions))
        return torch.cat([content_state * r.strength for r in regions])


def _photo(h: int = 80, w: int = 120) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_stroke_size_scales_the_networks_input() -> None:
    assert stroke_hw(400, 600, 1.0) == (400, 600)
    assert stroke_hw(400, 600, 2.0) == (200, 300)
    assert stroke_hw(400, 600, 0.5) == (800, 1200)
    # never below the network's minimum short side
    assert min(stroke_hw(100, 300, 4.0)) == MIN_STROKE_SIDE


def test_plain_call_is_one_batch_with_a_mirrored_margin_cropped_exactly() -> None:
    engine, photo = RecordingEngine(), _photo()
    settings = [RegionSettings(strength=1.0), RegionSettings(strength=0.5)]
    out = stylize_regions(engine, photo, None, settings)
    assert engine.calls == [settings]
    assert engine.content_sizes == [(80 + 2 * EDGE_PAD, 120 + 2 * EDGE_PAD)]
    # the identity-like engine shows the crop is aligned to the pixel
    assert torch.equal(out[0:1], photo) and torch.allclose(out[1:2], photo * 0.5)


def test_regions_with_equal_engine_knobs_share_one_network_output() -> None:
    engine, photo = RecordingEngine(), _photo()
    background = RegionSettings(strength=1.0)
    portrait = RegionSettings(strength=1.0, likeness=0.8, structure=0.2)
    out = stylize_regions(engine, photo, None, [background, portrait])
    assert engine.calls == [[background]]
    assert out.shape == (2, 3, 80, 120) and torch.equal(out[0], out[1])


def test_each_stroke_size_runs_at_its_scale_and_comes_back_at_full_size() -> None:
    engine, photo = RecordingEngine(), _photo(128, 192)
    settings = [RegionSettings(stroke_size=2.0), RegionSettings(strength=0.5)]
    out = stylize_regions(engine, photo, None, settings)
    assert sorted(engine.content_sizes) == sorted([(128 + 2 * EDGE_PAD, 192 + 2 * EDGE_PAD),
                                                   (64 + 2 * EDGE_PAD, 96 + 2 * EDGE_PAD)])
    assert out.shape == (2, 3, 128, 192)
    # order kept: region 1 is the full-size pass at strength 0.5
    assert torch.allclose(out[1:2], photo * 0.5)
    # region 0 went through half size: the same picture, softer
    assert float((out[0:1] - photo).abs().mean()) < 0.25
    assert float(out[0:1].std()) < float(photo.std())


def test_pad_edges_mirrors_and_falls_back_on_tiny_images() -> None:
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    padded = pad_edges(x, 2)
    assert padded.shape == (1, 1, 8, 9)
    assert torch.equal(padded[0, 0, 2, :2], torch.tensor([2.0, 1.0]))  # mirrored, not repeated
    tiny = pad_edges(torch.ones(1, 1, 3, 3), 8)
    assert tiny.shape == (1, 1, 19, 19) and bool((tiny == 1).all())


@pytest.mark.slow
def test_no_light_dark_band_along_the_top_of_a_flat_topped_photo() -> None:
    """The bundled astronaut's flat grey top rows come out without Magenta's edge band."""
    from PIL import Image

    from portrait_style.daemon.engines.magenta import MagentaEngine

    try:
        engine = MagentaEngine.load("cpu")
    except Exception as exc:
        pytest.skip(f"Magenta engine unavailable: {exc}")
    samples = Path(__file__).resolve().parents[1] / "portrait_style" / "samples"

    def load(name: str) -> torch.Tensor:
        image = Image.open(samples / name).convert("RGB")
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255

    photo, style = load("astronaut.jpg"), load("starry_night.jpg")
    state = engine.encode_style(style)

    def band(out: torch.Tensor) -> float:
        rows = out[0].mean(0)[:8].mean(1)  # the photo's top rows are flat grey
        return float(rows.max() - rows.min())

    plain = engine.stylize(engine.encode_content(photo), state, [RegionSettings()])
    ours = stylize_regions(engine, photo, state, [RegionSettings()])
    assert band(ours) < 0.5 * band(plain), (band(ours), band(plain))
    assert band(ours) < 0.06
