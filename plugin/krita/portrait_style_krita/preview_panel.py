"""Live preview in the docker: the active layer (or the selection on it), restyled small.

Why here and how: the artist tries knobs and paintings before anything is
written to the document. The core's ``PreviewSession`` runs one preview at a
time on its worker thread, latest request wins and a stale one is cancelled
on the daemon; this module adds what Krita needs around it:

- a debounce (``QTimer``): a spin box dragged through ten values asks once;
- the source is read on the GUI thread (Krita's API lives there) at the moment
  the request fires — the active layer, cropped to the selection if there is
  one — and a cheap watch (the layer's 48-px thumbnail, once a second) asks
  again when the artist paints on it or picks another layer;
- results cross to the GUI thread through a queued Qt signal, so Krita never
  waits on the daemon;
- ``PreviewView`` shows after and before with a movable split, or "before"
  alone while its toggle is down.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any

from .qt import (
    KEEP_ASPECT,
    QUEUED,
    SMOOTH,
    QImage,
    QObject,
    QSize,
    QtCore,
    QtGui,
    QTimer,
    QtWidgets,
    Signal,
    enum,
)

__all__ = ["LivePreview", "PreviewView", "pixels_to_image", "DEBOUNCE_MS", "LONG_SIDE"]

#: quiet time after the last change before a preview is asked for (ms)
DEBOUNCE_MS = 300
#: how often the active layer is looked at for paint strokes or a new layer (ms)
WATCH_MS = 1000
#: the preview's long side (px): what the docker shows, sharp on a HiDPI screen
LONG_SIDE = 384
_FORMATS = {3: "Format_RGB888", 4: "Format_RGBA8888", 1: "Format_Grayscale8"}


def pixels_to_image(pixels: Any) -> QImage:
    """The core's ``Pixels`` (RGB/RGBA/grey, 8-bit) as a QImage that owns its bytes."""
    fmt = enum(QImage, "Format", _FORMATS[pixels.channels])
    data = bytes(pixels.data)
    image = QImage(data, pixels.width, pixels.height, pixels.stride, fmt)
    return image.copy()  # detached from ``data``, which Python may free


def crop_pixels(pixels: Any, x: int, y: int, w: int, h: int, messages: Any) -> Any:
    """A rectangle of ``pixels`` (rows copied; no numpy in a plug-in)."""
    c, stride, data = pixels.channels, pixels.stride, pixels.data
    rows = b"".join(bytes(data[(y + r) * stride + x * c:(y + r) * stride + (x + w) * c])
                    for r in range(h))
    return messages.Pixels.from_buffer(rows, (h, w, c))


class PreviewView(QtWidgets.QWidget):
    """After on the right of the split, before on the left; the slider moves the split."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.split = 0.5  # fraction of the width showing "before"
        self.only_before = False
        self.text = "Live preview: pick a painting and a layer"
        self.setMinimumSize(QSize(160, 160))
        self.setObjectName("preview_view")

    def set_images(self, before: QImage | None, after: QImage | None) -> None:
        self.before, self.after = before, after
        self.update()

    def set_text(self, text: str) -> None:
        self.text = text
        self.update()

    def set_split(self, value: int) -> None:
        self.split = max(0, min(100, value)) / 100.0
        self.update()

    def set_only_before(self, on: bool) -> None:
        self.only_before = bool(on)
        self.update()

    def target(self) -> QtCore.QRect:
        """Where the image is drawn: fitted, centred."""
        image = self.after or self.before
        if image is None or image.isNull():
            return QtCore.QRect()
        size = image.size().scaled(self.size(), KEEP_ASPECT)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        return QtCore.QRect(x, y, size.width(), size.height())

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        painter = QtGui.QPainter(self)
        try:
            painter.setRenderHint(enum(QtGui.QPainter, "RenderHint", "SmoothPixmapTransform"))
            rect = self.target()
            if rect.isNull():
                painter.drawText(self.rect(), enum(QtCore.Qt, "AlignmentFlag", "AlignCenter")
                                 | enum(QtCore.Qt, "TextFlag", "TextWordWrap"), self.text)
                return
            after = self.before if self.only_before or self.after is None else self.after
            painter.drawImage(rect, after)
            if self.before is not None and not self.only_before and self.after is not None:
                cut = int(rect.width() * self.split)
                left = QtCore.QRect(rect.x(), rect.y(), cut, rect.height())
                painter.save()
                painter.setClipRect(left)
                painter.drawImage(rect, self.before)
                painter.restore()
                painter.setPen(QtGui.QPen(QtGui.QColor(255, 255, 255), 1))
                painter.drawLine(rect.x() + cut, rect.y(), rect.x() + cut, rect.bottom())
        finally:
            painter.end()


class LivePreview(QObject):
    """Drives the core's ``PreviewSession`` from the docker (everything on the GUI thread).

    get_options: returns (style path or None, {control name: value}).
    Signals: ``shown(QImage before, QImage after, dict info)`` — a preview arrived;
    ``state(str)`` — a line for the docker ("previewing… 40 %", errors in words).
    """

    shown = Signal(object, object, object)
    state = Signal(str)
    _arrived = Signal(object)
    _ready = Signal(object)

    def __init__(self, get_options: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.get_options = get_options
        self.enabled = False
        self.session: Any = None
        self.tickets: dict[int, QImage] = {}  # ticket → its "before" (the source, small)
        self.latest = 0
        self.shown_count = 0
        self.last_info: dict[str, Any] = {}
        self._watched: tuple[Any, ...] | None = None
        #: (what, ms) the GUI thread spent on the last previews: the docker's cost to Krita
        self.gui_ms: list[tuple[str, float]] = []
        self._generation = 0  # fire() calls; only the newest one's painting is submitted
        self._arrived.connect(self._on_event, QUEUED)
        self._ready.connect(self._submit, QUEUED)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self.fire)
        self.watch = QTimer(self)
        self.watch.setInterval(WATCH_MS)
        self.watch.timeout.connect(self._look)

    # -------------------------------------------------------------- switches

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if on:
            self.watch.start()
            self.request()
        else:
            self.watch.stop()
            self.debounce.stop()
            if self.session is not None:
                self.session.cancel()
            self.state.emit("Live preview off")

    def request(self) -> None:
        """Something changed: ask again once things are quiet for ``DEBOUNCE_MS``."""
        if self.enabled:
            self.debounce.start()

    def close(self) -> None:
        self.watch.stop()
        self.debounce.stop()
        if self.session is not None:
            self.session.close(timeout_s=1.0)
            self.session = None

    # -------------------------------------------------------------- request

    def _active(self) -> tuple[Any, Any]:
        from .controller import active_document_and_nodes

        document, _ = active_document_and_nodes()
        node = document.activeNode() if document is not None else None
        return document, node

    def _look(self) -> None:
        """Once a second: a new layer, a new selection or paint on the layer asks again."""
        if not self.enabled:
            return
        try:
            document, node = self._active()
            if node is None:
                return
            selection = document.selection()
            sel = None if selection is None else (selection.x(), selection.y(),
                                                  selection.width(), selection.height())
            thumb = node.thumbnail(48, 48)
            key = (node.uniqueId().toString(), sel, bytes(_bits(thumb)))
        except Exception:
            return
        if self._watched is not None and key != self._watched:
            self.request()
        self._watched = key

    def fire(self) -> None:
        """Read the source now (GUI thread: Krita's API); the painting is decoded off it."""
        started = time.perf_counter()
        try:
            self._fire()
        finally:
            self.gui_ms.append(("fire", round((time.perf_counter() - started) * 1000, 1)))
            del self.gui_ms[:-20]

    def _fire(self) -> None:
        from .runtime import core

        try:
            modules = core()
            style_path, values = self.get_options()
            if style_path is None:
                self.state.emit("Live preview: choose a painting first")
                return
            document, node = self._active()
            if document is None or node is None:
                self.state.emit("Live preview: open an image and select its layer")
                return
            source = self._read_source(modules, document, node)
            options = modules["core"].StylizeOptions(style_path=Path(style_path),
                                                     controls=dict(values),
                                                     outputs=("composite",))
            options.params()  # bad knobs are refused here, in words, before any thread
        except Exception as exc:
            self.state.emit(f"Live preview: {_explain(exc)}")
            return
        self._generation += 1
        threading.Thread(target=self._prepare, name="portrait-style-preview-prep", daemon=True,
                         args=(self._generation, source, Path(style_path), options)).start()

    def _prepare(self, generation: int, source: Any, style_path: Path, options: Any) -> None:
        """Worker thread: decode the painting (cached) and the small "before" image."""
        try:
            from .styles import load_style

            style = load_style(style_path)
            before = pixels_to_image(source.pixels).scaled(
                QSize(LONG_SIDE, LONG_SIDE), KEEP_ASPECT, SMOOTH)
            self._ready.emit((generation, source, style, options, before, None))
        except Exception as exc:
            self._ready.emit((generation, None, None, None, None, exc))

    def _submit(self, payload: tuple[Any, ...]) -> None:
        """GUI thread: hand the newest request to the session (returns at once)."""
        generation, source, style, options, before, error = payload
        if generation != self._generation or not self.enabled:
            return  # a newer change came while the painting was decoded
        if error is not None:
            self.state.emit(f"Live preview: {_explain(error)}")
            return
        try:
            if self.session is None:
                modules = _core()
                preview = importlib.import_module(
                    f"{__package__ or 'portrait_style_krita'}._core.plugin.preview")
                self.session = preview.PreviewSession(
                    self._arrived.emit, modules["job"].Connection(start_daemon=True),
                    long_side=LONG_SIDE)
            ticket = self.session.submit(source, style, options)
        except Exception as exc:
            self.state.emit(f"Live preview: {_explain(exc)}")
            return
        self.latest = ticket
        self.tickets = {t: b for t, b in self.tickets.items() if t >= ticket - 2}
        self.tickets[ticket] = before
        self.state.emit("Live preview: asking the daemon…")

    def _read_source(self, modules: dict[str, Any], document: Any, node: Any) -> Any:
        """The layer Apply would restyle, cropped to the selection when there is one."""
        from .document import KritaDocument

        kdoc = KritaDocument(document, [node])
        layer = modules["job"].stylize_source(kdoc, node)
        source = kdoc.read_layer(layer)
        selection = document.selection()
        if selection is None or selection.width() <= 0 or selection.height() <= 0:
            return source
        ox, oy = source.offset
        x0, y0 = max(selection.x(), ox), max(selection.y(), oy)
        x1 = min(selection.x() + selection.width(), ox + source.pixels.width)
        y1 = min(selection.y() + selection.height(), oy + source.pixels.height)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return source  # the selection misses the layer: show the whole layer
        cropped = crop_pixels(source.pixels, x0 - ox, y0 - oy, x1 - x0, y1 - y0,
                              modules["messages"])
        return type(source)(name=source.name, pixels=cropped, offset=(x0, y0),
                            layer_id=source.layer_id, notes=list(source.notes))

    # -------------------------------------------------------------- results

    def _on_event(self, event: Any) -> None:
        """GUI thread: one ``PreviewEvent``; only the latest request's are shown."""
        started = time.perf_counter()
        try:
            self._show(event)
        finally:
            self.gui_ms.append((event.state, round((time.perf_counter() - started) * 1000, 1)))
            del self.gui_ms[:-20]

    def _show(self, event: Any) -> None:
        if event.ticket != self.latest:
            return
        if event.state == "running":
            percent = f" {event.fraction * 100:.0f} %" if event.fraction >= 0 else ""
            self.state.emit(f"Live preview: {_words(event.stage)}…{percent}")
        elif event.state == "done" and event.image is not None:
            after = pixels_to_image(event.image)
            before = self.tickets.get(event.ticket)
            if before is not None:
                before = before.scaled(after.size(), enum(QtCore.Qt, "AspectRatioMode",
                                                          "IgnoreAspectRatio"), SMOOTH)
            self.shown_count += 1
            self.last_info = dict(event.info or {})
            self.shown.emit(before, after, self.last_info)
            timings = self.last_info.get("timings") or {}
            took = sum(v for v in timings.values() if isinstance(v, int | float)) \
                if isinstance(timings, dict) else 0
            timing = f" in {took:.1f} s" if took else ""
            self.state.emit(f"Live preview: {after.width()}×{after.height()}{timing} — "
                            "nothing written to the image")
        elif event.state == "failed":
            self.state.emit(f"Live preview: {event.message}")


def _bits(image: QImage) -> bytes:
    from .qt import image_bytes

    return image_bytes(image) if not image.isNull() else b""


def _words(stage: str) -> str:
    try:
        from .runtime import core

        return core()["stages"].stage_words(stage)
    except Exception:
        return stage


def _explain(exc: BaseException) -> str:
    try:
        from .runtime import core

        return core()["explain"].explain(exc)
    except Exception:
        return str(exc)


def _core() -> dict[str, Any]:
    from .runtime import core

    return core()
