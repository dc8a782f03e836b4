"""Read, check, write and convert SANet weights in the public file layout.

The public PyTorch SANet release (GlebSBrykin/SANET, built on pytorch-AdaIN)
ships three plain state dicts, one per part, and this module keeps that layout
both ways so our own training output and users' downloaded files are
interchangeable:

* ``vgg_normalised.pth``: the encoder ``nn.Sequential`` (keys ``"0.weight"``,
  ``"0.bias"``, ``"2.weight"`` … ``"51.bias"``: the 1×1 input conv and the 16
  VGG-19 convolutions up to conv5_4);
* ``decoder.pth`` or ``decoder_iter_<N>.pth``: the decoder Sequential;
* ``transformer.pth`` or ``transformer_iter_<N>.pth``: keys
  ``sanet4_1.{f,g,h,out_conv}.{weight,bias}``, ``sanet5_1.{…}``,
  ``merge_conv.{weight,bias}``.

Loading checks every tensor's shape against the model and names missing,
unexpected and mis-shaped keys, so a wrong or truncated file fails with a
message instead of a half-loaded network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..daemon.models.sanet import SANetModel

__all__ = [
    "CheckpointMismatch",
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "CAFFE_MEAN_BGR",
    "PART_NAMES",
    "caffe_input_conv",
    "check_state_dict",
    "convert_torchvision_vgg19",
    "find_checkpoint_files",
    "iterations_in",
    "load_part",
    "load_sanet",
    "load_vgg_any",
    "normalise_activations",
    "read_state_dict",
    "save_part",
    "save_sanet",
]

#: torchvision's ImageNet preprocessing (RGB, on 0..1 inputs)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
#: the Caffe VGG mean pixel (BGR, on 0..255 inputs) that the public normalised
#: VGG's first conv subtracts
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: part → (accepted plain file names, iteration-suffixed stem or None)
PART_NAMES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "vgg": (("vgg_normalised.pth", "vgg_normalized.pth"), None),
    "decoder": (("decoder.pth",), "decoder_iter_"),
    "transformer": (("transformer.pth",), "transformer_iter_"),
}

# torchvision vgg19().features: indices of the 16 convolutions
_TV_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# the normalised Sequential: indices of the same 16 convolutions (module 0 is the 1×1)
_NV_CONVS = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)


class CheckpointMismatch(ValueError):
    """A state dict does not fit the module; the message names every bad key."""

    def __init__(
        self,
        what: str,
        missing: list[str],
        unexpected: list[str],
        misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.misshaped = missing, unexpected, misshaped
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if misshaped:
            parts.append("mis-shaped keys: " + ", ".join(
                f"{k} (file {list(got)}, model {list(want)})" for k, got, want in misshaped))
        super().__init__(f"{what} does not match the SANet layout; " + "; ".join(parts))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict onto the CPU without running pickled code.

    Accepts the plain dict the public files are, a ``{"state_dict": …}`` wrapper
    and a ``module.`` prefix (checkpoints saved from ``DataParallel``).
    """
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is {type(value).__name__}, not a tensor")
        out[key.removeprefix("module.")] = value
    return out


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise ``CheckpointMismatch`` unless ``state`` fits ``module`` key for key, shape for shape.

    Checked before ``load_state_dict`` so the error names every bad key at once.
    """
    want = module.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    misshaped = [(k, tuple(state[k].shape), tuple(want[k].shape))
                 for k in want if k in state and state[k].shape != want[k].shape]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(what, missing, unexpected, misshaped)


def load_part(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Check, then copy ``state`` into ``module`` (dtype cast to the module's)."""
    check_state_dict(module, state, what)
    module.load_state_dict(dict(state), strict=True)


def load_vgg_any(path: str | Path) -> dict[str, torch.Tensor]:
    """A VGG file as the normalised-Sequential state dict, whichever layout it has.

    Public ``vgg_normalised.pth`` passes through; a torchvision VGG-19 state dict
    (``features.N.weight``) is converted with ``convert_torchvision_vgg19``.
    """
    return convert_torchvision_vgg19(read_state_dict(path))


def load_sanet(
    vgg: str | Path | None,
    decoder: str | Path,
    transformer: str | Path,
    model: SANetModel | None = None,
) -> SANetModel:
    """Build (or fill) a ``SANetModel`` from the three public files.

    ``vgg`` may be None to keep the model's current encoder (e.g. when only a
    new decoder/transformer pair is being swapped in).
    """
    model = model if model is not None else SANetModel()
    if vgg is not None:
        load_part(model.encoder, load_vgg_any(vgg), f"encoder file {vgg}")
    load_part(model.decoder, read_state_dict(decoder), f"decoder file {decoder}")
    load_part(model.transform, read_state_dict(transformer), f"transformer file {transformer}")
    return model


def save_part(module: nn.Module, path: str | Path) -> Path:
    """Write one module's state dict (float32, CPU) as a plain dict, atomically.

    The file goes to a temporary name and is renamed, so a crash never leaves a
    truncated checkpoint under a real name.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def save_sanet(
    model: SANetModel, out_dir: str | Path, iteration: int | None = None, include_vgg: bool = True
) -> dict[str, Path]:
    """Write the model as the public files; returns part → path.

    With ``iteration`` the decoder and transformer get the public
    ``_iter_<N>`` suffix (what the trainer writes); without, the plain names.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if iteration is None else f"_iter_{int(iteration)}"
    plan = {"decoder": (model.decoder, f"decoder{suffix}.pth"),
            "transformer": (model.transform, f"transformer{suffix}.pth")}
    if include_vgg:
        plan["vgg"] = (model.encoder, "vgg_normalised.pth")
    return {part: save_part(module, out / name) for part, (module, name) in plan.items()}


def iterations_in(directory: str | Path, stem: str) -> dict[int, Path]:
    """``{N: path}`` for every ``<stem><N>.pth`` in ``directory``."""
    pattern = re.compile(re.escape(stem) + r"(\d+)\.pth")
    found = {}
    d = Path(directory)
    if d.is_dir():
        for p in d.iterdir():
            m = pattern.fullmatch(p.name)
            if m and p.is_file():
                found[int(m.group(1))] = p
    return found


def find_checkpoint_files(directory: str | Path) -> tuple[dict[str, Path], list[str]]:
    """Locate the three parts in ``directory``: (found part → path, missing descriptions).

    Choice rules: the plain names (``decoder.pth`` / ``transformer.pth``) win when
    both are there (a user who renamed files meant them); otherwise the highest
    iteration present for *both* decoder and transformer, because a decoder is
    only valid with the transformer it was trained with.
    """
    d = Path(directory)
    found: dict[str, Path] = {}
    for name in PART_NAMES["vgg"][0]:
        if (d / name).is_file():
            found["vgg"] = d / name
            break
    plain = {part: d / PART_NAMES[part][0][0] for part in ("decoder", "transformer")}
    if all(p.is_file() for p in plain.values()):
        found.update(plain)
    else:
        dec = iterations_in(d, "decoder_iter_")
        tra = iterations_in(d, "transformer_iter_")
        common = sorted(set(dec) & set(tra))
        if common:
            found["decoder"], found["transformer"] = dec[common[-1]], tra[common[-1]]
        else:
            for part, iters in (("decoder", dec), ("transformer", tra)):
                if plain[part].is_file():
                    found[part] = plain[part]
                elif iters:
                    found[part] = iters[max(iters)]
    missing = []
    for part, (names, stem) in PART_NAMES.items():
        if part not in found:
            alts = " or ".join(names) + (f" or {stem}<N>.pth" if stem else "")
            missing.append(f"{part} ({alts})")
    if "decoder" in found and "transformer" in found:
        dn = re.search(r"_iter_(\d+)", found["decoder"].name)
        tn = re.search(r"_iter_(\d+)", found["transformer"].name)
        if (dn is None) != (tn is None) or (dn and tn and dn.group(1) != tn.group(1)):
            missing.append(
                f"a matching decoder/transformer pair (found {found['decoder'].name} and "
                f"{found['transformer'].name}, which come from different training runs or steps)")
            found.pop("decoder")
            found.pop("transformer")
    return found, missing


def convert_torchvision_vgg19(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ImageNet VGG-19 (``features.N.*``) → the normalised-VGG Sequential layout.

    Pure and idempotent: a state dict already in the Sequential layout (it has
    ``"0.weight"`` of shape [3,3,1,1]) is returned unchanged (as a new dict).

    Input conventions, which is what the 1×1 first conv (module 0) encodes:

    * The public ``vgg_normalised.pth`` (converted from Xun Huang's
      ``vgg_normalised.t7``, itself from the Caffe VGG-19 that Gatys et al.
      rescaled so every filter's mean activation over ImageNet is 1) expects the
      network input to be **RGB in 0..1**. Its 1×1 conv turns that into what
      Caffe VGG was trained on: **BGR, 0..255, minus the mean pixel**
      (103.939, 116.779, 123.68): weight[o, i] = 255 where o is the BGR index of
      RGB channel i, bias = −mean_BGR.
    * torchvision's VGG-19 expects **RGB in 0..1, then (x − mean) / std** with
      ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). We fold
      exactly that into module 0: weight = diag(1/std), bias = −mean/std; the 16
      convolutions are copied unchanged (RGB order kept, so no channel flip).

    So both encoders take the same input (RGB 0..1), which is the model's public
    convention. What the conversion cannot reproduce is the *activation
    rescaling* of the "normalised" VGG: torchvision's feature magnitudes differ
    per layer, which shifts the balance of the multi-layer style loss. Use
    ``normalise_activations`` on some images to rescale them the same way.
    ``classifier.*`` keys are dropped: the encoder stops at conv5_4.
    """
    if "0.weight" in state and tuple(state["0.weight"].shape) == (3, 3, 1, 1):
        return dict(state)
    missing = [f"features.{i}.{p}" for i in _TV_CONVS for p in ("weight", "bias")
               if f"features.{i}.{p}" not in state]
    if missing:
        raise CheckpointMismatch("torchvision VGG-19 state dict", missing, [], [])
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float32)
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float32)
    out = {
        "0.weight": torch.diag(1.0 / std).view(3, 3, 1, 1),
        "0.bias": -mean / std,
    }
    for tv, nv in zip(_TV_CONVS, _NV_CONVS, strict=True):
        out[f"{nv}.weight"] = state[f"features.{tv}.weight"].detach().float().clone()
        out[f"{nv}.bias"] = state[f"features.{tv}.bias"].detach().float().clone()
    return out


def caffe_input_conv() -> dict[str, torch.Tensor]:
    """Module 0 of the public normalised VGG: RGB 0..1 → BGR 0..255 minus the mean pixel.

    Handy to build a normalised-layout encoder from Caffe-converted VGG-19 weights
    (the convolutions of such files take BGR input).
    """
    weight = torch.zeros(3, 3, 1, 1)
    for o in range(3):
        weight[o, 2 - o, 0, 0] = 255.0
    return {"0.weight": weight, "0.bias": -torch.tensor(CAFFE_MEAN_BGR)}


@torch.no_grad()
def normalise_activations(encoder: nn.Sequential, images: Iterable[torch.Tensor]) -> None:
    """Rescale an encoder in place so every ReLU's mean activation over ``images`` is 1.

    This is the "normalised" in normalised VGG (Gatys et al.): for each conv in
    order, undo the scale already applied to its inputs, measure the mean of its
    ReLU output per channel, and divide the filter (weight and bias) by it. ReLU,
    padding and max pooling commute with positive per-channel scales, so every
    feature map is only rescaled per channel; what changes is the relative weight
    of the layers in the style and identity losses, which were tuned on the
    public file. One pass over the images: each conv's input is carried forward
    already rescaled. Channels that never fire keep their scale.
    """
    xs = list(images)
    if not xs:
        raise ValueError("normalise_activations needs at least one image")
    prev_scale: torch.Tensor | None = None
    for idx, layer in enumerate(encoder):
        if not (isinstance(layer, nn.Conv2d) and idx > 0):  # module 0 is preprocessing
            xs = [layer(x.to(next(encoder.parameters()))) for x in xs]
            continue
        if prev_scale is not None:
            layer.weight.mul_(prev_scale.view(1, -1, 1, 1).to(layer.weight))
        ys = [layer(x) for x in xs]
        total = sum(torch.relu(y).double().sum(dim=(0, 2, 3)).cpu() for y in ys)
        count = sum(y.shape[0] * y.shape[2] * y.shape[3] for y in ys)
        mean = (total / count).float()
        scale = torch.where(mean > 1e-8, mean, torch.ones_like(mean))
        layer.weight.div_(scale.view(-1, 1, 1, 1).to(layer.weight))
        layer.bias.div_(scale.to(layer.bias))
        xs = [y / scale.view(1, -1, 1, 1).to(y) for y in ys]
        prev_scale = scale
