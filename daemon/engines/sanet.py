"""SANet as a ``StyleEngine``: the paper's network, warm, with cached encodings.

Work split (why it is fast for two region passes):

* ``encode_style`` runs the encoder on the painting and projects the style's
  keys ``g(norm Fs)`` and values ``h(Fs)`` for both SANet modules: everything
  that depends on the style alone, cached by the caller per style image.
* ``encode_content`` pads the photo to a multiple of 16, runs the encoder and
  projects the content's queries ``f(norm Fc)``.
* ``stylize`` runs both attentions once (they depend on neither ``W_l/W_h`` nor
  ``alpha``), then the cheap per-region merge + alpha blend for all regions as
  one batch, and one batched decoder pass; crops the padding away and clamps
  to 0..1.

Region knobs: ``strength`` is SANet's alpha (``alpha·T + (1−alpha)·Fc`` on
relu4_1 features), ``w_low`` / ``w_high`` the seed paper's branch weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from ...weights.sanet_checkpoint import find_checkpoint_files, load_sanet
from ..models.sanet import SANetModel, StyleKV
from .base import RegionSettings, StyleEngine

__all__ = ["SANetContentState", "SANetEngine", "SANetStyleState", "find_sanet_weights",
           "pad_to_multiple"]

#: the encoder pools four times before relu5_1, and relu5_1 needs ≥ 2 pixels
#: for its reflection pad: sizes are padded to a multiple of 16, at least 32
SIZE_MULTIPLE = 16
MIN_SIDE = 32


def find_sanet_weights(weights_dir: str | Path) -> dict[str, Path] | None:
    """``{"vgg", "decoder", "transformer"} → path`` if all three are in the folder, else None.

    Accepts the plain public names and the iteration-suffixed training output
    (highest iteration common to decoder and transformer wins).
    """
    found, missing = find_checkpoint_files(weights_dir)
    return None if missing else found


def pad_to_multiple(
    image: torch.Tensor, multiple: int = SIZE_MULTIPLE, minimum: int = MIN_SIDE
) -> torch.Tensor:
    """Pad a [B,C,H,W] batch at the bottom/right to a multiple of ``multiple``.

    Reflection keeps the border's texture statistics close to the image's own
    (a constant pad would add a flat region that attention and the
    mean/variance normalisation would both see). Images too small to reflect
    that far are replicated instead. Anchoring at the top-left keeps pixel
    (y, x) of the output at (y, x) of the padded run, so the crop back is exact.
    """
    h, w = image.shape[-2:]
    ph = max(minimum, -(-h // multiple) * multiple) - h
    pw = max(minimum, -(-w // multiple) * multiple) - w
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode)


@dataclass
class SANetStyleState:
    """Everything that depends on the style image only."""

    s4: torch.Tensor
    s5: torch.Tensor
    kv4: StyleKV
    kv5: StyleKV


@dataclass
class SANetContentState:
    """Everything that depends on the content image only (padded grid)."""

    c4: torch.Tensor
    c5: torch.Tensor
    q4: torch.Tensor
    q5: torch.Tensor
    size: tuple[int, int]


class SANetEngine(StyleEngine):
    """The paper's style network behind the ``StyleEngine`` interface."""

    name = "sanet"

    def __init__(
        self,
        model: SANetModel,
        device: str | torch.device = "cpu",
        half: bool | None = None,
        attention_budget: int | None = None,
        source: str | None = None,
    ) -> None:
        """``half=None`` means half precision on CUDA, float32 elsewhere.

        Half is safe here because the fused attention kernels accumulate scores
        and softmax in float32 and the mean/std statistics are computed in
        float32 regardless; CPU half convolutions are slow, so never there.
        """
        self._device = torch.device(device)
        self.half = (self._device.type == "cuda") if half is None else bool(half)
        self.dtype = torch.float16 if self.half else torch.float32
        self.model = model.to(self._device, self.dtype).eval().requires_grad_(False)
        for module in (self.model.transform.sanet4_1, self.model.transform.sanet5_1):
            module.attention_budget = attention_budget
        self.source = source

    @classmethod
    def from_dir(
        cls, weights_dir: str | Path, device: str | torch.device = "cpu", half: bool | None = None
    ) -> SANetEngine:
        """Load ``vgg_normalised.pth`` + decoder + transformer from one folder.

        Raises ``FileNotFoundError`` naming each missing file (and the names it
        would accept), or ``CheckpointMismatch`` naming each bad key.
        """
        found, missing = find_checkpoint_files(weights_dir)
        if missing:
            raise FileNotFoundError(
                f"SANet weights incomplete in {weights_dir}: missing " + "; ".join(missing))
        model = load_sanet(found["vgg"], found["decoder"], found["transformer"])
        return cls(model, device=device, half=half, source=str(weights_dir))

    @property
    def device(self) -> torch.device:
        return self._device

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "half": self.half, "weights": self.source}

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a [B,3,H,W] RGB batch, got {tuple(image.shape)}")
        return image.to(self._device, self.dtype)

    @torch.inference_mode()
    def encode_style(self, style: torch.Tensor) -> SANetStyleState:
        """Encode a [1,3,h,w] painting: relu4_1/5_1 and both modules' keys/values.

        The style is not padded to a multiple of 16 (nothing is merged or
        decoded on its grid); only tiny styles are padded to the encoder's minimum.
        """
        x = pad_to_multiple(self._prepare(style), multiple=1)
        s4, s5 = self.model.encode_45(x)
        t = self.model.transform
        return SANetStyleState(s4, s5, t.sanet4_1.project_style(s4), t.sanet5_1.project_style(s5))

    @torch.inference_mode()
    def encode_content(self, content: torch.Tensor) -> SANetContentState:
        """Encode a [1,3,H,W] photo on its grid padded to a multiple of 16."""
        x = self._prepare(content)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        c4, c5 = self.model.encode_45(pad_to_multiple(x))
        t = self.model.transform
        return SANetContentState(c4, c5, t.sanet4_1.project_content(c4),
                                 t.sanet5_1.project_content(c5), size)

    @torch.inference_mode()
    def stylize(
        self,
        content_state: SANetContentState,
        style_state: SANetStyleState,
        regions: Sequence[RegionSettings],
    ) -> torch.Tensor:
        """Return [len(regions),3,H,W] in 0..1: one attention, one batched decode."""
        if not regions:
            raise ValueError("stylize needs at least one RegionSettings")
        cs, ss = content_state, style_state
        t = self.model.transform
        a4 = t.sanet4_1.attend(cs.c4, cs.q4, ss.kv4)
        a5 = t.sanet5_1.attend(cs.c5, cs.q5, ss.kv5)

        def knob(name: str) -> torch.Tensor:
            values = [float(getattr(r, name)) for r in regions]
            return torch.tensor(values, device=self._device, dtype=self.dtype).view(-1, 1, 1, 1)

        alpha = knob("strength")
        feat = t.merge(a4, a5, knob("w_low"), knob("w_high"))
        feat = alpha * feat + (1.0 - alpha) * cs.c4
        out = self.model.decoder(feat)
        h, w = cs.size
        return out[:, :, :h, :w].float().clamp_(0.0, 1.0)
