"""MediaPipe's selfie segmentation network (general 256×256 and landscape 144×256) in PyTorch.

Why hand-written: this network runs on every request, so it should be a plain
torch module (GPU, half precision, batches) rather than a graph interpreter.
Its shape was read off the ``.tflite`` graph: a MobileNetV3-small-like encoder
with squeeze-excitation, an LR-ASPP-like head, three decoder stages that gate
the encoder's skip features with attention, and a 2×2 stride-2 transposed conv
to full resolution followed by a sigmoid.

Weights come from :func:`portrait_style.weights.tflite_reader.convert_selfie`;
every weighted layer carries ``tflite_name``, the Keras layer name it was
exported as. Keras numbers layers in creation order (``conv2d``, ``conv2d_1``,
…), so this module creates its layers in the same order as the original
model and :class:`KerasNames` reproduces those names.

TensorFlow details kept exactly: 'SAME' padding is asymmetric for stride 2
(more padding after than before); pooling before squeeze-excitation is a
global mean; upsampling is bilinear with half-pixel centres (torch's
``align_corners=False``); the transposed conv (MediaPipe's custom
``Convolution2DTransposeBias``, SAME, stride 2, 2×2 kernel) needs no padding.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODEL_SIZES", "KerasNames", "SelfieSegmentationNet", "TfConv2d", "Variant"]

Variant = Literal["general", "landscape"]

#: (height, width) each variant was trained at and MediaPipe feeds it
MODEL_SIZES: dict[str, tuple[int, int]] = {"general": (256, 256), "landscape": (144, 256)}


class KerasNames:
    """Hands out Keras' automatic layer names: ``conv2d``, ``conv2d_1``, ``conv2d_2``…"""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()

    def __call__(self, kind: str) -> str:
        n = self._count[kind]
        self._count[kind] += 1
        return kind if n == 0 else f"{kind}_{n}"


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) along one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TfConv2d(nn.Conv2d):
    """A conv with TensorFlow padding semantics and the name of the tflite layer it mirrors.

    Stride-1 'SAME' with an odd kernel is symmetric and uses torch's own
    padding; strided 'SAME' pads per input size (the pad depends on whether
    the size is even), so any input size behaves as TensorFlow would.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        *,
        tflite_name: str,
        depthwise: bool = False,
        padding: Literal["same", "valid"] = "same",
    ) -> None:
        symmetric = padding == "same" and stride == 1 and kernel % 2 == 1
        super().__init__(
            cin,
            cout,
            kernel,
            stride,
            padding=kernel // 2 if symmetric else 0,
            groups=cin if depthwise else 1,
        )
        self.tflite_name = tflite_name
        self._dynamic_same = padding == "same" and not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic_same:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = tf_same_padding(x.shape[-2], k, s)
            left, right = tf_same_padding(x.shape[-1], k, s)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class _SqueezeExcite(nn.Module):
    """Channel gate: global mean → 1×1 reduce → ReLU → 1×1 expand → sigmoid."""

    def __init__(self, channels: int, squeeze: int, names: KerasNames) -> None:
        super().__init__()
        self.reduce = TfConv2d(channels, squeeze, 1, tflite_name=names("conv2d"))
        self.expand = TfConv2d(squeeze, channels, 1, tflite_name=names("conv2d"))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.expand(F.relu(self.reduce(pooled))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class _InvertedResidual(nn.Module):
    """MobileNetV3 block: 1×1 expand → depthwise k×k → (SE) → 1×1 project (+ input)."""

    def __init__(
        self,
        cin: int,
        expand: int,
        cout: int,
        kernel: int,
        stride: int,
        hard_swish: bool,
        squeeze: int | None,
        names: KerasNames,
    ) -> None:
        super().__init__()
        self.expand = TfConv2d(cin, expand, 1, tflite_name=names("conv2d"))
        self.depthwise = TfConv2d(
            expand, expand, kernel, stride, depthwise=True, tflite_name=names("depthwise_conv2d")
        )
        self.se = _SqueezeExcite(expand, squeeze, names) if squeeze else None
        self.project = TfConv2d(expand, cout, 1, tflite_name=names("conv2d"))
        self.act = nn.Hardswish() if hard_swish else nn.ReLU()
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.depthwise(self.act(self.expand(x))))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class _Head(nn.Module):
    """LR-ASPP-like head: ReLU(1×1 conv(x)) gated by sigmoid(1×1 conv(mean(x)))."""

    def __init__(self, cin: int, cout: int, names: KerasNames) -> None:
        super().__init__()
        self.features = TfConv2d(cin, cout, 1, tflite_name=names("conv2d"))
        self.attention = TfConv2d(cin, cout, 1, tflite_name=names("conv2d"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.attention(x.mean(dim=(2, 3), keepdim=True)))
        return F.relu(self.features(x)) * gate


class _DecoderStage(nn.Module):
    """Upsample ×2, project to the skip's width, gate the skip, refine with a residual DW conv.

    ``y = skip · SE(skip + up) + up`` where ``up = conv1×1(resize(x))``; then
    ``h = ReLU(conv1×1(y))`` and the output is ``h + ReLU(depthwise3×3(h))``.
    """

    def __init__(self, cin: int, cskip: int, names: KerasNames) -> None:
        super().__init__()
        self.project = TfConv2d(cin, cskip, 1, tflite_name=names("conv2d"))
        self.se = _SqueezeExcite(cskip, cskip, names)
        self.mix = TfConv2d(cskip, cskip, 1, tflite_name=names("conv2d"))
        self.refine = TfConv2d(
            cskip, cskip, 3, depthwise=True, tflite_name=names("depthwise_conv2d")
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        up = self.project(x)
        y = skip * self.se.gate(skip + up) + up
        h = F.relu(self.mix(y))
        return h + F.relu(self.refine(h))


class SelfieSegmentationNet(nn.Module):
    """Person probability for an RGB image.

    Input: ``[N,3,H,W]`` RGB in 0..1 at the variant's size (:data:`MODEL_SIZES`;
    other sizes divisible by 16 run too, but the weights were trained at those).
    Output: ``[N,1,H,W]`` person probability in 0..1.
    """

    def __init__(self, variant: Variant = "general") -> None:
        super().__init__()
        if variant not in MODEL_SIZES:
            raise ValueError(f"unknown selfie variant {variant!r}; known: {sorted(MODEL_SIZES)}")
        self.variant = variant
        self.input_size = MODEL_SIZES[variant]
        names = KerasNames()
        self.stem = TfConv2d(3, 16, 3, 2, tflite_name=names("conv2d"))

        def block(cin: int, exp: int, cout: int, k: int, s: int, hs: bool, se: int | None):
            return _InvertedResidual(cin, exp, cout, k, s, hs, se, names)

        # (in, expand, out, kernel, stride, hard-swish, SE squeeze), read off the graph
        self.enc1 = block(16, 16, 16, 3, 2, False, 8)  # 1/4
        self.enc2 = nn.Sequential(
            block(16, 72, 24, 3, 2, False, None),
            block(24, 88, 24, 3, 1, False, None),
        )  # 1/8
        self.enc3 = nn.Sequential(
            block(24, 96, 32, 5, 2, True, 24),
            block(32, 128, 32, 5, 1, True, 32),
            block(32, 128, 32, 5, 1, True, 32),
            block(32, 96, 32, 5, 1, True, 24),
            block(32, 96, 32, 5, 1, True, 24),
        )  # 1/16
        self.head = _Head(32, 128, names)
        self.dec3 = _DecoderStage(128, 24, names)
        self.dec2 = _DecoderStage(24, 16, names)
        self.dec1 = _DecoderStage(16, 16, names)
        self.segment = nn.ConvTranspose2d(16, 1, 2, stride=2)
        # The only layer Keras named by hand, differently in the two exports.
        self.segment.tflite_name = "segment" if variant == "general" else "conv2d_transpose"

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        s1 = F.hardswish(self.stem(image))  # 1/2
        s2 = self.enc1(s1)  # 1/4
        s3 = self.enc2(s2)  # 1/8
        x = self.head(self.enc3(s3))  # 1/16
        x = self.dec3(x, s3)
        x = self.dec2(x, s2)
        x = self.dec1(x, s1)
        return torch.sigmoid(self.segment(x))
