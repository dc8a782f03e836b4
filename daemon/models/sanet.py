"""SANet (Park & Lee 2019) with the portrait paper's weighted branch merge.

The network is laid out exactly like the public PyTorch SANet checkpoints
(GlebSBrykin/SANET, itself built on pytorch-AdaIN), so ``vgg_normalised.pth``,
``decoder_iter_*.pth`` and ``transformer_iter_*.pth`` load into these modules
unchanged:

* encoder: the *normalised* VGG-19 as one ``nn.Sequential`` of 53 modules, up to
  relu5_4 (only relu1_1…relu5_1 are used, but the public file holds all 16
  convolutions). Module 0 is a 1×1 conv 3→3 that does the input preprocessing
  inside the network: RGB in 0..1 goes in, whatever the following VGG expects
  comes out. Reflection padding replaces VGG's zero padding.
* transformer: ``sanet4_1`` / ``sanet5_1`` (1×1 convs ``f g h out_conv``) and a
  3×3 ``merge_conv`` behind a reflection pad.
* decoder: the AdaIN decoder, mirroring the encoder from relu4_1 to RGB.

What is ours on top of the public network:

* the seed paper's merge ``merge_conv(pad(W_l·SANet4_1 + W_h·up(SANet5_1)))``,
  which is the public plain sum at ``W_l = W_h = 1`` (multiplying by 1.0 is exact);
* attention through ``scaled_dot_product_attention`` with ``scale=1`` (SANet has
  no 1/√d), so GPUs use their memory-efficient kernels, with the queries cut into
  chunks sized from a memory budget so a huge content never materialises the
  whole Nc×Ns score matrix;
* the attention split into ``project_content`` / ``project_style`` / ``attend`` so
  an engine can cache the style's keys and values per style image and the
  content's queries per content image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = [
    "ENCODER_SLICES",
    "ENCODER_LAYERS",
    "SANet",
    "SANetModel",
    "StyleKV",
    "Transform",
    "attention",
    "calc_mean_std",
    "make_decoder",
    "make_encoder",
    "mean_variance_norm",
]

#: relu1_1 … relu5_1 as slices of the encoder Sequential (the public split)
ENCODER_SLICES: tuple[tuple[int, int], ...] = ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44))
#: number of modules in the public normalised VGG (up to relu5_4)
ENCODER_LAYERS = 53

# VGG-19 convolution widths per block; "M" is a 2×2 max pool (ceil mode, as in Torch7)
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512,
)

#: default bytes allowed for one chunk of attention scores, per device type
DEFAULT_ATTENTION_BUDGET = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}


def _conv3x3(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3))]


def make_encoder() -> nn.Sequential:
    """The normalised VGG-19 Sequential, module for module as the public file.

    Indices matter: the state dict keys are ``"0.weight"``, ``"2.weight"``,
    ``"5.weight"`` … and the relu slices in ``ENCODER_SLICES`` count modules.
    """
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    cin = 3
    for item in _VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
        else:
            layers += [*_conv3x3(cin, int(item)), nn.ReLU()]
            cin = int(item)
    assert len(layers) == ENCODER_LAYERS
    return nn.Sequential(*layers)


def make_decoder() -> nn.Sequential:
    """The AdaIN/SANet decoder Sequential (relu4_1 features → RGB), public layout."""
    layers: list[nn.Module] = []
    plan: tuple[tuple[int, int, bool], ...] = (
        # (in, out, upsample after the ReLU)
        (512, 256, True),
        (256, 256, False), (256, 256, False), (256, 256, False), (256, 128, True),
        (128, 128, False), (128, 64, True),
        (64, 64, False),
    )
    for cin, cout, up in plan:
        layers += [*_conv3x3(cin, cout), nn.ReLU()]
        if up:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    layers += _conv3x3(64, 3)
    return nn.Sequential(*layers)


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over H×W, as SANet/AdaIN compute them.

    The variance is the unbiased one plus ``eps`` (the public definition; the
    trained weights saw exactly this). Statistics are taken in float32 even for
    half inputs, because a half-precision variance over a large map is noisy.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1).float()
    var = flat.var(dim=2) + eps
    return flat.mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    """Normalise each channel to zero mean, unit std (the ``norm`` in SANet's f/g)."""
    mean, std = calc_mean_std(feat)
    return ((feat.float() - mean) / std).to(feat.dtype)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] → [B,H·W,C], the sequence layout attention wants."""
    return x.flatten(2).transpose(1, 2)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, budget_bytes: int | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ) v`` with no 1/√d scaling, queries chunked to a memory budget.

    q: [B,Nq,C]; k, v: [B,Nk,C]. Each query row's softmax is independent of the
    others, so cutting the queries into chunks changes nothing but peak memory:
    a chunk's score block is ``B·chunk·Nk`` elements, kept under ``budget_bytes``
    (×3 headroom for the softmax temporaries of the math kernel). On GPU,
    ``scaled_dot_product_attention`` picks a fused kernel that never stores the
    scores at all; the budget then only bounds the fallback path.
    """
    if budget_bytes is None:
        budget_bytes = DEFAULT_ATTENTION_BUDGET.get(q.device.type, DEFAULT_ATTENTION_BUDGET["cpu"])
    b, nq, _ = q.shape
    nk = k.shape[1]
    per_row = 3 * b * nk * max(q.element_size(), 4)
    chunk = max(1, int(budget_bytes) // per_row)
    k4, v4 = k.unsqueeze(1), v.unsqueeze(1)
    if chunk >= nq:
        return _sdpa(q.unsqueeze(1), k4, v4).squeeze(1)
    out = q.new_empty(b, nq, v.shape[2])
    for start in range(0, nq, chunk):
        stop = min(nq, start + chunk)
        out[:, start:stop] = _sdpa(q[:, start:stop].unsqueeze(1), k4, v4).squeeze(1)
    return out


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One unscaled attention call, redone in float32 if half precision overflowed.

    SANet's scores are raw 512-channel dot products (no 1/√d): fused GPU kernels
    keep them in float32, but a math fallback in half could overflow to inf.
    """
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    if out.dtype in (torch.float16, torch.bfloat16) and not bool(torch.isfinite(out).all()):
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=1.0)
        out = out.to(q.dtype)
    return out


@dataclass
class StyleKV:
    """A style's keys and values for one SANet module: [B,Ns,C] each."""

    k: torch.Tensor
    v: torch.Tensor


class SANet(nn.Module):
    """The style-attentional module.

    ``out = out_conv(h(Fs) · softmax(f(norm Fc)ᵀ g(norm Fs))ᵀ) + Fc``: each content
    position takes a softmax-weighted mix of style positions, the weights coming
    from normalised (statistics-free) features and the mixed values from the raw
    style features, which is where the style's colours and textures come from.
    """

    def __init__(self, in_planes: int = 512) -> None:
        super().__init__()
        self.f = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.g = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.h = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.out_conv = nn.Conv2d(in_planes, in_planes, (1, 1))
        #: bytes per chunk of attention scores; None = per-device default
        self.attention_budget: int | None = None

    def project_content(self, content: torch.Tensor) -> torch.Tensor:
        """Queries [B,Nc,C] of a content feature map (cacheable per content)."""
        return _tokens(self.f(mean_variance_norm(content)))

    def project_style(self, style: torch.Tensor) -> StyleKV:
        """Keys and values of a style feature map (cacheable per style)."""
        return StyleKV(k=_tokens(self.g(mean_variance_norm(style))), v=_tokens(self.h(style)))

    def attend(self, content: torch.Tensor, q: torch.Tensor, kv: StyleKV) -> torch.Tensor:
        """Finish the module from cached projections; batches broadcast 1 → B."""
        b = max(q.shape[0], kv.k.shape[0])
        q = q.expand(b, -1, -1)
        k, v = kv.k.expand(b, -1, -1), kv.v.expand(b, -1, -1)
        o = attention(q, k, v, self.attention_budget)
        n, c, hh, ww = content.shape
        o = o.transpose(1, 2).reshape(b, c, hh, ww)
        return self.out_conv(o) + content

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.attend(content, self.project_content(content), self.project_style(style))


Weight = float | torch.Tensor


class Transform(nn.Module):
    """Both SANet branches and the merge conv (the public ``transformer`` file).

    ``merge`` is the seed paper's weighted sum: ``W_l`` scales the relu4_1
    branch (local texture, keeps geometry) and ``W_h`` the relu5_1 branch
    (global style, moves shapes). Weights may be [B,1,1,1] tensors so several
    region settings run as one batch over the same branch outputs.
    """

    def __init__(self, in_planes: int = 512) -> None:
        super().__init__()
        self.sanet4_1 = SANet(in_planes)
        self.sanet5_1 = SANet(in_planes)
        self.merge_conv_pad = nn.ReflectionPad2d((1, 1, 1, 1))
        self.merge_conv = nn.Conv2d(in_planes, in_planes, (3, 3))

    def merge(
        self, a4: torch.Tensor, a5: torch.Tensor, w_low: Weight = 1.0, w_high: Weight = 1.0
    ) -> torch.Tensor:
        """``merge_conv(pad(W_l·a4 + W_h·nearest_up(a5 → a4's grid)))``."""
        up = F.interpolate(a5, size=a4.shape[-2:], mode="nearest")
        return self.merge_conv(self.merge_conv_pad(w_low * a4 + w_high * up))

    def forward(
        self,
        content4_1: torch.Tensor,
        style4_1: torch.Tensor,
        content5_1: torch.Tensor,
        style5_1: torch.Tensor,
        w_low: Weight = 1.0,
        w_high: Weight = 1.0,
    ) -> torch.Tensor:
        a4 = self.sanet4_1(content4_1, style4_1)
        a5 = self.sanet5_1(content5_1, style5_1)
        return self.merge(a4, a5, w_low, w_high)


class SANetModel(nn.Module):
    """Encoder + transformer + decoder, with the public parts as attributes.

    ``encoder``, ``transform`` and ``decoder`` each save/load as one of the three
    public files (see ``portrait_style.weights.sanet_checkpoint``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = make_encoder()
        self.transform = Transform(512)
        self.decoder = make_decoder()

    def encode(self, image: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
        """relu1_1 … relu{levels}_1 of an RGB 0..1 batch (the encoder normalises)."""
        feats: list[torch.Tensor] = []
        x = image
        for start, stop in ENCODER_SLICES[:levels]:
            for layer in self.encoder[start:stop]:
                x = layer(x)
            feats.append(x)
        return feats

    def encode_45(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 and relu5_1 only, the two levels the transformer reads."""
        x = image
        for layer in self.encoder[: ENCODER_SLICES[3][1]]:
            x = layer(x)
        c4 = x
        for layer in self.encoder[ENCODER_SLICES[4][0]: ENCODER_SLICES[4][1]]:
            x = layer(x)
        return c4, x

    def forward(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        alpha: Weight = 1.0,
        w_low: Weight = 1.0,
        w_high: Weight = 1.0,
    ) -> torch.Tensor:
        """Stylize (no padding, no clamping): the public evaluation path plus knobs."""
        c4, c5 = self.encode_45(content)
        s4, s5 = self.encode_45(style)
        t = self.transform(c4, s4, c5, s5, w_low, w_high)
        if not (isinstance(alpha, float | int) and alpha == 1.0):
            t = alpha * t + (1.0 - alpha) * c4
        return self.decoder(t)
