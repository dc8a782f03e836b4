"""``KritaDocument``: the core's ``Document`` interface over a Krita document.

Why these choices (each verified in Krita 5.2.9, see tests/test_krita.py):
- Pixels: ``Node.pixelData`` hands out B,G,R,A for RGBA documents (16-bit
  ones as little-endian B,G,R,A words); the core speaks R,G,B,A bytes, so we
  swap on the way in and out. Other colour models and float depths (grey,
  CMYK, Lab, 16/32-bit float) are read through a copy converted to 8-bit
  sRGB by Krita's colour management, and their results are 8-bit sRGB RGB
  layers (Krita mixes colour spaces in one document). Any conversion happens
  in a private scratch document: a colour-space change on a node of the
  artist's document is an undo step of its own, even before the node is in
  the image. The source is only read.
- A result group is built completely while detached (group, Background,
  Portrait with its transparency mask, pixels written; assembled with
  ``setChildNodes``, which records no undo step) and then inserted above the
  source with one ``addChildNode`` — Krita's one undoable command here — so
  Ctrl+Z removes the whole result and the artist never sees half of it.
- Once inserted, the image is re-rendered (``refreshProjection``). Why:
  inserting a group marks only the group dirty, and Krita then shows the
  group's own cached rendering, which for a group assembled while detached
  is empty — the canvas, the group's thumbnail and the merged image of a
  saved ``.kra`` kept showing the photo (Krita 5.1–5.3). Nothing else in the
  scripting API marks the group's layers dirty without an extra undo step.
  It runs on the GUI thread: a few ms for a small photo, about half a
  second for a 4000×3000 one (bench/results/krita-visible.md); rendering
  the group alone in a private document first costs as much there, and
  creating that document in Krita's GUI costs a second more.
  A re-run needs none of this: the new layer is inserted into the group,
  which makes Krita render the group again.
- Pixels written into a layer already in the image are shown by re-setting
  its blending mode, which makes Krita schedule an update of that layer
  only, in the background.
- The job record lives in a document annotation named
  ``portrait-style-job/<group uniqueId>``: annotations and node ids both
  survive ``.kra`` save and reopen, and nothing is visible in the layer panel.
- The Portrait layer is the whole frame; the person mask is a transparency
  mask under it, so painting the mask white brings the portrait back. Krita
  5.2 makes it with ``Document.createTransparencyMask``; 5.1 lacks that call
  and gets a copy of a mask loaded from a template file (``masks51.py``).

Everything here runs on Krita's GUI thread (Krita's API is not thread-safe).
"""

from __future__ import annotations

from typing import Any

from krita import Krita, Selection  # type: ignore[import-not-found]

from ._core.plugin.core import (
    BACKGROUND_LAYER,
    PORTRAIT_LAYER,
    LayerPlan,
    OptionError,
    SourceLayer,
)
from ._core.plugin.document import LayerInfo
from ._core.plugin.pixels import from_u16, swap_red_blue, to_u16
from ._core.plugin.record import RECORD_NAME, JobRecord
from ._core.protocol.messages import Pixels
from .qt import qbytes

__all__ = ["KritaDocument", "MASK_NAME", "supports_transparency_masks", "annotation_key"]

#: the transparency mask's name in the layer panel
MASK_NAME = "Person mask"
_MODELS = {"RGBA": "RGB", "GRAYA": "GRAY", "CMYKA": "CMYK", "LABA": "LAB", "XYZA": "XYZ",
           "YCbCrA": "YCBCR"}
_DEPTHS = {"U8": (8, False), "U16": (16, False), "F16": (16, True), "F32": (32, True)}
#: layers whose rendered pixels can be stylized (paint layers: their own pixels)
_PIXEL_LAYERS = {"paintlayer", "filelayer", "vectorlayer", "filllayer", "clonelayer"}
#: (model, depth) read and written as they are; anything else goes through 8-bit sRGB
_NATIVE = {("RGBA", "U8"), ("RGBA", "U16")}
#: Krita's built-in sRGB profile (what a new RGBA/U8 document gets)
_SRGB = "sRGB-elle-V2-srgbtrc.icc"


def supports_transparency_masks() -> bool:
    """Krita 5.2 added ``Document.createTransparencyMask``; 5.1 cannot fill a mask."""
    from krita import Document  # type: ignore[import-not-found]

    return hasattr(Document, "createTransparencyMask")


def annotation_key(group: Any) -> str:
    """The annotation that holds ``group``'s job record."""
    return f"{RECORD_NAME}/{group.uniqueId().toString()}"


def _rect(node: Any) -> tuple[int, int, int, int]:
    r = node.bounds()
    return (r.x(), r.y(), r.width(), r.height())


def _touch(node: Any) -> None:
    """Make Krita re-render ``node`` in the background after a direct pixel write."""
    if node is not None:
        node.setBlendingMode(node.blendingMode())


def _scratch_document(like: Any, space: tuple[str, str, str]) -> Any:
    """A private document the size of ``like`` in ``space`` (model, depth, profile).

    Not shown in any window, and closed by the caller: what happens in it
    (colour conversions, which Krita records as undo steps) never reaches
    the artist's document.
    """
    model, depth, profile = space
    doc = Krita.instance().createDocument(like.width(), like.height(), "portrait-style scratch",
                                          model, depth, profile, like.resolution())
    doc.setBatchmode(True)
    return doc


def _walk(node: Any):
    for child in node.childNodes():
        yield child
        yield from _walk(child)


class KritaDocument:
    """One Krita ``Document`` seen through the core's interface.

    ``view_nodes``: the layers selected in the layer panel (from the active
    view), when the caller knows them; otherwise the document's active node.
    """

    def __init__(self, document: Any, view_nodes: list[Any] | None = None) -> None:
        self.doc = document
        self._view_nodes = view_nodes

    # ------------------------------------------------------------------ reading

    def info(self, node: Any) -> LayerInfo:
        depth, is_float = _DEPTHS.get(node.colorDepth(), (0, False))
        return LayerInfo(ref=node, name=node.name(), bounds=_rect(node),
                         color_model=_MODELS.get(node.colorModel(), node.colorModel()),
                         bit_depth=depth, is_float=is_float,
                         is_group=node.type() == "grouplayer",
                         layer_id=node.uniqueId().toString())

    def active_layers(self) -> list[LayerInfo]:
        active = self.doc.activeNode()
        nodes = list(self._view_nodes or [])
        if active is None and not nodes:
            # no view (a script, kritarunner): Krita has no active layer then, so the
            # topmost layer that is not a result group stands in for it
            tops = [n for n in reversed(self.doc.topLevelNodes())
                    if self.result_group_of(n) is None]
            nodes = tops[:1]
        if active is not None and not any(n.uniqueId() == active.uniqueId() for n in nodes):
            nodes.insert(0, active)
        elif active is not None:  # the active one first, as the interface promises
            nodes.sort(key=lambda n: n.uniqueId() != active.uniqueId())
        return [self.info(n) for n in nodes]

    def check_source(self, node: Any) -> None:
        """Refuse, in the artist's words, a layer that cannot be stylized."""
        kind = node.type()
        if kind == "grouplayer":
            raise OptionError(f"{node.name()!r} is a group: select a paint layer inside it")
        if kind not in _PIXEL_LAYERS:
            raise OptionError(f"{node.name()!r} is a {kind.replace('mask', ' mask')}: "
                              "select the layer it belongs to")
        x, y, w, h = _rect(node)
        if w <= 0 or h <= 0:
            raise OptionError(f"{node.name()!r} is empty: paint or paste the photo into it first")

    def read_layer(self, ref: Any) -> SourceLayer:
        self.check_source(ref)
        x, y, w, h = _rect(ref)
        # a paint layer's own pixels; other layers (vector, file, clone…) as rendered
        read = ref.pixelData if ref.type() == "paintlayer" else ref.projectionPixelData
        notes: list[str] = []
        if (ref.colorModel(), ref.colorDepth()) not in _NATIVE:
            notes.append(f"this {ref.colorModel()}/{ref.colorDepth()} layer was read as 8-bit "
                         "sRGB, and the result layers are 8-bit sRGB RGB layers")
            raw = self._read_as_srgb8(ref, x, y, w, h)
            return SourceLayer(name=ref.name(), pixels=swap_red_blue(
                Pixels.from_buffer(raw, (h, w, 4))), offset=(x, y),
                layer_id=ref.uniqueId().toString(), notes=notes)
        raw = bytes(read(x, y, w, h))
        if ref.colorDepth() == "U16":
            bgra = from_u16(raw, w, h, 4)
            notes.append("this 16-bit layer was sent to the daemon as 8-bit (the wire carries "
                         "8 bits per channel): the result layers are 16-bit with 8-bit detail")
        else:
            bgra = Pixels.from_buffer(raw, (h, w, 4))
        return SourceLayer(name=ref.name(), pixels=swap_red_blue(bgra), offset=(x, y),
                           layer_id=ref.uniqueId().toString(), notes=notes)

    # ------------------------------------------------------------------ groups

    def result_group_of(self, ref: Any) -> Any | None:
        node = ref
        while node is not None:
            if node.type() == "grouplayer" and self._has_record(node):
                return node
            node = node.parentNode()
        return None

    def _has_record(self, node: Any) -> bool:
        return annotation_key(node) in (self.doc.annotationTypes() or [])

    def result_layers(self, group: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for child in group.childNodes():
            if child.type() == "paintlayer" and child.name() in (PORTRAIT_LAYER,
                                                                 BACKGROUND_LAYER):
                out.setdefault(child.name(), child)
        return out

    def read_record(self, group: Any) -> str | None:
        if not self._has_record(group):
            return None
        data = bytes(self.doc.annotation(annotation_key(group)))
        return data.decode("utf-8") if data else None

    def write_record(self, group: Any, record: str) -> None:
        self.doc.setAnnotation(annotation_key(group), "Portrait Style job record",
                               qbytes(record.encode("utf-8")))

    def portrait_mask_node(self, group: Any) -> Any | None:
        portrait = self.result_layers(group).get(PORTRAIT_LAYER)
        if portrait is None:
            return None
        for child in portrait.childNodes():
            if child.type() == "transparencymask":
                return child
        return None

    def frame(self, group: Any) -> tuple[int, int, int, int]:
        """The rectangle a re-run reads and writes: the source layer's current bounds.

        A re-run sends the source as it is now, so mask and results must
        cover exactly that; without the source (deleted), the Portrait
        layer's extent is the best guess.
        """
        source = self.find_layer_of(group)
        if source is not None and _rect(source)[2] > 0:
            return _rect(source)
        layers = self.result_layers(group)
        node = layers.get(PORTRAIT_LAYER) or layers.get(BACKGROUND_LAYER) or group
        return _rect(node)

    def read_mask(self, group: Any) -> Pixels | None:
        mask = self.portrait_mask_node(group)
        if mask is None:
            return None
        x, y, w, h = self.frame(group)
        return Pixels.from_buffer(bytes(mask.pixelData(x, y, w, h)), (h, w, 1))

    def write_mask(self, group: Any, mask: Pixels) -> None:
        node = self.portrait_mask_node(group)
        if node is None:
            portrait = self.result_layers(group).get(PORTRAIT_LAYER)
            if portrait is None:
                raise OptionError("this result group has no Portrait layer to put a mask on")
            node = self._new_mask()
            portrait.addChildNode(node, None)
        x, y, w, h = self.frame(group)
        if (mask.width, mask.height) != (w, h) or mask.channels != 1:
            raise OptionError(f"the mask is {mask.width}×{mask.height}, the layer {w}×{h}")
        node.setPixelData(qbytes(mask.tobytes()), x, y, w, h)
        _touch(node.parentNode())

    def _new_mask(self) -> Any:
        if supports_transparency_masks():
            return self.doc.createTransparencyMask(MASK_NAME)
        from .masks51 import new_mask  # Krita 5.1: a copy of a mask loaded from a file

        try:
            return new_mask(MASK_NAME)
        except Exception as exc:
            raise OptionError(
                f"Krita {Krita.instance().version()} cannot make a transparency mask from a "
                f"script ({exc}); Krita 5.2 can: update Krita to get the person mask") from exc

    # ------------------------------------------------------------------ writing

    def _encode(self, pixels: Pixels, like: Any) -> bytes:
        """Core RGBA bytes → what ``setPixelData`` wants for a layer like ``like``."""
        bgra = swap_red_blue(pixels)
        return to_u16(bgra) if like.colorDepth() == "U16" else bgra.tobytes()

    def _read_as_srgb8(self, ref: Any, x: int, y: int, w: int, h: int) -> bytes:
        """``ref``'s pixels as 8-bit sRGB B,G,R,A, converted on a copy in a scratch document."""
        scratch = _scratch_document(self.doc, ("RGBA", "U8", _SRGB))
        try:
            copy = ref.duplicate()
            scratch.rootNode().addChildNode(copy, None)
            if not copy.setColorSpace("RGBA", "U8", _SRGB):
                raise OptionError(f"Krita could not convert {ref.name()!r} "
                                  f"({ref.colorModel()}/{ref.colorDepth()}) to RGB to read it")
            scratch.waitForDone()
            read = copy.pixelData if copy.type() == "paintlayer" else copy.projectionPixelData
            return bytes(read(x, y, w, h))
        finally:
            scratch.close()

    def _paint_layer(self, name: str, pixels: Pixels, source: Any,
                     rect: tuple[int, int, int, int]) -> Any:
        """A new, detached paint layer holding ``pixels`` in the space results get for ``source``.

        That space is the source's own (RGBA 8/16-bit) or 8-bit sRGB. When the
        document is in another space, the layer is made in a scratch document
        of that space and duplicated: converting a node of the artist's
        document would be an extra step in their undo history.
        """
        if (source.colorModel(), source.colorDepth()) in _NATIVE:
            space = (source.colorModel(), source.colorDepth(), source.colorProfile())
        else:
            space = ("RGBA", "U8", _SRGB)
        x, y, w, h = rect
        if (self.doc.colorModel(), self.doc.colorDepth(), self.doc.colorProfile()) == space:
            node = self.doc.createNode(name, "paintlayer")
            node.setPixelData(qbytes(self._encode(pixels, node)), x, y, w, h)
            return node
        scratch = _scratch_document(self.doc, space)
        try:
            node = scratch.createNode(name, "paintlayer")
            scratch.rootNode().addChildNode(node, None)
            node.setPixelData(qbytes(self._encode(pixels, node)), x, y, w, h)
            scratch.waitForDone()
            return node.duplicate()
        finally:
            scratch.close()

    def add_result_group(self, plan: LayerPlan, above: Any) -> Any:
        x, y = plan.offset
        w, h = plan.size
        rect = (x, y, w, h)
        group = self.doc.createGroupLayer(plan.group_name)
        children = []
        for planned in reversed(plan.layers):  # setChildNodes takes them bottom first
            node = self._paint_layer(planned.name, planned.pixels, above, rect)
            if planned.mask is not None:
                mask = self._new_mask()
                mask.setPixelData(qbytes(planned.mask.tobytes()), x, y, w, h)
                node.setChildNodes([mask])
            node.setOpacity(round(planned.opacity * 255))
            node.setVisible(planned.visible)
            children.append(node)
        group.setChildNodes(children)
        if plan.record is not None:
            self.write_record(group, plan.record.to_json())
        parent = above.parentNode() or self.doc.rootNode()
        parent.addChildNode(group, above)  # the one undo step
        self.doc.refreshProjection()  # render the new group's layers (see the module's docstring)
        return group

    def replace_layer(self, group: Any, name: str, pixels: Pixels, record: str) -> None:
        """Swap in a new layer with ``pixels``, carrying over the old one's masks.

        A new node rather than new pixels in the old one, because Krita's
        scripting API keeps no undo history for pixel writes: inserting the new
        layer and removing the old are commands, so Ctrl+Z (twice: Krita has
        no macro for scripts; three times if the artist changed the layer's
        blend mode, which is carried over) brings the previous result back.
        """
        old = self.result_layers(group).get(name)
        x, y, w, h = self.frame(group)
        if (pixels.width, pixels.height) != (w, h):
            raise OptionError(f"the re-run result is {pixels.width}×{pixels.height}, "
                              f"the group's layers {w}×{h}")
        like = self.find_layer_of(group) or old or group
        new = self._paint_layer(name, pixels, like, (x, y, w, h))
        if old is None:  # the artist deleted it: make it again (Portrait above Background)
            below = self.result_layers(group).get(BACKGROUND_LAYER) \
                if name == PORTRAIT_LAYER else None
            group.addChildNode(new, below)
        else:
            # the artist's mask (and any filter masks they added) come along as copies
            new.setChildNodes([child.duplicate() for child in old.childNodes()])
            new.setOpacity(old.opacity())
            new.setVisible(old.visible())
            if new.blendingMode() != old.blendingMode():
                # Krita records a blend-mode change as an undo step of its own (even on
                # a node not yet in the image): only when the artist changed it
                new.setBlendingMode(old.blendingMode())
            new.setAlphaLocked(old.alphaLocked())
            group.addChildNode(new, old)
            old.remove()
        self.write_record(group, record)

    def find_layer_of(self, group: Any) -> Any | None:
        """The layer ``group`` was made from (by the id in its record), if it still exists."""
        try:
            return self.find_layer(JobRecord.from_json(self.read_record(group)).source_id)
        except Exception:
            return None

    def find_layer(self, layer_id: str) -> Any | None:
        if not layer_id:
            return None
        for node in _walk(self.doc.rootNode()):
            if node.uniqueId().toString() == layer_id:
                return node
        return None

    def layer_above(self, ref: Any) -> Any | None:
        parent = ref.parentNode() or self.doc.rootNode()
        siblings = parent.childNodes()  # Krita lists the bottom node first
        ids = [node.uniqueId() for node in siblings]
        position = ids.index(ref.uniqueId())
        return siblings[position + 1] if position + 1 < len(siblings) else None

    # ------------------------------------------------------------ selections

    def mask_from_selection(self, group: Any) -> None:
        """The document's selection becomes the Portrait layer's mask."""
        selection = self.doc.selection()
        if selection is None:
            raise OptionError("there is no selection: select the person first "
                              "(e.g. with the freehand or magic selection tool)")
        x, y, w, h = self.frame(group)
        data = bytes(selection.pixelData(x, y, w, h))
        self.write_mask(group, Pixels.from_buffer(data, (h, w, 1)))

    def selection_from_mask(self, group: Any) -> None:
        """The Portrait layer's mask becomes the document's selection."""
        mask = self.read_mask(group)
        if mask is None:
            raise OptionError("this result group's Portrait layer has no mask")
        x, y, w, h = self.frame(group)
        selection = Selection()
        selection.resize(self.doc.width(), self.doc.height())
        selection.setPixelData(qbytes(mask.tobytes()), x, y, w, h)
        self.doc.setSelection(selection)
