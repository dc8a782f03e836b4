"""Person segmenters behind the :class:`Segmenter` interface.

* :class:`SelfieSegmenter` — the embedded default: MediaPipe's selfie
  segmentation (general 256×256, landscape 144×256), weights converted from the
  ``.tflite`` files inside the pinned ``mediapipe`` wheel. Small and fast; made
  for people in front of a camera.
* :class:`TorchvisionSegmenter` — torchvision's COCO-trained DeepLabV3 /
  LR-ASPP (person = class 15 of the VOC labels). Heavier, better on full-body
  and group photos; their files are on torchvision's download server only, so
  users supply them by hand where that server is unreachable.

Both return the probability at the model's working resolution; the pipeline
upsamples and refines it against the photo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import tflite_reader
from ...weights.fetch import WeightsUnavailable, fetch_file, load_converted
from ..models.selfie import MODEL_SIZES, SelfieSegmentationNet
from .base import Segmenter

__all__ = ["SelfieSegmenter", "TorchvisionSegmenter", "TORCHVISION_SEGMENTERS"]

#: bump when the tflite → state dict conversion changes its output
SELFIE_CONVERTER_VERSION = "selfie-1"

_SELFIE_FILES = {
    "general": ("selfie_segmentation", tflite_reader.convert_selfie),
    "landscape": ("selfie_segmentation_landscape", tflite_reader.convert_selfie_landscape),
}

#: width/height from which "auto" picks the landscape model: the geometric mean
#: of the two models' aspects (1 and 16:9), i.e. whichever distorts less
_LANDSCAPE_FROM_ASPECT = (256 / 144) ** 0.5


def _to_size(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize to exactly ``size`` (aspect not kept, as MediaPipe feeds its selfie models).

    Sampled the way MediaPipe's own graph samples (plain bilinear) from an image
    at most twice the model's size, which an antialiased shrink produces first:
    a 16 MP photo does not alias into the input, yet the model sees edges as
    sharp as in MediaPipe. Antialiasing all the way blurs the input by another
    tap, and the selfie model answers blur with grey: on the desk portrait in
    shared/ the share of grey (0.2–0.8) among the pixels above 0.2 went 0.235 →
    0.199 and the IoU with MediaPipe's pipeline 0.946 → 0.968
    (``bench/results/mask-framing.md``).
    """
    if tuple(image.shape[-2:]) == size:
        return image
    h, w = image.shape[-2:]
    mid = (min(h, 2 * size[0]), min(w, 2 * size[1]))
    if mid != (h, w):
        image = F.interpolate(image, size=mid, mode="bilinear", align_corners=False,
                              antialias=True)
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


class SelfieSegmenter(Segmenter):
    """MediaPipe selfie segmentation as a torch module, on CPU or CUDA."""

    name = "mediapipe-selfie"

    def __init__(
        self,
        nets: dict[str, SelfieSegmentationNet],
        variant: Literal["general", "landscape", "auto"] = "general",
        *,
        half: bool = False,
    ) -> None:
        if variant == "auto":
            missing = {"general", "landscape"} - set(nets)
        else:
            missing = {variant} - set(nets)
        if missing:
            raise ValueError(f"variant {variant!r} needs nets for {sorted(missing)}")
        self.variant = variant
        self.half = half
        self._nets = {k: net.eval().requires_grad_(False) for k, net in nets.items()}
        self._device = next(iter(self._nets.values())).stem.weight.device

    @classmethod
    def load(
        cls,
        device: str | torch.device = "cpu",
        variant: Literal["general", "landscape", "auto"] = "general",
        *,
        half: bool = False,
    ) -> SelfieSegmenter:
        """Fetch (once), convert (once) and load the model(s) for ``variant``.

        ``half`` is off by default: the net is tiny (a few ms at 256²) and
        float16 moves the probability by up to ~3e-2 on a few border pixels
        (mean 1e-4, measured with CPU float16), which buys nothing worth it.
        """
        device = torch.device(device)
        wanted = ["general", "landscape"] if variant == "auto" else [variant]
        nets = {}
        for v in wanted:
            if v not in _SELFIE_FILES:
                raise ValueError(f"unknown selfie variant {v!r}; use general, landscape or auto")
            registry_name, convert = _SELFIE_FILES[v]
            state = load_converted(registry_name, convert, SELFIE_CONVERTER_VERSION)
            net = SelfieSegmentationNet(v)  # type: ignore[arg-type]
            net.load_state_dict(state)
            nets[v] = net.to(device)
        if half:
            nets = {k: n.half() for k, n in nets.items()}
        return cls(nets, variant, half=half)

    @property
    def device(self) -> torch.device:
        return self._device

    def net(self, variant: str) -> SelfieSegmentationNet:
        """The bare network for ``variant`` (benchmarks compare framings with it)."""
        return self._nets[variant]

    def variant_for(self, height: int, width: int) -> str:
        """Which model a ``height``×``width`` image goes to."""
        if self.variant != "auto":
            return self.variant
        return "landscape" if width / height >= _LANDSCAPE_FROM_ASPECT else "general"

    @torch.inference_mode()
    def person_probability(self, image: torch.Tensor) -> torch.Tensor:
        """[1,3,H,W] RGB 0..1 (any size) → [1,1,h,w] float32 probability at the model's size."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an [N,3,H,W] RGB image, got shape {tuple(image.shape)}")
        variant = self.variant_for(image.shape[-2], image.shape[-1])
        net = self._nets[variant]
        x = _to_size(image.to(self._device, torch.float32), MODEL_SIZES[variant])
        if self.half:
            x = x.half()
        return net(x.clamp(0, 1)).float()


# -- torchvision's COCO-trained segmenters --------------------------------------------------
@dataclass(frozen=True)
class _TorchvisionArch:
    registry_name: str
    filename: str
    url: str
    builder: Callable[..., nn.Module]
    has_aux: bool


def _builders() -> dict[str, _TorchvisionArch]:
    from torchvision.models import segmentation as seg

    base = "https://download.pytorch.org/models/"
    return {
        "deeplabv3_resnet50": _TorchvisionArch(
            "deeplabv3_resnet50_coco", "deeplabv3_resnet50_coco-cd0a2569.pth",
            base + "deeplabv3_resnet50_coco-cd0a2569.pth", seg.deeplabv3_resnet50, True),
        "deeplabv3_resnet101": _TorchvisionArch(
            "deeplabv3_resnet101_coco", "deeplabv3_resnet101_coco-586e9e4e.pth",
            base + "deeplabv3_resnet101_coco-586e9e4e.pth", seg.deeplabv3_resnet101, True),
        "lraspp_mobilenet_v3_large": _TorchvisionArch(
            "lraspp_mobilenet_v3_large_coco", "lraspp_mobilenet_v3_large-d234d4ea.pth",
            base + "lraspp_mobilenet_v3_large-d234d4ea.pth", seg.lraspp_mobilenet_v3_large, False),
    }


#: the architectures :class:`TorchvisionSegmenter` knows
TORCHVISION_SEGMENTERS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "lraspp_mobilenet_v3_large")

#: index of "person" in the 21 VOC labels these COCO-subset models predict
PERSON_CLASS = 15
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_arch(arch: str, archs: dict[str, _TorchvisionArch]) -> None:
    if arch not in archs:
        raise ValueError(
            f"unknown torchvision segmenter {arch!r}; known: {', '.join(TORCHVISION_SEGMENTERS)}")


class TorchvisionSegmenter(Segmenter):
    """torchvision DeepLabV3 / LR-ASPP, person channel of the softmax.

    Built from torchvision's builders with no weights (nothing is downloaded);
    the state dict comes from the registry file or is passed in.
    """

    def __init__(
        self,
        arch: str,
        state_dict: dict[str, torch.Tensor] | None = None,
        device: str | torch.device = "cpu",
        *,
        max_side: int = 520,
        half: bool | None = None,
    ) -> None:
        archs = _builders()
        _check_arch(arch, archs)
        self.arch = arch
        self.name = f"torchvision-{arch}"
        spec = archs[arch]
        # aux heads only help training; official files carry them, so drop their keys
        model = spec.builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
        if state_dict is not None:
            state = {k: v for k, v in state_dict.items() if not k.startswith("aux_classifier.")}
            model.load_state_dict(state)
        self._device = torch.device(device)
        self.half = self._device.type == "cuda" if half is None else half
        self.model = model.eval().requires_grad_(False).to(self._device)
        if self.half:
            self.model = self.model.half()
        self.max_side = max_side

    @classmethod
    def load(
        cls,
        arch: str = "deeplabv3_resnet50",
        device: str | torch.device = "cpu",
        *,
        fetch: Callable[[str], Path] = fetch_file,
        **kwargs: object,
    ) -> TorchvisionSegmenter:
        """Load the official COCO-trained weights named in the registry.

        Raises :class:`WeightsUnavailable` naming the file, its official URL and
        how to supply it when the file cannot be fetched (no internet, or the
        download server unreachable as on our build machines).
        """
        archs = _builders()
        _check_arch(arch, archs)
        spec = archs[arch]
        try:
            path = fetch(spec.registry_name)
        except WeightsUnavailable as exc:
            raise WeightsUnavailable(
                f"torchvision segmenter {arch!r} needs {spec.filename} (registry name "
                f"{spec.registry_name!r}, official URL {spec.url}). Download it where that URL is "
                f"reachable, then run 'portrait-style weights add {spec.registry_name} "
                f"{spec.filename}' or put it into $PORTRAIT_STYLE_WEIGHTS_DIR.\n{exc}"
            ) from exc
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(arch, state, device, **kwargs)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        return self._device

    @torch.inference_mode()
    def person_probability(self, image: torch.Tensor) -> torch.Tensor:
        """[1,3,H,W] RGB 0..1 → [1,1,h,w] person probability, long side ≤ ``max_side``."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an [N,3,H,W] RGB image, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        scale = min(1.0, self.max_side / max(h, w))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = _to_size(image.to(self._device, torch.float32), size)
        mean = torch.tensor(_IMAGENET_MEAN, device=self._device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=self._device).view(1, 3, 1, 1)
        x = (x - mean) / std
        if self.half:
            x = x.half()
        logits = self.model(x)["out"].float()
        return logits.softmax(dim=1)[:, PERSON_CLASS : PERSON_CLASS + 1]
