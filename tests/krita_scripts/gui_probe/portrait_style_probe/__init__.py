"""Test-only Krita plug-in: drives the real Portrait Style docker in a real Krita window.

Installed next to portrait_style_krita by tests/test_krita.py, in a Krita
running under Xvfb. Once the main window exists it opens the portrait, finds
the docker and the actions, picks the painting, clicks Apply and then
"Re-run portrait" on the result group — the same clicks an artist makes —
while a 10 ms QTimer measures how late the event loop runs. It writes what it
saw to ``$PORTRAIT_STYLE_RESULT`` (phase "ready"), waits for the test to take
its screenshot (``$PROBE_SHOT_DONE`` appears), then quits Krita.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from krita import Extension, Krita  # type: ignore[import-not-found]
from PyQt5.QtCore import QByteArray, QElapsedTimer, Qt, QTimer
from PyQt5.QtGui import QImage
from PyQt5.QtWidgets import QApplication, QPushButton

RESULT = Path(os.environ.get("PORTRAIT_STYLE_RESULT", "/tmp/probe.json"))
SHOT_DONE = Path(os.environ.get("PROBE_SHOT_DONE", "/tmp/probe.shot"))
#: pixel dumps (what the artist sees) and screenshot hand-shakes go here
DUMPS = RESULT.parent
PHOTO = os.environ.get("PROBE_PHOTO", "")
STYLE = os.environ.get("PROBE_STYLE", "")
SIZE = int(os.environ.get("PROBE_SIZE", "384"))
ACTION_IDS = ("portrait_style_apply", "portrait_style_rerun_portrait",
              "portrait_style_rerun_background", "portrait_style_mask_from_selection",
              "portrait_style_selection_from_mask", "portrait_style_cancel")


class Probe:
    """A little state machine stepped by a timer, so Krita's event loop never waits on us."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {"phase": "starting", "steps": []}
        self.step = self.wait_for_window
        self.timer = QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.tick)
        self.deadline = time.monotonic() + 240
        self.clock = QElapsedTimer()
        self.late = QTimer()
        self.late.setInterval(10)
        self.late.timeout.connect(self._late_tick)
        self.worst = 0.0
        self.last = 0
        self.ticks = 0
        self.progress: list[tuple[str, float]] = []
        self.messages: list[tuple[str, str]] = []
        self.busy: list[bool] = []
        self.late_events: list[tuple[float, int, str, str]] = []
        self.marks: list[tuple[str, int]] = []
        self.bar_texts: list[str] = []

    def start(self) -> None:
        self.timer.start()

    def dump_view(self, name: str) -> None:
        """Save what the artist sees now: the projection once Krita is idle (never refreshed).

        The lateness clock pauses meanwhile: waiting here for Krita to finish (say, an
        Undo's re-render) blocks the loop by the probe's doing, not the plug-in's.
        """
        running = self.late.isActive()
        self.late.stop()
        self.doc.waitForDone()
        data = bytes(self.doc.pixelData(0, 0, self.doc.width(), self.doc.height()))
        (DUMPS / f"{name}.bgra").write_bytes(data)
        if running:
            self.last = self.clock.elapsed()
            self.late.start()

    def ask_for_shot(self, name: str, then: Any) -> Any:
        """Ask the test for a screenshot of the screen now; step ``then`` once it has it."""
        self.out["shot_request"] = name
        self.out["canvas_rect"] = self.canvas_rect()
        self.shot_then = then
        self.late.stop()  # xwd holds the X server, and Krita with it: not the plug-in's doing
        return self.wait_for_named_shot

    def wait_for_named_shot(self) -> Any:
        if not (DUMPS / f"{self.out['shot_request']}.done").exists():
            return None
        self.last = self.clock.elapsed()
        self.late.start()
        return self.shot_then

    def canvas_rect(self) -> list[int] | None:
        """Where the canvas widget is on the screen: [x, y, width, height]."""
        from PyQt5.QtCore import QPoint
        from PyQt5.QtWidgets import QWidget

        window = Krita.instance().activeWindow().qwindow()
        for widget in window.findChildren(QWidget):
            if widget.metaObject().className() in ("KisQPainterCanvas", "KisOpenGLCanvas2") \
                    and widget.isVisible():
                corner = widget.mapToGlobal(QPoint(0, 0))
                return [corner.x(), corner.y(), widget.width(), widget.height()]
        return None

    def _late_tick(self) -> None:
        now = self.clock.elapsed()
        if self.ticks:
            late = now - self.last - 10
            self.worst = max(self.worst, late)
            if late > 30:  # what was going on when the loop ran late (for diagnosis)
                stage = self.progress[-1][0] if self.progress else "-"
                self.late_events.append((late, now, stage, self.step.__name__))
        self.last = now
        self.ticks += 1

    def write(self) -> None:
        self.out["lateness_ms"] = self.worst
        self.out["lateness_ticks"] = self.ticks
        self.out["progress"] = self.progress[-40:]
        self.out["stages"] = sorted({p[0] for p in self.progress})
        self.out["messages"] = self.messages
        self.out["late_events"] = self.late_events[-20:]
        self.out["bar_texts"] = sorted(set(self.bar_texts))[:60]
        RESULT.write_text(json.dumps(self.out, indent=1))

    def tick(self) -> None:
        try:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"probe timed out in step {self.step.__name__}")
            next_step = self.step()
            if next_step is not None:
                self.out["steps"].append(self.step.__name__)
                self.step = next_step
        except Exception as exc:
            self.out["phase"] = "ready"
            self.out["error"] = f"{type(exc).__name__}: {exc}"
            self.out["traceback"] = traceback.format_exc()
            self.step = self.wait_for_shot
        self.write()

    # ------------------------------------------------------------------ steps

    def wait_for_window(self) -> Any:
        window = Krita.instance().activeWindow()
        if window is None or not window.qwindow().isVisible():
            return None
        app = Krita.instance()
        self.out["krita"] = app.version()
        self.out["actions"] = {a: app.action(a) is not None for a in ACTION_IDS}
        self.out["action_texts"] = {a: app.action(a).text() for a in ACTION_IDS
                                    if app.action(a) is not None}
        data, w, h = self.photo_bgra()
        doc = app.createDocument(w, h, "astronaut", "RGBA", "U8", "", 72.0)
        window.addView(doc)
        node = doc.createNode("Photo", "paintlayer")
        doc.rootNode().addChildNode(node, None)
        node.setPixelData(QByteArray(data), 0, 0, w, h)
        doc.refreshProjection()
        self.doc, self.node = doc, node
        return self.select_photo

    @staticmethod
    def photo_bgra() -> tuple[bytes, int, int]:
        image = QImage(PHOTO).scaledToWidth(SIZE, Qt.SmoothTransformation).convertToFormat(
            QImage.Format_ARGB32)
        w, h = image.width(), image.height()
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        raw = bytes(bits)
        data = b"".join(raw[y * image.bytesPerLine(): y * image.bytesPerLine() + w * 4]
                        for y in range(h))
        return data, w, h

    def select_photo(self) -> Any:
        self.doc.setActiveNode(self.node)  # takes effect asynchronously (NOTES-hosts)
        return self.find_docker

    def find_docker(self) -> Any:
        if self.doc.activeNode() is None or self.doc.activeNode().name() != "Photo":
            self.doc.setActiveNode(self.node)
            return None
        window = Krita.instance().activeWindow()
        dockers = [d for d in window.dockers() if type(d).__name__ == "PortraitStyleDocker"]
        self.out["docker_found"] = bool(dockers)
        if not dockers:
            raise RuntimeError("the Portrait Style docker is not in the window")
        dock = dockers[0]
        # room for the screenshot: only the layer panel and the docker on the right
        for other in window.dockers():
            if other.objectName() not in ("KisLayerBox",) and other is not dock:
                other.setVisible(False)
        main = window.qwindow()  # no window manager under Xvfb: fill the screen by hand
        main.setGeometry(main.screen().availableGeometry())
        dock.setVisible(True)
        dock.raise_()
        self.dock = dock
        self.out["docker_title"] = dock.windowTitle()
        self.out["buttons"] = sorted(b.objectName() for b in dock.findChildren(QPushButton)
                                     if b.objectName())
        dock.set_style(Path(STYLE))
        self.out["style_label"] = dock.style_name.text()
        pixmap = dock.style_thumb.pixmap()
        self.out["thumbnail_size"] = [pixmap.width(), pixmap.height()] if pixmap else None
        ctl = dock.ctl
        ctl.progress.connect(lambda stage, frac: self.progress.append(
            (stage, frac, self.clock.elapsed())))
        # what the progress bar itself shows (the docker's slot ran first: it connected first)
        ctl.progress.connect(lambda *_: self.bar_texts.append(dock.progress.text()))
        self.out["chooser_folder"] = str(dock.chooser_folder())
        ctl.message.connect(lambda level, text: self.messages.append((level, text)))
        ctl.busy.connect(self.busy.append)
        self.clock.start()
        self.late.start()
        self.baseline_until = time.monotonic() + 2.0
        return self.measure_baseline

    def measure_baseline(self) -> Any:
        """Two idle seconds first: how late the loop runs on this machine with no job."""
        if time.monotonic() < self.baseline_until:
            return None
        self.out["baseline_lateness_ms"] = self.worst
        self.out["baseline_ticks"] = self.ticks
        self.tree_before = self.top_names()
        self.dock.apply_button.click()  # and at once Cancel, as an artist changing their mind
        self.out["cancel_enabled_while_busy"] = self.dock.cancel_button.isEnabled()
        self.dock.cancel_button.click()
        return self.wait_for_cancel

    def wait_for_cancel(self) -> Any:
        if self.dock.ctl.running or not self.busy:
            return None
        self.out["cancel_message"] = self.dock.message_label.text()
        self.out["tree_after_cancel_same"] = self.top_names() == self.tree_before
        self.out["apply_enabled_after_cancel"] = self.dock.apply_button.isEnabled()
        self.try_damaged_painting()
        self.dump_view("gui_photo")
        return self.ask_for_shot("before_apply", self.click_apply)

    def try_damaged_painting(self) -> None:
        """Apply with a painting cut short (a JPEG cut at 30 kB): refused in the docker's words."""
        cut = DUMPS / "cut_painting.jpg"
        cut.write_bytes(Path(STYLE).read_bytes()[:30_000])
        before = self.top_names()
        self.messages.clear()
        self.dock.set_style(cut)
        where = self.apply_at()
        self.dock.apply_button.click()
        QApplication.processEvents()  # let the layout react to the message, if it would
        area = self.dock.message_area
        self.out["damaged"] = {"messages": list(self.messages),
                               "label": self.dock.message_label.text(),
                               "started": self.dock.ctl.running,
                               "tree_same": self.top_names() == before,
                               "apply_moved": self.apply_at() != where,
                               "label_width": self.dock.message_label.width(),
                               "area_width": area.viewport().width(),
                               "area_right": area.geometry().right(),
                               "docker_width": self.dock.widget().width()}
        self.out["damaged"]["wraps_inside"] = (
            self.dock.message_label.width() <= area.viewport().width()
            and area.mapTo(self.dock, area.rect().topRight()).x() < self.dock.width())
        if self.dock.ctl.running:
            self.dock.ctl.cancel()
        self.dock.set_style(Path(STYLE))

    def apply_at(self) -> list[int]:
        """Where Apply is on the screen (it must not move when a message appears)."""
        from PyQt5.QtCore import QPoint

        corner = self.dock.apply_button.mapToGlobal(QPoint(0, 0))
        return [corner.x(), corner.y(), self.dock.apply_button.width(),
                self.dock.apply_button.height()]

    def click_apply(self) -> Any:
        self.busy.clear()
        self.messages.clear()
        self.worst, self.ticks = 0.0, 0
        self.late_events.clear()
        self.applied_at = time.monotonic()
        self.dock.apply_button.click()
        return self.wait_for_apply

    def wait_for_apply(self) -> Any:
        errors = [text for level, text in self.messages if level == "error"]
        if errors:
            raise RuntimeError(f"Apply failed: {errors}")
        if self.dock.ctl.running or not self.busy:
            return None
        self.out["apply_s"] = time.monotonic() - self.applied_at
        results = self.dock.ctl.results
        self.out["groups"] = [g.name() for g in results]
        if not results:
            raise RuntimeError(f"Apply made no group: {self.messages}")
        self.group = results[0]
        self.out["tree"] = self.top_names()
        self.dump_view("gui_apply")
        self.late.stop()  # the comparison below is the probe's own work (resumed after the shot)
        self.out["group_thumbnail"] = self.thumbnail_levels()
        return self.ask_for_shot("after_apply", self.undo_apply)

    def undo_apply(self) -> Any:
        Krita.instance().action("edit_undo").trigger()  # Apply must be ONE undo step
        return self.check_undo_apply

    def thumbnail_levels(self) -> float:
        """Mean level difference between the group's thumbnail and the canvas's pixels."""
        w, h = self.doc.width(), self.doc.height()
        image = self.group.thumbnail(w, h).convertToFormat(QImage.Format_ARGB32)
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        raw, stride = bytes(bits), image.bytesPerLine()
        thumb = b"".join(raw[y * stride: y * stride + w * 4] for y in range(h))
        self.doc.waitForDone()
        seen = bytes(self.doc.pixelData(0, 0, w, h))
        step = 4 * 7  # every 7th pixel is plenty to tell a blank thumbnail from the result
        pairs = [(thumb[i + c], seen[i + c]) for i in range(0, len(seen) - 3, step)
                 for c in range(3)]
        return sum(abs(a - b) for a, b in pairs) / len(pairs)

    def history_texts(self) -> list[str]:
        """The commands Krita's Undo History docker lists, oldest first."""
        from PyQt5.QtCore import QModelIndex
        from PyQt5.QtWidgets import QListView

        for docker in Krita.instance().activeWindow().dockers():
            if docker.objectName() != "History":
                continue
            for view in docker.findChildren(QListView):
                model = view.model()
                if model is not None:
                    return [str(model.data(model.index(r, 0)))
                            for r in range(model.rowCount(QModelIndex()))]
        return []

    def top_names(self) -> list[tuple[str, str]]:
        return [(n.name(), n.type()) for n in self.doc.rootNode().childNodes()]

    def check_undo_apply(self) -> Any:
        self.out["tree_after_undo"] = self.top_names()
        self.dump_view("gui_undo")
        Krita.instance().action("edit_redo").trigger()
        return self.check_redo_apply

    def check_redo_apply(self) -> Any:
        self.out["tree_after_redo"] = self.top_names()
        self.dump_view("gui_redo")
        self.doc.setActiveNode(self.group)
        self.rerun_wait = time.monotonic()
        return self.wait_group_tools

    def portrait_bytes(self) -> bytes:
        for child in self.group.childNodes():
            if child.name() == "Portrait":
                r = child.bounds()
                return bytes(child.pixelData(r.x(), r.y(), r.width(), r.height()))
        return b""

    def wait_group_tools(self) -> Any:
        button = self.dock.group_buttons["rerun_portrait"]
        if not button.isEnabled():
            if time.monotonic() - self.rerun_wait > 10:
                raise RuntimeError("Re-run portrait never enabled on the result group")
            self.doc.setActiveNode(self.group)
            return None
        self.out["group_tools_enabled"] = {k: b.isEnabled()
                                           for k, b in self.dock.group_buttons.items()}
        self.busy.clear()
        for child in self.group.childNodes():  # the artist touches up the Portrait layer
            if child.name() == "Portrait":
                child.setPixelData(QByteArray(bytes([0, 0, 255, 255]) * 64), 20, 20, 8, 8)
                # …and paints its mask white in the top-left quarter (the portrait shows there)
                mask = next(m for m in child.childNodes() if m.type() == "transparencymask")
                w, h = self.doc.width(), self.doc.height()
                mask.setPixelData(QByteArray(b"\xff" * ((w // 4) * (h // 4))), 0, 0,
                                  w // 4, h // 4)
                (DUMPS / "gui_mask.gray").write_bytes(bytes(mask.pixelData(0, 0, w, h)))
        self.portrait_before = self.portrait_bytes()
        button.click()
        self.rerun_at = time.monotonic()
        return self.wait_for_rerun

    def wait_for_rerun(self) -> Any:
        if self.dock.ctl.running or not self.busy:
            return None
        self.late.stop()
        self.out["rerun_s"] = time.monotonic() - self.rerun_at
        self.out["rerun_groups"] = [g.name() for g in self.dock.ctl.results]
        self.out["recent_styles"] = [self.dock.recent.item(i).toolTip()
                                     for i in range(self.dock.recent.count())]
        self.out["status_line"] = self.dock.status_label.text()
        self.out["progress_format"] = self.dock.progress.format()
        self.out["message_line"] = self.dock.message_label.text()
        self.doc.waitForDone()  # the re-run's commands have landed before the first Ctrl+Z
        self.dump_view("gui_rerun")
        self.portrait_rerun = self.portrait_bytes()
        self.out["rerun_changed_portrait"] = self.portrait_rerun != self.portrait_before
        self.undos = 0
        return self.undo_rerun

    def undo_rerun(self) -> Any:
        """Ctrl+Z after a re-run brings the previous Portrait back (two steps in Krita)."""
        names = [c.name() for c in self.group.childNodes()]
        if (names == ["Background", "Portrait"] and self.portrait_bytes()
                == self.portrait_before) or self.undos >= 4:
            self.out["rerun_undo_steps"] = self.undos
            self.out["rerun_undo_restores"] = self.portrait_bytes() == self.portrait_before
            self.out["rerun_undo_children"] = [c.name() for c in self.group.childNodes()]
            return self.redo_rerun
        if self.undos == 0:
            self.out["history"] = self.history_texts()
        Krita.instance().action("edit_undo").trigger()
        self.doc.waitForDone()  # look only once Krita has applied it, or the count runs ahead
        self.undos += 1
        return None

    def redo_rerun(self) -> Any:
        """Redo back to the re-run's result, for the screenshot."""
        if self.undos == 0:
            self.out["rerun_redo_restores"] = self.portrait_bytes() == self.portrait_rerun
            return self.finish
        Krita.instance().action("edit_redo").trigger()
        self.doc.waitForDone()
        self.undos -= 1
        return None

    def finish(self) -> Any:
        self.out["phase"] = "ready"
        self.out["dockers"] = [d.objectName() for d in
                               Krita.instance().activeWindow().dockers() if d.isVisible()]
        self.doc.setActiveNode(self.group)
        view = Krita.instance().activeWindow().activeView()
        if view is not None and view.canvas() is not None:
            view.canvas().setZoomLevel(1.0)
        # for the README's screenshot: the docker wide and tall enough to read, the layer
        # panel above it still showing the new group
        main = Krita.instance().activeWindow().qwindow()
        layers = [d for d in Krita.instance().activeWindow().dockers()
                  if d.objectName() == "KisLayerBox"]
        main.resizeDocks([self.dock], [400], Qt.Horizontal)
        if layers:
            main.resizeDocks(layers + [self.dock], [230, 650], Qt.Vertical)
        return self.wait_for_shot

    def wait_for_shot(self) -> Any:
        if not SHOT_DONE.exists():
            return None
        if "cmyk_history_added" not in self.out and "error" not in self.out:
            return self.open_cmyk
        self.timer.stop()
        for doc in Krita.instance().documents():
            doc.setModified(False)
        Krita.instance().action("file_quit").trigger()
        return None


    def open_cmyk(self) -> Any:
        """After the screenshot: a CMYK document in its own view, the photo in it."""
        app = Krita.instance()
        data, w, h = self.photo_bgra()
        doc = app.createDocument(w, h, "cmyk", "CMYKA", "U8", "", 72.0)
        app.activeWindow().addView(doc)
        node = doc.createNode("Photo", "paintlayer")
        node.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
        node.setPixelData(QByteArray(data), 0, 0, w, h)
        doc.rootNode().addChildNode(node, None)
        doc.setActiveNode(node)
        doc.waitForDone()
        self.cmyk_doc, self.cmyk_node = doc, node
        return self.apply_cmyk

    def apply_cmyk(self) -> Any:
        """Apply there: converted in a scratch document, so still ONE entry in the history."""
        import portrait_style_krita

        before = self.history_texts()
        portrait_style_krita.apply(self.cmyk_doc, self.cmyk_node, STYLE)
        self.cmyk_doc.waitForDone()
        self.cmyk_before = before
        return self.check_cmyk

    def check_cmyk(self) -> Any:
        after = self.history_texts()
        self.out["cmyk_history_added"] = after[len(self.cmyk_before):]
        self.cmyk_doc.setModified(False)
        return self.wait_for_shot


class ProbeExtension(Extension):  # type: ignore[misc]
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.probe = Probe()

    def setup(self) -> None:
        self.probe.start()

    def createActions(self, window: Any) -> None:  # noqa: N802 - Krita's API name
        pass


Krita.instance().addExtension(ProbeExtension(Krita.instance()))
