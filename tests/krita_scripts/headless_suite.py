"""Runs inside real Krita (kritarunner): the installed plug-in against a real daemon.

tests/test_krita.py runs ``main`` once and judges each scenario from the JSON
this writes to ``$PORTRAIT_STYLE_RESULT`` (kritarunner exits 0 even when
Python raises, so every scenario catches its own errors and reports them).
Raw pixel dumps go to ``$KRITA_SUITE_OUT`` for the test to compare with what
the daemon returns when called directly.

Environment: ``KRITA_SUITE_PHOTO`` (the portrait), ``KRITA_SUITE_STYLE``
(the painting), ``KRITA_SUITE_SIZE`` (the photo's size in the document),
``KRITA_SUITE_ONLY`` (comma-separated scenario names, default all).
The plug-in's folder is on PYTHONPATH, so ``import portrait_style_krita``
loads the installed copy with its bundled core and wire libraries.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from krita import Krita, Selection  # type: ignore[import-not-found]
from PyQt5.QtCore import QByteArray, QElapsedTimer, Qt, QTimer
from PyQt5.QtGui import QImage

OUT = Path(os.environ.get("KRITA_SUITE_OUT", os.environ.get("HOME", "/tmp")))
PHOTO = os.environ.get("KRITA_SUITE_PHOTO", "")
STYLE = os.environ.get("KRITA_SUITE_STYLE", "")
SIZE = int(os.environ.get("KRITA_SUITE_SIZE", "384"))


def sha(data: bytes) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def rect(node: Any) -> list[int]:
    r = node.bounds()
    return [r.x(), r.y(), r.width(), r.height()]


def tree(node: Any) -> list[dict[str, Any]]:
    return [{"name": c.name(), "type": c.type(), "bounds": rect(c),
             "depth": c.colorDepth(), "children": tree(c)} for c in node.childNodes()]


def photo_bgra(size: int) -> tuple[bytes, int, int]:
    """The portrait scaled to ``size`` px wide, as Krita's B,G,R,A bytes."""
    image = QImage(PHOTO)
    image = image.scaledToWidth(size, Qt.SmoothTransformation)
    image = image.convertToFormat(QImage.Format_ARGB32)  # B,G,R,A in memory (little-endian)
    w, h = image.width(), image.height()
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    raw = bytes(bits)
    stride = image.bytesPerLine()
    return b"".join(raw[y * stride: y * stride + w * 4] for y in range(h)), w, h


def new_doc(w: int, h: int, name: str, depth: str = "U8", model: str = "RGBA") -> Any:
    doc = Krita.instance().createDocument(w, h, name, model, depth, "", 72.0)
    doc.setBatchmode(True)
    return doc


def add_layer(doc: Any, name: str, data: bytes, x: int, y: int, w: int, h: int) -> Any:
    node = doc.createNode(name, "paintlayer")
    doc.rootNode().addChildNode(node, None)
    node.setPixelData(QByteArray(data), x, y, w, h)
    doc.setActiveNode(node)
    doc.refreshProjection()
    return node


def shown(doc: Any) -> bytes:
    """What the artist sees: the document's projection once Krita is idle.

    Never ``refreshProjection()`` here: that would re-render the image and hide
    exactly the bug this reads for (a result that the canvas does not show).
    """
    doc.waitForDone()
    return bytes(doc.pixelData(0, 0, doc.width(), doc.height()))


def composite(portrait: bytes, background: bytes, mask: bytes) -> bytes:
    """Portrait over Background through the mask, as the daemon composes it (B,G,R,A bytes).

    ``b + (p - b) * m / 255`` rounded, alpha from Background; 8-bit inputs of
    one size (mask: one byte per pixel).
    """
    out = bytearray(background)
    for i, m in enumerate(mask):
        if m:
            j = 4 * i
            for k in (j, j + 1, j + 2):
                b = background[k]
                out[k] = b + int((portrait[k] - b) * m / 255 + (0.5 if portrait[k] >= b else -0.5))
    return bytes(out)


def level_diff(a: bytes, b: bytes, where: bytes | None = None) -> float:
    """Mean absolute difference of B,G,R (8-bit) over the pixels where ``where`` is non-zero."""
    total = count = 0
    for c in range(3):
        pairs = zip(a[c::4], b[c::4], where, strict=True) if where is not None else \
            ((x, y, 1) for x, y in zip(a[c::4], b[c::4], strict=True))
        for x, y, w in pairs:
            if w:
                total += abs(x - y)
                count += 1
    return total / count if count else 0.0


def crop(data: bytes, doc_w: int, rect: tuple[int, int, int, int], size: int = 4) -> bytes:
    """The rectangle ``rect`` (x, y, w, h) of a whole-document pixel dump."""
    x, y, w, h = rect
    return b"".join(data[((y + r) * doc_w + x) * size:((y + r) * doc_w + x + w) * size]
                    for r in range(h))


def image_bgra(image: Any) -> bytes:
    """A QImage as packed B,G,R,A rows (what Krita's RGBA/U8 pixel data looks like)."""
    image = image.convertToFormat(QImage.Format_ARGB32)
    w, h = image.width(), image.height()
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    raw = bytes(bits)
    stride = image.bytesPerLine()
    return b"".join(raw[y * stride: y * stride + w * 4] for y in range(h))


def view_of(doc: Any, group: Any, rect: tuple[int, int, int, int], photo: bytes) -> dict[str, Any]:
    """How far what the artist sees is from the result group's own layers, composed.

    ``photo``: the whole document's projection before Apply. Compared on the
    group's rectangle where the Portrait layer is opaque; outside it the
    photo must show unchanged.
    """
    from portrait_style_krita.document import KritaDocument

    kdoc = KritaDocument(doc)
    layers = kdoc.result_layers(group)
    x, y, w, h = rect
    portrait = bytes(layers["Portrait"].pixelData(x, y, w, h))
    background = bytes(layers["Background"].pixelData(x, y, w, h))
    if layers["Portrait"].colorDepth() == "U16":  # the high byte of little-endian words
        portrait, background = portrait[1::2], background[1::2]
    mask = kdoc.read_mask(group).tobytes()
    expected = composite(portrait, background, mask)
    now = shown(doc)
    if doc.colorDepth() == "U16":
        now, photo = now[1::2], photo[1::2]
    seen = crop(now, doc.width(), rect)
    opaque = bytes(a == 255 for a in portrait[3::4])
    return {"diff": level_diff(seen, expected, opaque),
            "vs_photo": level_diff(seen, crop(photo, doc.width(), rect), opaque),
            "outside_same": _outside_same(now, photo, doc.width(), rect)}


def other_view(doc: Any, group: Any, w: int, h: int, photo: bytes) -> dict[str, Any]:
    """``view_of`` for documents in other colour models, through the document's thumbnail.

    Their projection is grey/CMYK/float; ``Document.thumbnail`` at full size is
    that projection converted to 8-bit sRGB by Krita, as the canvas shows it.
    The composite is expected as that colour model can hold it: taken there
    and back by Krita's own conversion (a grey document shows it in grey, a
    CMYK one within the CMYK gamut).
    """
    from portrait_style_krita.document import KritaDocument

    kdoc = KritaDocument(doc)
    layers = kdoc.result_layers(group)
    expected = composite(bytes(layers["Portrait"].pixelData(0, 0, w, h)),
                         bytes(layers["Background"].pixelData(0, 0, w, h)),
                         kdoc.read_mask(group).tobytes())
    expected = through_space(expected, w, h, (doc.colorModel(), doc.colorDepth(),
                                              doc.colorProfile()))
    doc.waitForDone()
    seen = image_bgra(doc.thumbnail(w, h))
    return {"diff": level_diff(seen, expected), "vs_photo": level_diff(seen, photo)}


def through_space(bgra: bytes, w: int, h: int, space: tuple[str, str, str]) -> bytes:
    """8-bit sRGB pixels taken to ``space`` and back by Krita (in a scratch document)."""
    scratch = new_doc(w, h, "round trip")
    try:
        node = scratch.createNode("round trip", "paintlayer")
        scratch.rootNode().addChildNode(node, None)
        node.setPixelData(QByteArray(bgra), 0, 0, w, h)
        node.setColorSpace(*space)
        node.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
        scratch.waitForDone()
        return bytes(node.pixelData(0, 0, w, h))
    finally:
        scratch.close()


def _outside_same(now: bytes, photo: bytes, doc_w: int, rect: tuple[int, int, int, int]) -> bool:
    x, y, w, h = rect
    rows = len(now) // (doc_w * 4)
    for r in range(rows):
        start, end = r * doc_w * 4, (r + 1) * doc_w * 4
        if y <= r < y + h:
            if now[start:start + x * 4] != photo[start:start + x * 4] or \
                    now[start + (x + w) * 4:end] != photo[start + (x + w) * 4:end]:
                return False
        elif now[start:end] != photo[start:end]:
            return False
    return True


class Lateness:
    """How late a 10 ms QTimer fires while the GUI thread is (or is not) busy."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.interval = interval_ms
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.worst = 0.0
        self.ticks = 0
        self.last = 0

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.worst = max(self.worst, now - self.last - self.interval)
        self.last = now
        self.ticks += 1

    def __enter__(self) -> Lateness:
        self.clock.start()
        self.last = 0
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()


def group_info(doc: Any, group: Any, source: Any) -> dict[str, Any]:
    from portrait_style_krita.document import KritaDocument

    kdoc = KritaDocument(doc)
    layers = kdoc.result_layers(group)
    parent = group.parentNode()
    siblings = [c.uniqueId().toString() for c in parent.childNodes()]
    gi = siblings.index(group.uniqueId().toString())
    si = siblings.index(source.uniqueId().toString())
    mask_node = kdoc.portrait_mask_node(group)
    return {"group_name": group.name(), "group_type": group.type(),
            "directly_above_source": gi == si + 1,
            "children": [(c.name(), c.type()) for c in group.childNodes()],
            "tree": tree(group), "source_bounds": rect(source),
            "layer_bounds": {k: rect(v) for k, v in layers.items()},
            "mask_type": mask_node.type() if mask_node else None,
            "record": kdoc.read_record(group)}


# --------------------------------------------------------------------------- scenarios


def scenario_contract(res: dict[str, Any]) -> None:
    """The core's contract checks on a moved, smaller, partly transparent layer."""
    from portrait_style_krita._core.plugin.contract import run_contract
    from portrait_style_krita.document import KritaDocument

    doc = new_doc(160, 120, "contract")
    w, h = 70, 50
    data = bytearray()
    for y in range(h):
        for x in range(w):
            data += bytes([(x * 3) % 256, (y * 5) % 256, (x + y) % 256, 255 if x > 5 else 128])
    node = add_layer(doc, "contract source", bytes(data), 37, 21, w, h)
    res["failures"] = run_contract(KritaDocument(doc), node)
    doc.close()


def scenario_main(res: dict[str, Any]) -> None:
    """One real job on the portrait; the layer contract, timings, event-loop lateness."""
    import portrait_style_krita
    from portrait_style_krita.api import last_run
    from portrait_style_krita.document import KritaDocument

    data, w, h = photo_bgra(SIZE)
    doc = new_doc(w, h, "main")
    source = add_layer(doc, "Photo", data, 0, 0, w, h)
    before = bytes(source.pixelData(0, 0, w, h))
    (OUT / "main_source.bgra").write_bytes(before)
    events: list[dict[str, Any]] = []

    def on_event(ev: Any) -> None:
        events.append({"state": ev.state.value, "stage": ev.stage, "fraction": ev.fraction})

    photo_view = shown(doc)
    started = time.perf_counter()
    with Lateness() as late:
        group = portrait_style_krita.apply(doc, source, STYLE, on_event=on_event)
    # what the artist sees the moment apply() returns: the canvas, the group's thumbnail
    res["view_apply"] = view_of(doc, group, (0, 0, w, h), photo_view)
    (OUT / "main_shown_apply.bgra").write_bytes(shown(doc))
    res["thumbnail_vs_view"] = level_diff(image_bgra(group.thumbnail(w, h)), shown(doc))
    res["wall_s"] = time.perf_counter() - started
    res["lateness_ms"] = late.worst
    res["ticks"] = late.ticks
    res["timings"] = {k: v for k, v in last_run.items() if k.endswith("_s")}
    job = last_run["job"]
    res["notices"] = job.notices
    res["daemon_pid"] = job.daemon.get("pid")
    res["params"] = job.params.as_dict()
    res["events"] = events
    res.update(group_info(doc, group, source))
    kdoc = KritaDocument(doc)
    layers = kdoc.result_layers(group)
    mask = kdoc.read_mask(group)
    (OUT / "main_mask.gray").write_bytes(mask.tobytes())
    (OUT / "main_portrait.bgra").write_bytes(bytes(layers["Portrait"].pixelData(0, 0, w, h)))
    (OUT / "main_background.bgra").write_bytes(
        bytes(layers["Background"].pixelData(0, 0, w, h)))
    res["mask_equals_job_mask"] = mask.tobytes() == job.plan.mask.tobytes()
    res["portrait_equals_job"] = bytes(layers["Portrait"].pixelData(0, 0, w, h)) == \
        _bgra(job.plan.layer("Portrait").pixels)
    res["source_unchanged"] = bytes(source.pixelData(0, 0, w, h)) == before
    res["size"] = [w, h]

    # the artist paints the mask (a white block), scribbles on both layers, re-runs portrait
    mask_node = kdoc.portrait_mask_node(group)
    bx, by, bw, bh = 0, 0, w // 4, h // 4
    mask_node.setPixelData(QByteArray(b"\xff" * (bw * bh)), bx, by, bw, bh)
    edited = bytes(mask_node.pixelData(0, 0, w, h))
    scribble = QByteArray(bytes([0, 0, 255, 255]) * (8 * 8))
    layers["Background"].setPixelData(scribble, w - 10, h - 10, 8, 8)
    layers["Portrait"].setPixelData(scribble, w - 10, h - 10, 8, 8)
    background_before = bytes(layers["Background"].pixelData(0, 0, w, h))
    ids_before = {k: v.uniqueId().toString() for k, v in layers.items()}
    with Lateness() as late:
        again = portrait_style_krita.rerun(doc, group, "portrait")
    job2 = last_run["job"]
    layers2 = kdoc.result_layers(again)
    res["rerun"] = {
        "same_group": again.uniqueId() == group.uniqueId(),
        "sent_mask_is_edit": job2.mask is not None and job2.mask.tobytes() == edited,
        "mask_kept": bytes(kdoc.portrait_mask_node(again).pixelData(0, 0, w, h)) == edited,
        "background_untouched": bytes(layers2["Background"].pixelData(0, 0, w, h))
        == background_before,
        "portrait_replaced": bytes(layers2["Portrait"].pixelData(0, 0, w, h))
        == _bgra(job2.plan.layer("Portrait").pixels),
        "scribble_gone": bytes(layers2["Portrait"].pixelData(w - 10, h - 10, 8, 8))
        != bytes(scribble),
        "outputs": list(job2.params.outputs),
        "background_id_kept": layers2["Background"].uniqueId().toString()
        == ids_before["Background"],
        "portrait_is_new_node": layers2["Portrait"].uniqueId().toString()
        != ids_before["Portrait"],
        "children": [(c.name(), c.type()) for c in again.childNodes()],
        "lateness_ms": late.worst, "timings": {k: v for k, v in last_run.items()
                                                if k.endswith("_s")},
        "view": view_of(doc, again, (0, 0, w, h), photo_view),
    }
    (OUT / "main_shown_rerun.bgra").write_bytes(shown(doc))
    (OUT / "rerun_mask.gray").write_bytes(edited)

    # save as .kra, close, reopen: the group, its record and the mask come back
    path = OUT / "main.kra"
    record = kdoc.read_record(again)
    gid = again.uniqueId().toString()
    res["saved"] = doc.saveAs(str(path))
    doc.close()
    doc2 = Krita.instance().openDocument(str(path))
    doc2.setBatchmode(True)
    kdoc2 = KritaDocument(doc2)
    group2 = next((n for n in doc2.rootNode().childNodes()
                   if n.uniqueId().toString() == gid), None)
    reopened: dict[str, Any] = {"group_found": group2 is not None}
    if group2 is not None:
        reopened.update(
            name=group2.name(), is_result=kdoc2.result_group_of(group2) is not None,
            record_same=kdoc2.read_record(group2) == record,
            mask_same=kdoc2.read_mask(group2).tobytes() == edited,
            children=[(c.name(), c.type()) for c in group2.childNodes()],
            tree=tree(group2), view_on_open=view_of(doc2, group2, (0, 0, w, h), photo_view))
        source2 = kdoc2.find_layer(json.loads(record)["source_id"])
        reopened["source_found"] = source2 is not None
        portrait_style_krita.rerun(doc2, group2, "background")
        reopened["rerun_background_ok"] = True
        reopened["mask_after_rerun"] = kdoc2.read_mask(group2).tobytes() == edited
        reopened["view_after_rerun"] = view_of(doc2, group2, (0, 0, w, h), photo_view)
        (OUT / "reopened_shown.bgra").write_bytes(shown(doc2))
    res["reopened"] = reopened
    doc2.close()


def _bgra(pixels: Any) -> bytes:
    from portrait_style_krita._core.plugin.pixels import swap_red_blue

    return swap_red_blue(pixels).tobytes()


def scenario_moved(res: dict[str, Any]) -> None:
    """A layer smaller than the canvas, moved off the origin, with a transparent hole."""
    import portrait_style_krita
    from portrait_style_krita.document import KritaDocument

    data, w, h = photo_bgra(160)
    raw = bytearray(data)
    for y in range(h // 3, h // 2):  # a transparent band across the layer
        for x in range(w):
            raw[(y * w + x) * 4 + 3] = 0
    doc = new_doc(400, 300, "moved")
    x0, y0 = 150, 90
    source = add_layer(doc, "Moved photo", bytes(raw), x0, y0, w, h)
    before = bytes(source.pixelData(x0, y0, w, h))
    photo_view = shown(doc)
    group = portrait_style_krita.apply(doc, source, STYLE, portrait_strength=0.5,
                                       background_strength=0.8)
    res["view"] = view_of(doc, group, (x0, y0, w, h), photo_view)
    res.update(group_info(doc, group, source))
    kdoc = KritaDocument(doc)
    alpha_src = before[3::4]
    res["alpha_kept"] = {name: bytes(node.pixelData(x0, y0, w, h))[3::4] == alpha_src
                         for name, node in kdoc.result_layers(group).items()}
    res["source_unchanged"] = bytes(source.pixelData(x0, y0, w, h)) == before
    res["params"] = json.loads(kdoc.read_record(group))["params"]
    doc.close()


def scenario_u16(res: dict[str, Any]) -> None:
    """A 16-bit RGBA document: read as 8-bit with a notice, results written 16-bit."""
    import portrait_style_krita
    from portrait_style_krita.api import last_run
    from portrait_style_krita.document import KritaDocument

    data8, w, h = photo_bgra(128)
    data16 = bytearray(len(data8) * 2)
    data16[0::2] = data8
    data16[1::2] = data8  # v16 = v8 × 257
    doc = new_doc(w, h, "sixteen", depth="U16")
    source = add_layer(doc, "Photo 16", bytes(data16), 0, 0, w, h)
    before = bytes(source.pixelData(0, 0, w, h))
    photo_view = shown(doc)
    group = portrait_style_krita.apply(doc, source, STYLE)
    res["view"] = view_of(doc, group, (0, 0, w, h), photo_view)
    job = last_run["job"]
    kdoc = KritaDocument(doc)
    layers = kdoc.result_layers(group)
    portrait16 = bytes(layers["Portrait"].pixelData(0, 0, w, h))
    expected = _bgra(job.plan.layer("Portrait").pixels)
    res["depths"] = {k: v.colorDepth() for k, v in layers.items()}
    res["portrait_bytes"] = len(portrait16)
    res["portrait_matches_8bit_result"] = portrait16[1::2] == expected and \
        portrait16[0::2] == expected
    res["notices"] = job.notices
    res["source_unchanged"] = bytes(source.pixelData(0, 0, w, h)) == before
    res["mask_type"] = group_info(doc, group, source)["mask_type"]
    doc.close()


def scenario_other_models(res: dict[str, Any]) -> None:
    """Grey, CMYK and 32-bit float documents: read through 8-bit sRGB, results as sRGB layers."""
    import portrait_style_krita
    from portrait_style_krita.api import last_run

    data8, w, h = photo_bgra(96)
    for model, depth in (("GRAYA", "U8"), ("CMYKA", "U8"), ("RGBA", "F32")):
        doc = new_doc(w, h, f"{model}-{depth}", depth=depth, model=model)
        # the photo pasted in through an 8-bit sRGB layer, converted by Krita to the doc's space
        source = doc.createNode("Photo", "paintlayer")
        source.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
        source.setPixelData(QByteArray(data8), 0, 0, w, h)
        source.setColorSpace(model, depth, doc.colorProfile())
        doc.rootNode().addChildNode(source, None)
        doc.setActiveNode(source)
        doc.waitForDone()
        before = sha(bytes(source.pixelData(0, 0, w, h)))
        count = len(doc.rootNode().childNodes())
        entry: dict[str, Any] = {"source_space": [source.colorModel(), source.colorDepth()]}
        photo_view = image_bgra(doc.thumbnail(w, h))
        try:
            group = portrait_style_krita.apply(doc, source, STYLE)
            entry["view"] = other_view(doc, group, w, h, photo_view)
            job = last_run["job"]
            sent = job.source.pixels.tobytes()
            info = group_info(doc, group, source)
            layers = {c.name(): c for c in group.childNodes()}
            entry.update(
                error=None, notices=job.notices, mask_type=info["mask_type"],
                directly_above_source=info["directly_above_source"],
                spaces={k: [v.colorModel(), v.colorDepth()] for k, v in layers.items()},
                portrait_is_the_result=bytes(layers["Portrait"].pixelData(0, 0, w, h))
                == _bgra(job.plan.layer("Portrait").pixels),
                sent_grey=sent[0::4] == sent[1::4] == sent[2::4],
                sent_mean=sum(sent[0::4]) / (w * h))
            group = portrait_style_krita.rerun(doc, group, "background")
            entry["view_rerun"] = other_view(doc, group, w, h, photo_view)
            layers = {c.name(): c for c in group.childNodes()}
            entry["rerun_spaces"] = {k: [v.colorModel(), v.colorDepth()]
                                     for k, v in layers.items()}
            entry["rerun_mask_kept"] = any(c.type() == "transparencymask"
                                           for c in layers["Portrait"].childNodes())
        except Exception as exc:
            import traceback

            entry.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        entry["layers_added"] = len(doc.rootNode().childNodes()) - count
        entry["source_unchanged"] = sha(bytes(source.pixelData(0, 0, w, h))) == before
        entry["documents_left"] = len(Krita.instance().documents())
        res[f"{model}/{depth}"] = entry
        doc.close()


def scenario_unreachable(res: dict[str, Any]) -> None:
    """A daemon that is not there: a sentence, not a traceback; nothing added."""
    import portrait_style_krita

    data, w, h = photo_bgra(64)
    doc = new_doc(w, h, "unreachable")
    node = add_layer(doc, "Photo", data, 0, 0, w, h)
    count = len(doc.rootNode().childNodes())
    photo_view = shown(doc)
    started = time.perf_counter()
    try:
        portrait_style_krita.apply(doc, node, STYLE, endpoint="tcp://127.0.0.1:9")
        res["error"] = None
    except Exception as exc:
        res["error"] = str(exc)
        res["error_type"] = type(exc).__name__
    res["seconds"] = time.perf_counter() - started
    res["layers_added"] = len(doc.rootNode().childNodes()) - count
    res["view_unchanged"] = shown(doc) == photo_view
    doc.close()


def scenario_selection(res: dict[str, Any]) -> None:
    """Mask from selection and selection from mask, on a contract-made group."""
    from portrait_style_krita._core.plugin.contract import contract_plan
    from portrait_style_krita.document import KritaDocument

    doc = new_doc(120, 90, "selection")
    w, h = 80, 60
    node = add_layer(doc, "Photo", bytes([90, 120, 150, 255]) * (w * h), 10, 20, w, h)
    kdoc = KritaDocument(doc)
    photo_view = shown(doc)
    group = kdoc.add_result_group(contract_plan(kdoc.read_layer(node)), node)
    res["view_added"] = view_of(doc, group, (10, 20, w, h), photo_view)
    selection = Selection()
    selection.select(30, 40, 20, 10, 255)
    doc.setSelection(selection)
    kdoc.mask_from_selection(group)
    mask = kdoc.read_mask(group).tobytes()
    expected = bytearray(w * h)
    for y in range(20, 30):
        expected[y * w + 20: y * w + 40] = b"\xff" * 20
    res["mask_from_selection"] = mask == bytes(expected)
    res["mask_sum"] = sum(mask) // 255
    res["view_mask_from_selection"] = view_of(doc, group, (10, 20, w, h), photo_view)
    doc.setSelection(Selection())
    kdoc.selection_from_mask(group)
    sel = doc.selection()
    res["selection_from_mask"] = sel is not None and \
        bytes(sel.pixelData(10, 20, w, h)) == bytes(expected)
    doc.close()


def scenario_cancel(res: dict[str, Any]) -> None:
    """Cancel as soon as the daemon reports a stage: the job ends CANCELLED, nothing added."""
    import portrait_style_krita
    from portrait_style_krita import api
    from portrait_style_krita.api import last_run

    data, w, h = photo_bgra(SIZE)
    doc = new_doc(w, h, "cancel")
    node = add_layer(doc, "Photo", data, 0, 0, w, h)
    count = len(doc.rootNode().childNodes())
    photo_view = shown(doc)
    states: list[str] = []

    def on_event(ev: Any) -> None:
        states.append(ev.state.value)
        if ev.state.value == "running":
            api.cancel()

    try:
        portrait_style_krita.apply(doc, node, STYLE, on_event=on_event)
        res["error"] = None
    except Exception as exc:
        res["error"] = str(exc)
        res["error_type"] = type(exc).__name__
    res["states"] = states
    res["view_unchanged"] = shown(doc) == photo_view
    res["final_state"] = last_run["job"].state.value if "job" in last_run else None
    res["layers_added"] = len(doc.rootNode().childNodes()) - count
    doc.close()


def scenario_damaged_style(res: dict[str, Any]) -> None:
    """A painting that decodes only partly is refused in words naming it; nothing changes.

    A JPEG cut at 30 kB (Qt would load it with grey rows) and a PNG whose image
    data is overwritten (Qt reads nothing), through the scripting API (the
    docker's Apply: tests/krita_scripts/gui_probe).
    """
    import portrait_style_krita

    full = Path(STYLE).read_bytes()
    cut = OUT / "cut_painting.jpg"
    cut.write_bytes(full[:30_000])
    image = QImage(STYLE).scaledToWidth(200)
    whole_png = OUT / "whole_painting.png"
    image.save(str(whole_png))
    broken = bytearray(whole_png.read_bytes())
    start = broken.index(b"IDAT") + 500
    broken[start:start + 64] = bytes(64)  # damaged image data (its checksum no longer fits)
    corrupt = OUT / "corrupt_painting.png"
    corrupt.write_bytes(bytes(broken))
    data, w, h = photo_bgra(96)
    doc = new_doc(w, h, "damaged style")
    node = add_layer(doc, "Photo", data, 0, 0, w, h)
    photo_view = shown(doc)
    count = len(doc.rootNode().childNodes())
    for path in (cut, corrupt, whole_png):
        entry: dict[str, Any] = {}
        try:
            if path is whole_png:  # the same painting, whole: accepted (the check is not blind)
                from portrait_style_krita.styles import load_style

                entry["loaded"] = load_style(path).shape
            else:
                portrait_style_krita.apply(doc, node, path)
            entry["error"] = None
        except Exception as exc:
            entry["error"] = str(exc)
            entry["error_type"] = type(exc).__name__
        entry["layers_added"] = len(doc.rootNode().childNodes()) - count
        entry["view_unchanged"] = shown(doc) == photo_view
        res[path.name] = entry
    doc.close()


def scenario_inside_group(res: dict[str, Any]) -> None:
    """Apply to a layer inside a result group: it stands for the group's photo (the core's
    rule); the new group lands directly above the first result, visible, and is what the
    canvas shows. With the photo deleted, the same Apply is refused in words."""
    import portrait_style_krita
    from portrait_style_krita.document import KritaDocument

    data, w, h = photo_bgra(128)
    doc = new_doc(w, h, "inside group")
    photo = add_layer(doc, "Photo", data, 0, 0, w, h)
    photo_view = shown(doc)
    first = portrait_style_krita.apply(doc, photo, STYLE)
    kdoc = KritaDocument(doc)
    inner = kdoc.result_layers(first)["Portrait"]
    second = portrait_style_krita.apply(doc, inner, STYLE, portrait_strength=0.3)
    record = json.loads(kdoc.read_record(second))
    tops = [n.uniqueId().toString() for n in doc.topLevelNodes()]
    res.update(
        made_from_photo=record["source_id"] == photo.uniqueId().toString(),
        top_level=[(n.name(), n.type()) for n in doc.topLevelNodes()],
        second_above_first=tops.index(second.uniqueId().toString())
        == tops.index(first.uniqueId().toString()) + 1,
        second_visible=second.visible(), nested=[c.type() for c in first.childNodes()],
        view=view_of(doc, second, (0, 0, w, h), photo_view))
    # the photo deleted: a layer of the group has nothing to stand for any more
    photo.remove()
    doc.waitForDone()
    count = len(doc.topLevelNodes())
    before = shown(doc)
    try:
        portrait_style_krita.apply(doc, kdoc.result_layers(first)["Background"], STYLE)
        res["orphan_error"] = None
    except Exception as exc:
        res["orphan_error"] = str(exc)
        res["orphan_error_type"] = type(exc).__name__
    res["orphan_layers_added"] = len(doc.topLevelNodes()) - count
    res["orphan_view_unchanged"] = shown(doc) == before
    doc.close()


def scenario_status(res: dict[str, Any]) -> None:
    """The docker's daemon line: a daemon that is not there is told within seconds."""
    from portrait_style_krita.controller import Controller
    from portrait_style_krita.docker import STATUS_EVERY_MS
    from portrait_style_krita.runner import wait_for

    lines: list[str] = []
    ctl = Controller()
    ctl.status.connect(lines.append)
    ctl.refresh_status()
    wait_for(lambda: bool(lines), 10.0)
    res["alive"] = lines[-1] if lines else None
    saved = os.environ.get("PORTRAIT_STYLE_ENDPOINT")
    os.environ["PORTRAIT_STYLE_ENDPOINT"] = "tcp://127.0.0.1:9"  # where no daemon answers
    try:
        lines.clear()
        started = time.perf_counter()
        ctl.refresh_status()
        wait_for(lambda: bool(lines), 10.0)
        res["dead_seconds"] = time.perf_counter() - started
        res["dead"] = lines[-1] if lines else None
    finally:
        if saved is None:
            os.environ.pop("PORTRAIT_STYLE_ENDPOINT", None)
        else:
            os.environ["PORTRAIT_STYLE_ENDPOINT"] = saved
    res["every_s"] = STATUS_EVERY_MS / 1000


def scenario_nowire(res: dict[str, Any]) -> None:
    """Installed without its _wire folder: the plug-in loads, and says what is missing."""
    import portrait_style_krita
    from portrait_style_krita.controller import Controller
    from portrait_style_krita.runner import wait_for

    res["registered_import_ok"] = True
    lines: list[str] = []
    ctl = Controller()
    ctl.status.connect(lines.append)
    ctl.refresh_status()
    wait_for(lambda: bool(lines), 10.0)
    res["status_line"] = lines[0] if lines else None
    doc = new_doc(32, 32, "nowire")
    node = add_layer(doc, "Photo", bytes([1, 2, 3, 255]) * 256, 0, 0, 16, 16)
    try:
        portrait_style_krita.apply(doc, node, STYLE)
        res["error"] = None
    except Exception as exc:
        res["error"] = str(exc)
        res["error_type"] = type(exc).__name__
    doc.close()


SCENARIOS = {"contract": scenario_contract, "main": scenario_main, "moved": scenario_moved,
             "u16": scenario_u16, "other_models": scenario_other_models,
             "unreachable": scenario_unreachable, "selection": scenario_selection,
             "cancel": scenario_cancel, "damaged_style": scenario_damaged_style,
             "inside_group": scenario_inside_group, "status": scenario_status,
             "nowire": scenario_nowire}


def main(*_args: Any) -> None:
    only = [s for s in os.environ.get("KRITA_SUITE_ONLY", "").split(",") if s]
    results: dict[str, Any] = {"krita": Krita.instance().version()}
    if only != ["nowire"]:
        from portrait_style_krita.runtime import core

        core()  # the wire libraries from the plug-in's _wire, as the docker does
    for name, scenario in SCENARIOS.items():
        if (only and name not in only) or (name == "nowire" and not only):
            continue
        res: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            scenario(res)
            res["ok"] = True
        except Exception as exc:
            res["ok"] = False
            res["exception"] = f"{type(exc).__name__}: {exc}"
            res["traceback"] = traceback.format_exc()
        res["scenario_s"] = time.perf_counter() - started
        results[name] = res
        Path(os.environ["PORTRAIT_STYLE_RESULT"]).write_text(json.dumps(results, indent=1))
