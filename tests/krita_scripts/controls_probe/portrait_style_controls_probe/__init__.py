"""Test-only Krita plug-in: tries the docker's knobs, live preview and gallery as an artist.

Installed next to portrait_style_krita by tests/test_krita_controls.py, in a
real Krita under Xvfb. It opens the portrait, reads the knob widgets (ranges,
values), changes one and presses "Reset to defaults", clicks a painting in
the gallery grid, turns the live preview on, waits for it, changes a knob
several times in a row (latest wins), waits for the new preview, toggles
before/after, asks for screenshots, then clicks Apply. A 10 ms timer
measures how late Krita's event loop runs meanwhile. What it saw goes to
``$PORTRAIT_STYLE_RESULT`` (phase "ready"); previews and the canvas are saved
beside it as PNG / raw dumps for the test to compare.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from krita import Extension, Krita  # type: ignore[import-not-found]
from PyQt5.QtCore import QByteArray, QElapsedTimer, QEvent, QPoint, Qt, QTimer
from PyQt5.QtGui import QImage, QMouseEvent
from PyQt5.QtWidgets import QApplication, QDoubleSpinBox, QPushButton

RESULT = Path(os.environ.get("PORTRAIT_STYLE_RESULT", "/tmp/probe.json"))
DUMPS = RESULT.parent
PHOTO = os.environ.get("PROBE_PHOTO", "")
SIZE = int(os.environ.get("PROBE_SIZE", "512"))
PAINTING = os.environ.get("PROBE_PAINTING", "")  # the gallery painting to click


def click(widget: Any, where: QPoint) -> None:
    """A left click at ``where`` in ``widget``, as the mouse would send it."""
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        QApplication.sendEvent(widget, QMouseEvent(kind, where, Qt.LeftButton, Qt.LeftButton,
                                                   Qt.NoModifier))


class Probe:
    """A state machine stepped by a timer, so Krita's event loop never waits on the probe."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {"phase": "starting", "steps": []}
        self.step = self.wait_for_window
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.tick)
        self.deadline = time.monotonic() + 400
        self.clock = QElapsedTimer()
        self.late = QTimer()
        self.late.setInterval(10)
        self.late.timeout.connect(self._late_tick)
        self.worst, self.last, self.ticks = 0.0, 0, 0
        self.own_ms = 0  # time spent in the probe's own steps since the last late tick
        self.states: list[str] = []
        self.shown: list[tuple[int, dict[str, Any]]] = []
        self.late_events: list[tuple[int, int, str, str]] = []

    def start(self) -> None:
        self.timer.start()

    def _late_tick(self) -> None:
        now = self.clock.elapsed()
        if self.ticks:  # the probe's own steps (PNG saves, clicks) are not the plug-in's doing
            late = now - self.last - 10 - self.own_ms
            self.own_ms = 0
            self.worst = max(self.worst, late)
            if late > 30:  # what was going on (for diagnosis)
                self.late_events.append((late, now, self.states[-1] if self.states else "-",
                                         self.step.__name__))
        self.last = now
        self.ticks += 1

    def write(self) -> None:
        self.out["lateness_ms"] = self.worst
        self.out["lateness_ticks"] = self.ticks
        self.out["preview_states"] = self.states[-40:]
        self.out["late_events"] = self.late_events[-30:]
        if hasattr(self, "dock"):
            self.out["gui_ms"] = self.dock.preview.gui_ms
        RESULT.write_text(json.dumps(self.out, indent=1, default=str))

    def tick(self) -> None:
        try:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"probe timed out in step {self.step.__name__}")
            began = self.clock.elapsed() if self.clock.isValid() else 0
            next_step = self.step()
            if self.clock.isValid():
                self.own_ms += self.clock.elapsed() - began
            if next_step is not None:
                self.out["steps"].append(self.step.__name__)
                self.step = next_step
        except Exception as exc:
            self.out["phase"] = "ready"
            self.out["error"] = f"{type(exc).__name__}: {exc}"
            self.out["traceback"] = traceback.format_exc()
            self.step = self.wait_for_shot
        self.write()

    # ------------------------------------------------------------ screenshots

    def ask_for_shot(self, name: str, then: Any) -> Any:
        self.out["shot_request"] = name
        self.shot_then = then
        self.late.stop()  # xwd holds the X server, and Krita with it
        return self.wait_for_named_shot

    def wait_for_named_shot(self) -> Any:
        if not (DUMPS / f"{self.out['shot_request']}.done").exists():
            return None
        self.last = self.clock.elapsed()
        self.late.start()
        return self.shot_then

    def wait_for_shot(self) -> Any:
        self.out["phase"] = "ready"
        if (DUMPS / "final.done").exists():
            Krita.instance().activeWindow().qwindow().close()
            QApplication.quit()
        return None

    # ------------------------------------------------------------------ steps

    def wait_for_window(self) -> Any:
        window = Krita.instance().activeWindow()
        if window is None or not window.qwindow().isVisible():
            return None
        app = Krita.instance()
        self.out["krita"] = app.version()
        image = QImage(PHOTO).scaledToWidth(SIZE, Qt.SmoothTransformation).convertToFormat(
            QImage.Format_ARGB32)
        w, h = image.width(), image.height()
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        raw = bytes(bits)
        data = b"".join(raw[y * image.bytesPerLine(): y * image.bytesPerLine() + w * 4]
                        for y in range(h))
        doc = app.createDocument(w, h, "portrait", "RGBA", "U8", "", 72.0)
        window.addView(doc)
        node = doc.createNode("Photo", "paintlayer")
        doc.rootNode().addChildNode(node, None)
        node.setPixelData(QByteArray(data), 0, 0, w, h)
        doc.refreshProjection()
        self.doc, self.node = doc, node
        return self.find_docker

    def find_docker(self) -> Any:
        if self.doc.activeNode() is None or self.doc.activeNode().name() != "Photo":
            self.doc.setActiveNode(self.node)  # takes effect asynchronously
            return None
        window = Krita.instance().activeWindow()
        dockers = [d for d in window.dockers() if type(d).__name__ == "PortraitStyleDocker"]
        if not dockers:
            raise RuntimeError("the Portrait Style docker is not in the window")
        dock = self.dock = dockers[0]
        for other in window.dockers():  # the docker alone on the right, for the screenshot
            if other is not dock:
                other.setVisible(False)
        main = window.qwindow()
        main.setGeometry(main.screen().availableGeometry())
        dock.setVisible(True)
        dock.raise_()
        main.resizeDocks([dock], [440], Qt.Horizontal)
        self.read_knobs()
        self.out["tree_before"] = self.top_names()
        return self.reset_knobs

    def read_knobs(self) -> None:
        """What the knob widgets show: range, step, value, any "preset" text."""
        boxes = {}
        for name, widget in self.dock.knobs.widgets.items():
            if isinstance(widget, QDoubleSpinBox):
                boxes[name] = {"kind": "float", "low": widget.minimum(), "high": widget.maximum(),
                               "step": widget.singleStep(), "digits": widget.decimals(),
                               "value": widget.value(), "text": widget.text(),
                               "special": widget.specialValueText(),
                               "visible": widget.isVisibleTo(self.dock)}
            else:
                boxes[name] = {"kind": "bool", "value": widget.isChecked(),
                               "visible": widget.isVisibleTo(self.dock)}
        self.out["knobs"] = boxes
        self.out["buttons"] = sorted(b.objectName() for b in self.dock.findChildren(QPushButton)
                                     if b.objectName())
        self.out["advanced_folded"] = not self.dock.knobs.advanced_box.isChecked()

    def reset_knobs(self) -> Any:
        knobs = self.dock.knobs
        knobs.widgets["portrait-strength"].setValue(0.25)
        knobs.widgets["preserve-color"].setChecked(True)
        self.out["changed_values"] = knobs.values()
        reset = next(b for b in self.dock.findChildren(QPushButton)
                     if b.objectName() == "reset_knobs")
        reset.click()
        self.out["after_reset"] = knobs.values()
        self.out["options_controls"] = dict(self.dock.options().controls)
        return self.pick_from_gallery

    def pick_from_gallery(self) -> Any:
        """Click the painting's thumbnail in the gallery grid, as the mouse would."""
        gallery = self.dock.gallery
        self.out["gallery_count"] = gallery.count()
        self.out["gallery_error"] = gallery.error
        names = [p.name for p in gallery.paintings]
        row = names.index(PAINTING)
        item = gallery.item(row)
        gallery.scrollToItem(item)
        QApplication.processEvents()
        rect = gallery.visualItemRect(item)
        click(gallery.viewport(), rect.center())
        self.out["picked_path"] = str(self.dock.style_path)
        self.out["style_label"] = self.dock.style_name.text()
        self.out["gallery_tooltip"] = item.toolTip()
        return self.start_preview

    def start_preview(self) -> Any:
        live = self.dock.preview
        live.state.connect(self.states.append)
        live.shown.connect(lambda _b, _a, info: self.shown.append((self.clock.elapsed(), info)))
        self.clock.start()
        self.late.start()
        self.dock.scroll.ensureWidgetVisible(self.dock.preview_box, 0, 0)
        self.asked_at = self.clock.elapsed()
        self.dock.preview_box.setChecked(True)  # the group box's check: "Live preview" on
        return self.wait_first_preview

    def wait_first_preview(self) -> Any:
        if not self.shown:
            return None
        self.out["first_preview_ms"] = self.shown[0][0] - self.asked_at
        self.out["first_info"] = self.shown[0][1]
        self.save_preview("preview_first")
        return self.change_knob

    def save_preview(self, name: str) -> None:
        view = self.dock.preview_view
        view.after.save(str(DUMPS / f"{name}_after.png"))
        view.before.save(str(DUMPS / f"{name}_before.png"))
        self.out[f"{name}_size"] = [view.after.width(), view.after.height()]

    def change_knob(self) -> Any:
        """Five quick changes, as a drag through the spin box: only the last one counts."""
        self.count_before = len(self.shown)
        self.submitted_before = self.dock.preview.latest
        box = self.dock.knobs.widgets["background-strength"]
        for value in (0.9, 0.7, 0.5, 0.3, 0.0):
            box.setValue(value)
            QApplication.processEvents()
        self.asked_at = self.clock.elapsed()
        return self.wait_second_preview

    def wait_second_preview(self) -> Any:
        if len(self.shown) <= self.count_before:
            return None
        if self.dock.preview.session.busy:
            return None  # a later one is still coming: wait for the last
        self.out["second_preview_ms"] = self.shown[-1][0] - self.asked_at
        self.out["previews_shown"] = len(self.shown)
        self.out["requests_for_five_changes"] = self.dock.preview.latest - self.submitted_before
        self.out["second_controls"] = self.dock.options().controls
        self.save_preview("preview_second")
        self.out["tree_while_previewing"] = self.top_names()
        view = self.dock.preview_view
        view.grab().save(str(DUMPS / "view_split.png"))
        before = next(b for b in self.dock.findChildren(QPushButton)
                      if b.objectName() == "preview_before")
        before.click()
        view.grab().save(str(DUMPS / "view_before.png"))
        self.out["view_target"] = [view.target().x(), view.target().y(),
                                   view.target().width(), view.target().height()]
        before.click()
        self.out["preview_lateness_ms"] = self.worst
        self.out["preview_lateness_ticks"] = self.ticks
        scroll = self.dock.scroll  # the docker scrolls: show the preview in the screenshot
        scroll.ensureWidgetVisible(self.dock.preview_box, 0, 0)
        return self.ask_for_shot("preview", self.click_apply)

    def click_apply(self) -> Any:
        self.dock.preview_box.setChecked(False)
        self.busy: list[bool] = []
        self.messages: list[tuple[str, str]] = []
        self.dock.ctl.busy.connect(self.busy.append)
        self.dock.ctl.message.connect(lambda level, text: self.messages.append((level, text)))
        self.dock.apply_button.click()
        return self.wait_for_apply

    def wait_for_apply(self) -> Any:
        errors = [text for level, text in self.messages if level == "error"]
        if errors:
            raise RuntimeError(f"Apply failed: {errors}")
        if self.dock.ctl.running or not self.busy:
            return None
        self.out["groups"] = [g.name() for g in self.dock.ctl.results]
        self.out["tree"] = self.top_names()
        self.doc.waitForDone()
        w, h = self.doc.width(), self.doc.height()
        (DUMPS / "applied.bgra").write_bytes(bytes(self.doc.pixelData(0, 0, w, h)))
        self.out["doc_size"] = [w, h]
        from portrait_style_krita.styles import recent_styles

        self.out["recent_styles"] = recent_styles()
        return self.ask_for_shot("applied", self.finish)

    def finish(self) -> Any:
        self.doc.setModified(False)
        self.out["phase"] = "ready"
        return self.wait_for_shot

    def top_names(self) -> list[list[str]]:
        return [[n.name(), n.type()] for n in self.doc.rootNode().childNodes()]


class ProbeExtension(Extension):  # type: ignore[misc]
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.probe = Probe()

    def setup(self) -> None:
        self.probe.start()

    def createActions(self, window: Any) -> None:  # noqa: N802 - Krita's API name
        pass


Krita.instance().addExtension(ProbeExtension(Krita.instance()))
