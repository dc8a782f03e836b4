"""Region passes through the style network, with a stroke size per region.

Why a stroke size: a feed-forward style network paints strokes of a fixed size
in *its* pixels (Magenta's are a few pixels wide whatever the photo), so the
brush looks finer the larger the photo is. Running the network on the photo
scaled by ``1 / stroke_size`` and bringing the result back to the working size
makes the strokes ``stroke_size`` times larger relative to the photo, like the
"brush size" of Photoshop's style transfer. 1 = the network's own scale (and
exactly the plain engine call). Larger strokes are also cheaper (fewer pixels).

Why a margin: Magenta's contracting convs read the mirrored row above the
image but never the one below it (stride 2 over an even size), and its output
carries a light/dark band in the first rows where the photo is flat — the
repeating pattern seen along the top of the bundled astronaut's background.
Running the network on the photo mirrored out by ``EDGE_PAD`` pixels (a
multiple of the network's stride 4, so the interior keeps its phase) and
cropping puts that band outside the picture, for ~3 % more pixels at 1024².

Why group and share: regions whose engine-facing knobs are equal (strength,
branch weights, stroke size) get the same network output — the portrait pass
starts from a full-strength stylization, which is often exactly the
background's — so each distinct setting is run once, all of one stroke size as
one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from .engines.base import RegionSettings, StyleEngine
from .sizing import resize

__all__ = ["EDGE_PAD", "MIN_STROKE_SIDE", "engine_key", "pad_edges", "stroke_hw",
           "stylize_regions"]

#: the network never sees a short side below this (its receptive field needs room)
MIN_STROKE_SIDE = 64
#: mirrored margin around the network's input, cropped from its output
EDGE_PAD = 8


def pad_edges(image: torch.Tensor, pad: int = EDGE_PAD) -> torch.Tensor:
    """[N,C,H,W] mirrored out by ``pad`` on every side (edge-replicated if too small)."""
    if pad <= 0:
        return image
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    return F.pad(image, (pad, pad, pad, pad), mode=mode)


def engine_key(settings: RegionSettings) -> tuple[float, float, float]:
    """What the network's output depends on (post-processing knobs excluded)."""
    return (settings.strength, settings.w_low, settings.w_high)


def stroke_hw(height: int, width: int, stroke_size: float) -> tuple[int, int]:
    """The size the network runs at for ``stroke_size`` (short side ≥ MIN_STROKE_SIDE)."""
    if stroke_size == 1.0:
        return height, width
    scale = 1.0 / stroke_size
    scale = max(scale, min(1.0, MIN_STROKE_SIDE / max(1, min(height, width))))
    return max(1, round(height * scale)), max(1, round(width * scale))


def stylize_regions(engine: StyleEngine, content: torch.Tensor, style_state: Any,
                    settings: Sequence[RegionSettings]) -> torch.Tensor:
    """[len(settings),3,H,W] float32 for ``content`` [1,3,H,W], one image per region.

    Regions with equal ``engine_key`` share one output; each stroke size is one
    ``encode_content`` + one ``stylize`` batch at its scaled size, resized back.
    """
    if not settings:
        raise ValueError("stylize_regions needs at least one region setting")
    height, width = content.shape[-2:]
    slots: dict[tuple[float, tuple[float, float, float]], list[int]] = {}
    for i, s in enumerate(settings):
        slots.setdefault((float(s.stroke_size), engine_key(s)), []).append(i)
    out: torch.Tensor | None = None
    for size in sorted({key[0] for key in slots}):
        keys = [key for key in slots if key[0] == size]
        hw = stroke_hw(height, width, size)
        scaled = content if hw == (height, width) else resize(content, hw)
        state = engine.encode_content(pad_edges(scaled))
        batch = engine.stylize(state, style_state, [settings[slots[k][0]] for k in keys])
        del state
        batch = batch[..., EDGE_PAD:EDGE_PAD + hw[0], EDGE_PAD:EDGE_PAD + hw[1]]
        if tuple(batch.shape[-2:]) != (height, width):
            batch = resize(batch.float(), (height, width)).clamp_(0, 1)
        if out is None:
            if len(slots) == len(settings) and len(keys) == len(settings):
                return batch.contiguous()  # the plain case: one batch, nothing shared
            out = batch.new_empty((len(settings), 3, height, width))
        for j, key in enumerate(keys):
            for i in slots[key]:
                out[i] = batch[j]
    assert out is not None
    return out
