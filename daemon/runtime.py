"""Assemble the warm pipeline the daemon serves: pick the device, engine and segmenter.

Why a separate module: the server, the benchmarks and the tests all need "the
product's pipeline as a user gets it" with the same choices (SANet when its
weights are installed, the embedded Magenta engine otherwise), and each choice
the user did not make explicitly is reported back as a note the daemon logs and
shows in ``hello``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .engines.base import Segmenter, StyleEngine
from .pipeline import PortraitPipeline

__all__ = ["ENGINES", "SEGMENTERS", "default_max_working_pixels", "load_pipeline",
           "resolve_device", "sanet_search_dirs"]

ENGINES: tuple[str, ...] = ("auto", "sanet", "magenta")
#: "selfie" = MediaPipe general (256²), "selfie_landscape" (144×256), "selfie_auto" picks
#: by aspect; torchvision names need their files supplied by the user
SEGMENTERS: tuple[str, ...] = ("selfie", "selfie_landscape", "selfie_auto",
                               "deeplabv3_resnet50", "deeplabv3_resnet101",
                               "lraspp_mobilenet_v3_large")

#: CPU: a 1 MP pass takes ~0.5 s with Magenta on 2 cores; GPUs afford 4 MP in tens of ms
_CPU_WORKING_PIXELS = 1024 * 1024
_GPU_WORKING_PIXELS = 2048 * 2048


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as given (checked)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but CUDA is not available "
                           f"(torch {torch.__version__}); use --device cpu")
    return dev


def default_max_working_pixels(device: torch.device) -> int:
    return _GPU_WORKING_PIXELS if device.type == "cuda" else _CPU_WORKING_PIXELS


def sanet_search_dirs(sanet_weights_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for SANet's three files, in order.

    The explicit folder if given; otherwise the user's hand-supplied weights
    folder ($PORTRAIT_STYLE_WEIGHTS_DIR, itself and its ``sanet`` subfolder)
    and ``<user data dir>/sanet`` (where ``portrait-style train`` writes).
    """
    if sanet_weights_dir is not None:
        return [Path(sanet_weights_dir).expanduser()]
    from ..paths import data_dir
    from ..weights.fetch import USER_WEIGHTS_ENV

    dirs: list[Path] = []
    user = os.environ.get(USER_WEIGHTS_ENV)
    if user:
        dirs += [Path(user).expanduser() / "sanet", Path(user).expanduser()]
    dirs.append(data_dir() / "sanet")
    return dirs


def load_pipeline(
    engine: str = "auto",
    device: str | torch.device = "auto",
    sanet_weights_dir: str | Path | None = None,
    segmenter: str = "selfie",
    max_working_pixels: int | None = None,
) -> tuple[PortraitPipeline, list[str]]:
    """Build the pipeline; return it with notes about choices made for the user.

    engine: "auto" (SANet if its weights are found, else Magenta), "sanet", "magenta".
    Raises FileNotFoundError naming SANet's missing files when engine="sanet"
    cannot find them, ValueError for unknown names.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; known: {', '.join(SEGMENTERS)}")
    dev = resolve_device(device)
    notes: list[str] = []
    style_engine = _load_engine(engine, dev, sanet_weights_dir, notes)
    seg = _load_segmenter(segmenter, dev)
    pixels = max_working_pixels or default_max_working_pixels(dev)
    pipeline = PortraitPipeline(style_engine, seg, max_working_pixels=pixels)
    return pipeline, notes


def _load_engine(engine: str, device: torch.device, sanet_weights_dir: str | Path | None,
                 notes: list[str]) -> StyleEngine:
    if engine in {"auto", "sanet"}:
        from .engines.sanet import SANetEngine, find_sanet_weights

        dirs = sanet_search_dirs(sanet_weights_dir)
        for d in dirs:
            if d.is_dir() and find_sanet_weights(d) is not None:
                return SANetEngine.from_dir(d, device)
        if engine == "sanet":
            # from_dir's message names each missing file and the names it accepts
            first = next((d for d in dirs if d.is_dir()), None)
            if first is not None:
                SANetEngine.from_dir(first, device)
            raise FileNotFoundError(
                "SANet weights not found: need vgg_normalised.pth, decoder.pth and "
                "transformer.pth (or decoder_iter_N.pth / transformer_iter_N.pth) in one of: "
                + ", ".join(str(d) for d in dirs))
        notes.append("SANet weights not installed: using the embedded engine (Magenta); "
                     "searched " + ", ".join(str(d) for d in dirs))
    from .engines.magenta import MagentaEngine

    return MagentaEngine.load(device)


def _load_segmenter(name: str, device: torch.device) -> Segmenter:
    from .engines.segmenters import SelfieSegmenter, TorchvisionSegmenter

    if name.startswith("selfie"):
        variant = {"selfie": "general", "selfie_landscape": "landscape",
                   "selfie_auto": "auto"}[name]
        return SelfieSegmenter.load(device, variant)  # type: ignore[arg-type]
    return TorchvisionSegmenter.load(name, device)
