"""GIMP 3's implementation of the core's ``Document`` interface.

Why this shape: the core (``_core/plugin``) knows the layer contract and the
job; this module only moves pixels between GIMP's Gegl buffers and the core's
8-bit ``Pixels``, and maps the contract's group/layer/mask/record onto GIMP's
group layers, layer masks and parasites.

GIMP facts this relies on (checked in GIMP 3.0.4, see tests/test_gimp.py):
- ``Gegl.Buffer.get/set`` with a babl format name converts to and from any
  layer precision; "R'G'B'A u8" is perceptual sRGB, which is what the wire
  carries, so 16-bit and float layers read and write through the same code.
- A layer mask's values are opacities stored in the mask's own encoding
  (linear "Y u8" even in an 8-bit perceptual image, "Y u16", "Y float"…);
  reading and writing through the 8-bit format with the same transfer curve
  keeps the daemon's mask values unchanged (a "Y' u8" write would bend them).
- Item tattoos persist in .xcf files while item ids do not: the record names
  the source layer by tattoo, so a re-run works after saving and reopening.
- GIMP appends " #1" to duplicate names ("Background #1"): result layers are
  found by a role parasite, never by exact name.
- Normal mode composites in linear light by default; the daemon composites in
  perceptual sRGB, so the group and its layers are set to perceptual RGB.
"""

from __future__ import annotations

import re
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
from gi.repository import Babl, Gegl, Gimp  # noqa: E402

from ._core.plugin.core import (  # noqa: E402
    BACKGROUND_LAYER,
    PORTRAIT_LAYER,
    LayerPlan,
    OptionError,
    SourceLayer,
)
from ._core.plugin.document import LayerInfo  # noqa: E402
from ._core.plugin.record import RECORD_NAME  # noqa: E402
from ._core.protocol.messages import Pixels  # noqa: E402

__all__ = ["GimpDocument", "ROLE_PARASITE", "check_image_mode"]

#: parasite on each result layer naming its contract role ("Portrait"…)
ROLE_PARASITE = "portrait-style-role"
#: saved with the .xcf and undone with the edit that attached it
_PARASITE_FLAGS = Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE
_PERCEPTUAL = Gimp.LayerColorSpace.RGB_PERCEPTUAL
_SUFFIX = re.compile(r" #\d+$")

_PRECISION_BITS = {"U8": 8, "U16": 16, "U32": 32, "HALF": 16, "FLOAT": 32, "DOUBLE": 64}


def _rect(width: int, height: int) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(0, 0, width, height)


def _signed(data: bytes) -> list[int]:
    """Parasite data is a gint8 array in the GObject bindings."""
    return [b - 256 if b > 127 else b for b in data]


def _parasite_text(item: Any, name: str) -> str | None:
    parasite = item.get_parasite(name)
    if parasite is None:
        return None
    return bytes(v & 0xFF for v in parasite.get_data()).decode("utf-8")


def _attach_text(item: Any, name: str, text: str) -> None:
    item.attach_parasite(Gimp.Parasite.new(name, _PARASITE_FLAGS, _signed(text.encode())))


def _mask_format(mask: Any) -> str:
    """The 8-bit format with the mask's own transfer curve (so values pass unchanged)."""
    encoding = Babl.format_get_encoding(mask.get_format())  # "Y' u8", "Y u16", "Y float"…
    model = encoding.split(" ", 1)[0]
    return f"{model} u8" if model in ("Y", "Y'", "Y~") else "Y u8"


def _rgb_format(drawable: Any) -> tuple[str, int]:
    return ("R'G'B'A u8", 4) if drawable.has_alpha() else ("R'G'B' u8", 3)


def _write(drawable: Any, pixels: Pixels, format_name: str) -> None:
    buffer = drawable.get_buffer()
    buffer.set(_rect(pixels.width, pixels.height), format_name, pixels.tobytes())
    buffer.flush()  # the bindings never unref buffers: flush, or GIMP may not see the pixels
    drawable.update(0, 0, pixels.width, pixels.height)


def _read(drawable: Any, format_name: str, channels: int) -> Pixels:
    width, height = drawable.get_width(), drawable.get_height()
    buffer = drawable.get_buffer()
    data = buffer.get(_rect(width, height), 1.0, format_name, Gegl.AbyssPolicy.NONE)
    return Pixels.from_buffer(bytes(data), (height, width, channels))


def check_image_mode(image: Any) -> None:
    """Refuse indexed images in words the artist can act on.

    A palette cannot hold a painting's continuous tones, and converting the
    artist's image behind their back is worse. Greyscale images are served
    (``GREYSCALE_NOTE`` says what they get).
    """
    if image.get_base_type() != Gimp.ImageBaseType.INDEXED:
        return
    raise OptionError("Portrait Style paints in continuous tones, and this image is indexed: "
                      "convert it with Image ▸ Mode ▸ RGB first (or run it on an RGB copy)")


#: what a greyscale image gets: the layers are in the image's own mode
GREYSCALE_NOTE = ("this image is greyscale, so the result layers are grey too; for the "
                  "painting's colours, convert it with Image ▸ Mode ▸ RGB first")


class GimpDocument:
    """One open GIMP image as the core's ``Document`` (refs are ``Gimp.Layer``s)."""

    def __init__(self, image: Any, drawables: list[Any] | None = None) -> None:
        self.image = image
        self._selected = list(drawables) if drawables else list(image.get_selected_layers())

    # ------------------------------------------------------------ reading

    def _info(self, layer: Any) -> LayerInfo:
        _, x, y = layer.get_offsets()
        precision = self.image.get_precision().value_nick.upper()  # e.g. "U16-LINEAR"
        kind = precision.split("-", 1)[0]
        base = self.image.get_base_type()
        model = {Gimp.ImageBaseType.RGB: "RGB", Gimp.ImageBaseType.GRAY: "GRAY"}.get(
            base, "INDEXED")
        return LayerInfo(ref=layer, name=layer.get_name(),
                         bounds=(x, y, layer.get_width(), layer.get_height()),
                         color_model=model, bit_depth=_PRECISION_BITS.get(kind, 8),
                         is_float=kind in ("HALF", "FLOAT", "DOUBLE"),
                         is_group=layer.is_group(), layer_id=str(layer.get_tattoo()))

    def active_layers(self) -> list[LayerInfo]:
        return [self._info(layer) for layer in self._selected
                if isinstance(layer, Gimp.Layer) and not layer.is_layer_mask()]

    def read_layer(self, ref: Any) -> SourceLayer:
        """8-bit perceptual RGB(A) through Gegl, whatever the layer's precision."""
        check_image_mode(self.image)
        format_name, channels = _rgb_format(ref)
        _, x, y = ref.get_offsets()
        notes: list[str] = []
        if self.image.get_base_type() == Gimp.ImageBaseType.GRAY:
            notes.append(GREYSCALE_NOTE)
        if self.image.get_precision() != Gimp.Precision.U8_NON_LINEAR:
            notes.append("the layer was sent to the daemon at 8 bits per channel (the wire's "
                         "depth); the result layers are in the image's precision")
        return SourceLayer(name=ref.get_name(), pixels=_read(ref, format_name, channels),
                           offset=(x, y), layer_id=str(ref.get_tattoo()), notes=notes)

    def find_layer(self, layer_id: str) -> Any | None:
        try:
            tattoo = int(layer_id)
        except ValueError:
            return None
        return self.image.get_layer_by_tattoo(tattoo)

    def layer_above(self, ref: Any) -> Any | None:
        parent = ref.get_parent()
        siblings = parent.get_children() if parent is not None else self.image.get_layers()
        position = self.image.get_item_position(ref)  # GIMP lists the top item first
        return siblings[position - 1] if position > 0 else None

    # ------------------------------------------------------------- groups

    def result_group_of(self, ref: Any) -> Any | None:
        item = ref
        while item is not None:
            if item.is_group() and item.get_parasite(RECORD_NAME) is not None:
                return item
            item = item.get_parent()
        return None

    def result_layers(self, group: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for child in group.get_children():
            role = _parasite_text(child, ROLE_PARASITE)
            if role is None:  # a layer the artist added, or made by another version
                role = _SUFFIX.sub("", child.get_name())
            if role in (PORTRAIT_LAYER, BACKGROUND_LAYER) and role not in found:
                found[role] = child
        return found

    def read_record(self, group: Any) -> str | None:
        return _parasite_text(group, RECORD_NAME)

    def _portrait(self, group: Any) -> Any:
        layer = self.result_layers(group).get(PORTRAIT_LAYER)
        if layer is None:
            raise OptionError("this result group has no Portrait layer any more")
        return layer

    def read_mask(self, group: Any) -> Pixels | None:
        mask = self._portrait(group).get_mask()
        if mask is None:
            return None
        return _read(mask, _mask_format(mask), 1)

    # ------------------------------------------------------------ writing

    def _new_layer(self, group: Any, name: str, pixels: Pixels, position: int) -> Any:
        width, height = pixels.width, pixels.height
        if self.image.get_base_type() == Gimp.ImageBaseType.GRAY:  # Gegl converts on write
            kind = Gimp.ImageType.GRAYA_IMAGE if pixels.channels == 4 \
                else Gimp.ImageType.GRAY_IMAGE
        else:
            kind = Gimp.ImageType.RGBA_IMAGE if pixels.channels == 4 \
                else Gimp.ImageType.RGB_IMAGE
        layer = Gimp.Layer.new(self.image, name, width, height, kind, 100.0,
                               Gimp.LayerMode.NORMAL)
        self.image.insert_layer(layer, group, position)
        layer.set_blend_space(_PERCEPTUAL)
        layer.set_composite_space(_PERCEPTUAL)
        _attach_text(layer, ROLE_PARASITE, name)
        _write(layer, pixels, "R'G'B'A u8" if pixels.channels == 4 else "R'G'B' u8")
        return layer

    def add_result_group(self, plan: LayerPlan, above: Any) -> Any:
        """The group directly above ``above``, visible, in one undo step.

        ``above`` is the core's ``result_anchor``: the source, or the newest earlier
        result of it, so the new group is never hidden under an old one. The
        Portrait layer is not cut by its mask.
        """
        assert plan.record is not None
        image = self.image
        image.undo_group_start()
        try:
            group = Gimp.GroupLayer.new(image, plan.group_name)
            image.insert_layer(group, above.get_parent(), image.get_item_position(above))
            group.set_visible(True)
            group.set_blend_space(_PERCEPTUAL)
            group.set_composite_space(_PERCEPTUAL)
            _attach_text(group, RECORD_NAME, plan.record.to_json())
            x, y = plan.offset
            for position, planned in enumerate(plan.layers):
                layer = self._new_layer(group, planned.name, planned.pixels, position)
                layer.set_offsets(x, y)
                layer.set_opacity(planned.opacity * 100.0)
                layer.set_visible(planned.visible)
                if planned.mask is not None:
                    mask = layer.create_mask(Gimp.AddMaskType.WHITE)
                    layer.add_mask(mask)
                    _write(mask, planned.mask, _mask_format(mask))
        finally:
            image.undo_group_end()
        return group

    def write_mask(self, group: Any, mask: Pixels) -> None:
        """A fresh mask with ``mask``'s values, swapped in as one undo step.

        Removing and adding the mask (rather than writing the pixels in place)
        is what makes the change undoable: a plain buffer write is not.
        """
        layer = self._portrait(group)
        self.image.undo_group_start()
        try:
            if layer.get_mask() is not None:
                layer.remove_mask(Gimp.MaskApplyMode.DISCARD)
            new = layer.create_mask(Gimp.AddMaskType.WHITE)
            layer.add_mask(new)
            _write(new, mask, _mask_format(new))
        finally:
            self.image.undo_group_end()

    def replace_layer(self, group: Any, name: str, pixels: Pixels, record: str) -> None:
        """Swap in a copy of the layer holding ``pixels`` (mask and settings kept), one step.

        A copy, filled before it enters the image, then put where the old one
        was: undoable as a whole, and unaffected by any selection in the image
        (merging a shadow buffer would write only inside the selection).
        """
        old = self.result_layers(group).get(name)
        if old is None:
            raise OptionError(f"this result group has no {name} layer any more")
        image = self.image
        image.undo_group_start()
        try:
            new = old.copy()
            position = image.get_item_position(old)
            image.insert_layer(new, group, position)
            _, x, y = old.get_offsets()
            new.set_offsets(x, y)
            _write(new, pixels, _rgb_format(new)[0])
            old_name = old.get_name()
            image.remove_layer(old)
            new.set_name(old_name)
            _attach_text(group, RECORD_NAME, record)
        finally:
            image.undo_group_end()
