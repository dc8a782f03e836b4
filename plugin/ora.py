"""OpenRaster (``.ora``) writer and reader: the layered file both GIMP and Krita open.

Why OpenRaster: the command-line host has no editor to put layers into, but the
artist should still get *editable* layers, not a flattened picture. ORA is a
plain zip (``mimetype`` first and stored, ``stack.xml``, one PNG per layer,
``mergedimage.png``, ``Thumbnails/thumbnail.png``) that GIMP and Krita both
import, so ``layers.ora`` carries the layer contract of DESIGN.md §3 out of the
terminal. ORA has no layer masks, so the portrait layer is written already cut
by the person mask and the mask itself travels as a hidden layer the artist can
turn back into a mask. The container pieces here (``stack_xml``,
``write_container``) are what ``plugin/outputs.py`` streams the big files with;
``write_ora`` builds small files from pixels in memory.

The reader is strict about the container rules (it exists to check files we
write) and lenient about extra attributes and members.
"""

from __future__ import annotations

import io
import math
import os
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from .imageio import FAST_PNG_LEVEL, encode_png, write_atomic

__all__ = ["ORA_MIMETYPE", "OraError", "OraLayer", "OraStack", "OraDocument", "write_ora",
           "read_ora", "flatten", "stack_xml", "write_container", "assign_sources"]

ORA_MIMETYPE = "image/openraster"
#: the spec version whose rules we follow (mergedimage.png is mandatory since 0.0.5)
ORA_VERSION = "0.0.5"
THUMBNAIL_MAX = 256


class OraError(Exception):
    """An OpenRaster file breaks the container rules (reader) or cannot be built."""


@dataclass
class OraLayer:
    """One raster layer. ``pixels`` is H×W×4 RGBA uint8 (L and RGB are widened).

    ``pixels`` is None only for a layer whose PNG member a streaming writer
    (``plugin/outputs.py``) encodes itself; the reader always fills it.
    """

    name: str
    pixels: np.ndarray | None
    x: int = 0
    y: int = 0
    opacity: float = 1.0
    visible: bool = True
    src: str = ""  # member path; filled in by the writer / reader


@dataclass
class OraStack:
    """A group of layers; ``children`` are listed top first, as in stack.xml."""

    name: str
    children: list[OraLayer | OraStack] = field(default_factory=list)
    opacity: float = 1.0
    visible: bool = True


@dataclass
class OraDocument:
    """What ``read_ora`` found: the canvas, the layer tree and the container facts."""

    width: int
    height: int
    version: str
    root: OraStack
    members: list[str]
    mimetype_first: bool
    mimetype_stored: bool
    merged: np.ndarray
    thumbnail: np.ndarray

    def layers(self) -> list[OraLayer]:
        """Every raster layer, depth first, top first."""
        out: list[OraLayer] = []

        def walk(stack: OraStack) -> None:
            for child in stack.children:
                if isinstance(child, OraStack):
                    walk(child)
                else:
                    out.append(child)

        walk(self.root)
        return out

    def find(self, name: str) -> OraLayer | OraStack:
        """The first node (layer or stack) called ``name``."""
        todo: list[OraLayer | OraStack] = [self.root]
        while todo:
            node = todo.pop(0)
            if node.name == name:
                return node
            if isinstance(node, OraStack):
                todo[:0] = node.children
        raise KeyError(name)


def _rgba(pixels: np.ndarray) -> np.ndarray:
    """Widen L / RGB / RGBA uint8 pixels to RGBA (grey masks keep full opacity)."""
    if pixels.dtype != np.uint8:
        raise OraError(f"layer pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        grey = np.repeat(pixels[..., None], 3, axis=2)
        return np.concatenate([grey, np.full_like(pixels[..., None], 255)], axis=2)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.concatenate(
            [pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return pixels
    raise OraError(f"layer pixels must be H×W, H×W×3 or H×W×4, got {pixels.shape}")


def flatten(nodes: list[OraLayer | OraStack], width: int, height: int) -> np.ndarray:
    """Composite visible nodes (top first) with src-over into an H×W×4 RGBA image.

    This is what ``mergedimage.png`` must show: the picture an ORA reader that
    ignores layers displays. Stacks are isolated groups (composited on their own,
    then placed with their opacity), matching how GIMP and Krita show our group.
    """
    canvas = _flatten_premultiplied(nodes, width, height)
    alpha = canvas[..., 3:4]
    rgb = np.divide(canvas[..., :3], alpha, out=np.zeros_like(canvas[..., :3]),
                    where=alpha > 1e-6)
    out = np.concatenate([rgb, alpha], axis=2)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _flatten_premultiplied(nodes: list[OraLayer | OraStack], width: int,
                           height: int) -> np.ndarray:
    canvas = np.zeros((height, width, 4), np.float32)
    for node in reversed(nodes):  # bottom first
        if not node.visible or node.opacity <= 0:
            continue
        if isinstance(node, OraStack):
            src = _flatten_premultiplied(node.children, width, height) * node.opacity
            _over(canvas, src, 0, 0)
            continue
        px = _rgba(node.pixels).astype(np.float32) / 255.0
        px[..., :3] *= px[..., 3:4]
        _over(canvas, px * node.opacity, node.x, node.y)
    return canvas


def _over(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Premultiplied src-over of ``src`` placed at (x, y), clipped to ``dst``."""
    h, w = dst.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + src.shape[1], w), min(y + src.shape[0], h)
    if x0 >= x1 or y0 >= y1:
        return
    s = src[y0 - y:y1 - y, x0 - x:x1 - x]
    d = dst[y0:y1, x0:x1]
    d *= 1.0 - s[..., 3:4]
    d += s


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.1f}"


def stack_xml(nodes: list[OraLayer | OraStack], width: int, height: int,
              dpi: float | None = None) -> bytes:
    """``stack.xml`` for ``nodes`` (top first) on a ``width``×``height`` canvas.

    ``dpi`` becomes the image's ``xres``/``yres`` (pixels per inch, as the spec
    has them), so the editors open the file at the photo's print size.
    """
    attrs = {"version": ORA_VERSION, "w": str(width), "h": str(height)}
    if dpi:
        attrs["xres"] = attrs["yres"] = str(round(dpi))
    image = ET.Element("image", attrs)
    root = ET.SubElement(image, "stack")

    def add(parent: ET.Element, node: OraLayer | OraStack) -> None:
        common = {"name": node.name, "opacity": _fmt(node.opacity),
                  "visibility": "visible" if node.visible else "hidden",
                  "composite-op": "svg:src-over"}
        if isinstance(node, OraStack):
            elem = ET.SubElement(parent, "stack", {**common, "isolation": "isolate"})
            for child in node.children:
                add(elem, child)
        else:
            ET.SubElement(parent, "layer", {**common, "src": node.src, "x": str(node.x),
                                            "y": str(node.y)})

    for node in nodes:
        add(root, node)
    ET.indent(image)
    return ET.tostring(image, encoding="utf-8", xml_declaration=True)


def assign_sources(nodes: list[OraLayer | OraStack]) -> list[OraLayer]:
    """Give every layer a unique ``data/NNN-name.png`` member path; return them all."""
    layers: list[OraLayer] = []

    def walk(items: list[OraLayer | OraStack]) -> None:
        for node in items:
            if isinstance(node, OraStack):
                walk(node.children)
            else:
                layers.append(node)

    walk(nodes)
    for i, layer in enumerate(layers):
        slug = "".join(c if c.isascii() and c.isalnum() else "_" for c in layer.name.lower())
        layer.src = f"data/{i:03d}-{slug.strip('_')[:40] or 'layer'}.png"
    return layers


def _png(arr: np.ndarray) -> bytes:
    # members are stored, not deflated again: the PNG's own fast level is all there is
    return encode_png(arr, compress_level=FAST_PNG_LEVEL)


def write_container(fh: BinaryIO, xml: bytes,
                    members: Iterable[tuple[str, bytes | Path]]) -> None:
    """Write the ORA zip to ``fh``: ``mimetype`` first and stored, ``stack.xml``, members.

    Each member is PNG bytes or the path of a PNG file already written, which is
    streamed into the zip (stored: PNGs are deflated already), so a writer never
    has to hold a big layer's encoding in memory nor encode it twice.
    """
    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        # the spec: first member, named "mimetype", stored (not compressed), so
        # tools can identify the file from a fixed offset
        zf.writestr(zipfile.ZipInfo("mimetype"), ORA_MIMETYPE.encode("ascii"),
                    compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
        for name, source in members:
            if isinstance(source, Path):
                zf.write(source, name, compress_type=zipfile.ZIP_STORED)
            else:
                zf.writestr(name, source, compress_type=zipfile.ZIP_STORED)


def ora_bytes(nodes: list[OraLayer | OraStack], width: int, height: int) -> bytes:
    """Build a complete ORA file in memory (see ``write_ora``)."""
    if width <= 0 or height <= 0:
        raise OraError(f"canvas must be non-empty, got {width}×{height}")
    layers = assign_sources(nodes)
    merged = flatten(nodes, width, height)
    thumb = Image.fromarray(merged, "RGBA")
    thumb.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.LANCZOS)
    members: list[tuple[str, bytes | Path]] = [
        (layer.src, _png(_rgba(layer.pixels))) for layer in layers if layer.pixels is not None]
    members += [("Thumbnails/thumbnail.png", _png(np.asarray(thumb))),
                ("mergedimage.png", _png(merged))]
    buf = io.BytesIO()
    write_container(buf, stack_xml(nodes, width, height), members)
    return buf.getvalue()


def write_ora(path: str | os.PathLike[str], nodes: list[OraLayer | OraStack], width: int,
              height: int) -> Path:
    """Write an OpenRaster file whose root stack holds ``nodes`` (top first)."""
    return write_atomic(path, ora_bytes(nodes, width, height))


def _float(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except ValueError as exc:
        raise OraError(f"bad number {value!r} in stack.xml") from exc
    if not math.isfinite(out):
        raise OraError(f"bad number {value!r} in stack.xml")
    return out


def _decode(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    try:
        data = zf.read(member)
    except KeyError as exc:
        raise OraError(f"missing member {member!r}") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise OraError(f"member {member!r} is {img.format}, not PNG")
            return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    except OSError as exc:
        raise OraError(f"member {member!r} is not a readable PNG: {exc}") from exc


def read_ora(path: str | os.PathLike[str], *, strict: bool = True) -> OraDocument:
    """Read an ORA file, checking the container rules; raise ``OraError`` if broken.

    ``strict=False`` accepts a ``mimetype`` member that is not first or is
    compressed (files from sloppy writers) and only reports it in the result.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise OraError(f"{str(path)!r} is not a zip file: {exc}") from exc
    with zf:
        infos = zf.infolist()
        if not infos:
            raise OraError("empty archive")
        first = infos[0]
        mimetype_first = first.filename == "mimetype"
        mimetype_stored = mimetype_first and first.compress_type == zipfile.ZIP_STORED
        if "mimetype" not in zf.namelist():
            raise OraError("no 'mimetype' member")
        if strict and not mimetype_first:
            raise OraError(f"the first member is {first.filename!r}, not 'mimetype'")
        if strict and not mimetype_stored:
            raise OraError("the 'mimetype' member is compressed; it must be stored")
        if zf.read("mimetype") != ORA_MIMETYPE.encode("ascii"):
            raise OraError(f"mimetype is not {ORA_MIMETYPE!r}")
        try:
            image = ET.fromstring(zf.read("stack.xml"))
        except KeyError as exc:
            raise OraError("no 'stack.xml' member") from exc
        except ET.ParseError as exc:
            raise OraError(f"stack.xml is not valid XML: {exc}") from exc
        if image.tag != "image":
            raise OraError(f"stack.xml root is <{image.tag}>, not <image>")
        try:
            width, height = int(image.attrib["w"]), int(image.attrib["h"])
        except (KeyError, ValueError) as exc:
            raise OraError("<image> needs integer w and h") from exc
        stacks = [child for child in image if child.tag == "stack"]
        if len(stacks) != 1:
            raise OraError(f"<image> must hold exactly one root <stack>, found {len(stacks)}")

        def parse(elem: ET.Element) -> OraLayer | OraStack:
            name = elem.get("name", "")
            opacity = _float(elem.get("opacity"), 1.0)
            visible = elem.get("visibility", "visible") != "hidden"
            if elem.tag == "stack":
                kids = [parse(c) for c in elem if c.tag in {"stack", "layer"}]
                return OraStack(name, kids, opacity=opacity, visible=visible)
            src = elem.get("src")
            if not src:
                raise OraError(f"layer {name!r} has no src")
            return OraLayer(name, _decode(zf, src), int(_float(elem.get("x"), 0)),
                            int(_float(elem.get("y"), 0)), opacity=opacity, visible=visible,
                            src=src)

        root = parse(stacks[0])
        assert isinstance(root, OraStack)
        merged = _decode(zf, "mergedimage.png")
        thumbnail = _decode(zf, "Thumbnails/thumbnail.png")
        return OraDocument(width, height, image.get("version", ""), root,
                           [i.filename for i in infos], mimetype_first, mimetype_stored,
                           merged, thumbnail)
