"""Live preview in the GIMP dialog: the core's ``PreviewSession`` driven by the dialog's config.

Why this shape: every change of the painting or a knob changes the dialog's
``GimpProcedureConfig``; its "notify" signal starts a short timer (so a slider
being dragged asks once it rests, not forty times), then the current choice is
submitted to the session — latest wins, the stale one is cancelled on the
daemon. The session reports on its worker thread; those events go into a
queue that a GLib timeout on GIMP's main thread drains, so the dialog never
waits on the daemon and GIMP never freezes. Nothing is written to the image:
the photo is read once (the selected layer, as Apply reads it), the preview
is drawn in the dialog only.

Importing this module imports the wire libraries (through ``runner``), so the
dialog imports it when it opens, never at GIMP's start-up.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

from gi.repository import Gimp, GLib  # noqa: E402  (runner required Gimp 3.0)

from . import knob_args, runner  # runner first: it puts the bundled wire libraries in reach
from ._core.plugin import job as jobs  # noqa: E402
from ._core.plugin.core import StylizeOptions  # noqa: E402
from ._core.plugin.explain import explain  # noqa: E402
from ._core.plugin.preview import DONE, FAILED, RUNNING, PreviewEvent, PreviewSession  # noqa: E402
from ._core.plugin.stages import describe  # noqa: E402
from .document import GimpDocument  # noqa: E402
from .preview_area import SIZE, PreviewArea, pixbuf_of  # noqa: E402

__all__ = ["LivePreview"]

#: how long the controls must rest before a preview is asked for
SETTLE_MS = 250
#: how often GIMP's main thread looks for the session's events
POLL_MS = 50


class LivePreview:
    """Keeps ``area`` showing the preview of ``layer`` for the dialog's current ``config``.

    log: a file to append one JSON line per finished preview to (GUI tests), or None.
    """

    def __init__(self, config: Any, image: Any, layer: Any, area: PreviewArea,
                 log: Path | None = None) -> None:
        self.config, self.image, self.layer, self.area, self.log = (config, image, layer,
                                                                    area, log)
        self.controls = knob_args.table()
        self.events: queue.Queue[PreviewEvent] = queue.Queue()
        self.session: PreviewSession | None = None
        self.source: Any = None
        self.styles: dict[str, Any] = {}
        self.asked: dict[int, dict[str, Any]] = {}
        self.latest = 0
        self._endpoint = ""
        self._settle: int | None = None
        self._poll: int | None = None
        self._handler = config.connect("notify", self._changed)
        self.area.show_photo(self._before())

    # ----------------------------------------------------------------- main thread

    def start(self) -> None:
        """Begin polling and ask for the first preview."""
        self._poll = GLib.timeout_add(POLL_MS, self._drain)
        self._changed()

    def close(self) -> None:
        """Stop the timers and the session (the dialog is closing)."""
        self.config.disconnect(self._handler)
        for source in (self._settle, self._poll):
            if source is not None:
                GLib.source_remove(source)
        self._settle = self._poll = None
        if self.session is not None:
            self.session.close(timeout_s=0.5)

    def _changed(self, *_args: Any) -> None:
        if self._settle is not None:
            GLib.source_remove(self._settle)
        self._settle = GLib.timeout_add(SETTLE_MS, self._submit)

    def _before(self) -> Any:
        """The photo at the pane's size, from GIMP's own thumbnail of the layer."""
        try:
            return self.layer.get_thumbnail(SIZE, SIZE, Gimp.PixbufTransparency.KEEP_ALPHA)
        except Exception:  # an odd drawable: the pane shows the preview alone
            return None

    def _submit(self) -> bool:
        self._settle = None
        style = self.config.get_property("style")
        path = style.get_path() if style is not None else None
        if not path:
            self.area.set_status("Choose a painting to see the preview.")
            return False
        try:
            if path not in self.styles:
                self.styles[path] = runner.load_style(Path(path))
            if self.source is None:
                document = GimpDocument(self.image, [self.layer])
                self.source = document.read_layer(jobs.stylize_source(document, self.layer))
            endpoint = (self.config.get_property(knob_args.ENDPOINT) or "").strip()
            if self.session is not None and endpoint != self._endpoint:
                self.session.close(timeout_s=0.0)  # the artist pointed at another daemon
                self.session = None
            if self.session is None:
                connection = jobs.Connection(endpoint=endpoint or None, start_daemon=True)
                self.session = PreviewSession(self.events.put, connection, SIZE)
                self._endpoint = endpoint
            chosen = knob_args.values(self.config, self.controls)
            options = StylizeOptions(style_path=Path(path), controls=chosen)
            ticket = self.session.submit(self.source, self.styles[path], options)
        except Exception as exc:  # a painting GIMP cannot open, a knob out of range…
            self.area.set_status(explain(exc))
            return False
        self.latest = ticket
        self.asked[ticket] = {"style": path, "controls": chosen, "asked": time.monotonic()}
        self.area.set_status("Preview: sending…")
        return False

    def _drain(self) -> bool:
        """GLib timeout: show what the session reported since the last look."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return True
            if event.ticket != self.latest:
                continue  # an older request's news: a newer one is on its way
            if event.state == RUNNING:
                self.area.set_status(f"Preview: {describe(_Progress(event))}")
            elif event.state == DONE and event.image is not None:
                after = pixbuf_of(event.image)
                self.area.show_result(self._before(), after)
                self.area.set_status(f"Preview {after.get_width()} × {after.get_height()} — "
                                     "left of the line: your photo. Nothing is added to the "
                                     "image until OK.")
                self._record(event)
            elif event.state == FAILED:
                self.area.set_status(f"No preview: {event.message}")

    def _record(self, event: PreviewEvent) -> None:
        if self.log is None:
            return
        asked = self.asked.get(event.ticket, {})
        line = {"ticket": event.ticket, "style": asked.get("style"),
                "controls": asked.get("controls"), "width": event.image.width,
                "height": event.image.height,
                "seconds": round(time.monotonic() - asked.get("asked", time.monotonic()), 3)}
        with self.log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


class _Progress:
    """A preview's progress in the shape ``stages.describe`` reads."""

    def __init__(self, event: PreviewEvent) -> None:
        self.state, self.stage, self.fraction, self.position = ("running", event.stage,
                                                                event.fraction, None)
