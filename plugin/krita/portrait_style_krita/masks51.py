"""Transparency masks for Krita 5.1, whose scripting API cannot make a usable one.

Why this detour: ``Document.createTransparencyMask`` only exists from Krita
5.2; in 5.1 ``createNode(name, "transparencyMask")`` returns a mask without a
selection (pixel writes are lost, and saving the document crashes). A mask
*loaded from a file* is complete, though, and ``Node.duplicate()`` copies it
into any document. So, once per session: let Krita save a tiny document with
one paint layer (that gives a ``.kra`` with the colour profile files Krita
insists on), add an empty transparency mask to that layer in the file's XML
(an empty selection is four header lines), and open it as the template. Each
new mask is a duplicate of the template's. Only the standard library and
Krita's own API; verified by tests/test_krita.py on the host's Krita 5.1.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["new_mask", "template_path"]

_HOLDER = "portrait-style-mask-holder"
_MASK_FILE = "portrait_style_mask"
_EMPTY_SELECTION = b"VERSION 2\nTILEWIDTH 64\nTILEHEIGHT 64\nPIXELSIZE 1\nDATA 0\n"
_template: list[Path] = []  # the template file, made once per Krita session


def _krita() -> Any:
    from krita import Krita  # type: ignore[import-not-found]

    return Krita.instance()


def _add_mask(kra: bytes, out: Path) -> None:
    """Rewrite a saved .kra so the holder layer carries an empty transparency mask."""
    source = zipfile.ZipFile(io.BytesIO(kra))
    maindoc = source.read("maindoc.xml").decode("utf-8")
    # attribute order changes from run to run (Qt keeps them in a hash): parse each tag
    match, layer_file = None, ""
    for tag in re.finditer(r"<layer\s[^>]*/>", maindoc):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(0)))
        if attributes.get("name") == _HOLDER and attributes.get("filename"):
            match, layer_file = tag, attributes["filename"]
            break
    if match is None:
        raise RuntimeError("Krita saved the mask template in an unexpected form")
    folder = next(n.rsplit("/", 1)[0] for n in source.namelist()
                  if n.endswith("/" + layer_file))
    mask = (f'<masks><mask visible="1" nodetype="transparencymask" x="0" y="0" locked="0" '
            f'name="Person mask" filename="{_MASK_FILE}" colorlabel="0" intimeline="0"/>'
            f'</masks></layer>')
    maindoc = maindoc[:match.end() - 2] + ">" + mask + maindoc[match.end():]
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            data = maindoc.encode("utf-8") if name == "maindoc.xml" else source.read(name)
            # "mimetype" must stay first and uncompressed (the OpenDocument rule .kra follows)
            target.writestr(zipfile.ZipInfo(name) if name == "mimetype" else name, data)
        target.writestr(f"{folder}/{_MASK_FILE}.pixelselection", _EMPTY_SELECTION)
        target.writestr(f"{folder}/{_MASK_FILE}.pixelselection.defaultpixel", b"\0")


def template_path() -> Path:
    """The template .kra (made on first use, in a private temporary folder)."""
    if _template and _template[0].is_file():
        return _template[0]
    app = _krita()
    folder = Path(tempfile.mkdtemp(prefix="portrait-style-krita-"))
    plain = folder / "holder.kra"
    doc = app.createDocument(8, 8, "portrait-style mask template", "RGBA", "U8", "", 72.0)
    doc.setBatchmode(True)
    holder = doc.createNode(_HOLDER, "paintlayer")
    doc.rootNode().addChildNode(holder, None)
    saved = doc.saveAs(str(plain))
    doc.close()
    if not saved:
        raise RuntimeError("Krita could not save the mask template")
    path = folder / "mask-template.kra"
    _add_mask(plain.read_bytes(), path)
    _template[:] = [path]
    return path


def new_mask(name: str) -> Any:
    """A fresh, empty, writable transparency mask node (not yet in any layer)."""
    app = _krita()
    template = app.openDocument(str(template_path()))
    if template is None:
        raise RuntimeError("Krita could not open the mask template")
    try:
        template.setBatchmode(True)
        holder = next(n for n in template.topLevelNodes() if n.name() == _HOLDER)
        source = next(c for c in holder.childNodes() if c.type() == "transparencymask")
        mask = source.duplicate()
    finally:
        template.close()
    mask.setName(name)
    return mask
