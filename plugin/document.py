"""What an editor implements so the core can run in it: the ``Document`` interface.

Why an interface: GIMP and Krita differ in every API detail (Gegl buffers vs.
``pixelData``, layer masks vs. transparency masks, parasites vs. annotations),
but the plug-in needs the same dozen operations from both. Each host implements
them once, over its own objects; the core, the job and the contract checks
(``plugin/contract.py``) speak only this interface. A ``ref`` is whatever the
host uses to name a layer or group (a ``Gimp.Layer``, a Krita ``Node``…).

Rules every implementation keeps (the contract checks test them):
- the source layer is never modified;
- ``add_result_group`` and ``replace_layer`` are each ONE undo step;
- the Portrait layer carries the person mask as its layer/transparency mask and
  is not cut by it, so painting the mask white brings the portrait back;
- results have the source's size, offset and alpha;
- the job record is stored with the group and survives saving and reopening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..protocol.messages import Pixels
from .core import LayerPlan, SourceLayer

__all__ = ["Document", "LayerInfo"]


@dataclass(frozen=True)
class LayerInfo:
    """A layer as the host describes it, before any pixels are read.

    bounds: (x, y, width, height) on the canvas. color_model: "RGB", "GRAY",
    "INDEXED", "CMYK", "LAB"…; bit_depth: bits per channel (8, 16, 32);
    is_float: floating-point samples. ``result_group``: the layer is a
    portrait-style result group (or inside one).
    """

    ref: Any
    name: str
    bounds: tuple[int, int, int, int]
    color_model: str = "RGB"
    bit_depth: int = 8
    is_float: bool = False
    is_group: bool = False
    layer_id: str = ""


@runtime_checkable
class Document(Protocol):
    """The operations both editors provide (see the module docstring for the rules)."""

    def active_layers(self) -> list[LayerInfo]:
        """The selected layers (the active one first), with bounds and format."""
        ...

    def read_layer(self, ref: Any) -> SourceLayer:
        """The layer's pixels as 8-bit RGB(A), converted on a copy when needed."""
        ...

    def add_result_group(self, plan: LayerPlan, above: Any) -> Any:
        """Create the plan's group directly above ``above`` in one undo step; its ref."""
        ...

    def result_group_of(self, ref: Any) -> Any | None:
        """The result group ``ref`` is, or lies in; None for any other layer."""
        ...

    def result_layers(self, group: Any) -> dict[str, Any]:
        """The group's layers by contract name ("Portrait", "Background")."""
        ...

    def read_record(self, group: Any) -> str | None:
        """The job record (JSON text) stored with the group, or None."""
        ...

    def read_mask(self, group: Any) -> Pixels | None:
        """The Portrait layer's mask, one channel, the layer's size (None: no mask)."""
        ...

    def write_mask(self, group: Any, mask: Pixels) -> None:
        """Replace the Portrait layer's mask (one undo step)."""
        ...

    def replace_layer(self, group: Any, name: str, pixels: Pixels, record: str) -> None:
        """Replace one layer's pixels (its mask kept) and the record, in one undo step."""
        ...

    def find_layer(self, layer_id: str) -> Any | None:
        """The layer with this host id, if it still exists."""
        ...

    def layer_above(self, ref: Any) -> Any | None:
        """The layer or group directly above ``ref`` in its parent (None at the top).

        The core uses it to put a new result above earlier results of the same
        photo, so the new one is never hidden under an old one.
        """
        ...
