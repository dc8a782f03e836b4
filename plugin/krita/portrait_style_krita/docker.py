"""The "Portrait Style" docker: widgets only; the ``Controller`` does the work.

Layout, top to bottom, in the spirit of Krita AI Diffusion's docker: the
daemon's status line; the chosen painting (thumbnail, name, "Your own file…"),
the recent paintings as a strip of thumbnails and the shipped gallery as a
grid; the knobs, built from the core's knob table and starting at their
defaults (``knob_widgets``); the live preview (``preview_panel``); Apply / Cancel with a
progress bar that says in words what is happening; the result-group tools
(re-run, mask ↔ selection), enabled only when a result group is selected;
and a message area for notices and errors in plain words.

Nothing moves under the artist's pointer: the status line and the message
area have fixed heights (a long message wraps at the docker's width and
scrolls inside its area), so the docker's size never depends on what it
says — a growing message used to make Krita lay the docker out again and
push Apply away just as it was clicked. The status line asks the daemon
again every few seconds, so a daemon that died is shown as such.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from krita import DockWidget  # type: ignore[import-not-found]

from .controller import DockerOptions, active_document_and_nodes, controller
from .gallery_picker import GalleryPicker
from .knob_widgets import KnobPanel
from .preview_panel import LivePreview, PreviewView
from .qt import (
    ALIGN_TOP,
    ICON_MODE,
    NO_FRAME,
    PICTURES,
    PLAIN_TEXT,
    SCROLL_OFF,
    TEXT_SELECTABLE,
    QIcon,
    QPixmap,
    QSize,
    Qt,
    QtCore,
    QTimer,
    QtWidgets,
    enum,
)
from .styles import recent_styles, thumbnail

__all__ = ["PortraitStyleDocker", "DOCKER_ID", "DOCKER_TITLE"]

DOCKER_ID = "portrait_style_docker"
DOCKER_TITLE = "Portrait Style"
_THUMB = 48
#: = record.RECORD_NAME; spelled out so enabling buttons never imports the core
_RECORD_PREFIX = "portrait-style-job/"
_LEVEL_COLOURS = {"info": "", "warning": "color: #c08000;", "error": "color: #d04040;"}
#: how often the status line asks the daemon (ms): a dead daemon shows within this
STATUS_EVERY_MS = 3000
#: lines of text the message area shows before it scrolls
MESSAGE_LINES = 5


class PortraitStyleDocker(DockWidget):  # type: ignore[misc]
    """One docker per Krita window; all of them drive the one ``Controller``."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self.setObjectName(DOCKER_ID)
        self.style_path: Path | None = None
        self.ctl = controller()
        self._build()
        self.ctl.busy.connect(self._on_busy)
        self.ctl.progress.connect(self._on_progress)
        self.ctl.message.connect(self._on_message)
        self.ctl.status.connect(self.status_label.setText)
        self._poll = QTimer(self)
        self._poll.setInterval(500)
        self._poll.timeout.connect(self._update_group_tools)
        self._poll.start()
        self._status_poll = QTimer(self)
        self._status_poll.setInterval(STATUS_EVERY_MS)
        self._status_poll.timeout.connect(self._refresh_status_if_idle)
        self._status_poll.start()
        self._load_recent()
        self.ctl.refresh_status()

    def _refresh_status_if_idle(self) -> None:
        """While no job runs (a job reports its own trouble) and the docker is shown."""
        if self.isVisible() and not self.ctl.running:
            self.ctl.refresh_status()

    # ----------------------------------------------------------------- build

    def _build(self) -> None:
        root = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(root)
        layout.setContentsMargins(4, 4, 4, 4)

        status_row = QtWidgets.QHBoxLayout()
        self.status_label = QtWidgets.QLabel("Daemon: checking…")
        self.status_label.setObjectName("status")
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: gray;")
        self.status_label.setAlignment(ALIGN_TOP)
        lines = self.status_label.fontMetrics().lineSpacing()
        self.status_label.setFixedHeight(2 * lines + 4)  # the line never changes height
        refresh = QtWidgets.QToolButton()
        refresh.setText("⟳")
        refresh.setToolTip("Ask the daemon again (endpoint, device, engine)")
        refresh.clicked.connect(self.ctl.refresh_status)
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(refresh)
        layout.addLayout(status_row)

        style_box = QtWidgets.QGroupBox("Style painting")
        style_layout = QtWidgets.QVBoxLayout(style_box)
        pick_row = QtWidgets.QHBoxLayout()
        self.style_thumb = QtWidgets.QLabel()
        self.style_thumb.setFixedSize(_THUMB, _THUMB)
        self.style_name = QtWidgets.QLabel("No painting chosen")
        self.style_name.setWordWrap(True)
        choose = QtWidgets.QPushButton("Your own file…")
        choose.setObjectName("choose_style")
        choose.setToolTip("Pick a painting of your own (any image file) as the style")
        choose.clicked.connect(self._choose_style)
        pick_row.addWidget(self.style_thumb)
        pick_row.addWidget(self.style_name, 1)
        pick_row.addWidget(choose)
        style_layout.addLayout(pick_row)
        self.recent = QtWidgets.QListWidget()
        self.recent.setObjectName("recent_styles")
        self.recent.setViewMode(ICON_MODE)
        self.recent.setIconSize(QSize(_THUMB, _THUMB))
        self.recent.setFixedHeight(_THUMB + 12)
        self.recent.setWrapping(False)
        self.recent.setToolTip("Recently used paintings")
        self.recent.itemClicked.connect(lambda item: self.set_style(Path(item.toolTip())))
        style_layout.addWidget(self.recent)
        self.gallery = GalleryPicker()
        self.gallery.picked.connect(self.set_style)
        style_layout.addWidget(QtWidgets.QLabel("Gallery"))
        style_layout.addWidget(self.gallery)
        layout.addWidget(style_box)

        self.knobs = _knob_panel(layout)
        self.preview = _add_preview(self, layout)

        run_row = QtWidgets.QHBoxLayout()
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setObjectName("apply")
        self.apply_button.setToolTip("Restyle the active layer (or each selected layer)")
        self.apply_button.clicked.connect(self._apply)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.ctl.cancel)
        run_row.addWidget(self.apply_button, 1)
        run_row.addWidget(self.cancel_button)
        layout.addLayout(run_row)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        layout.addWidget(self.progress)

        group_box = QtWidgets.QGroupBox("Selected result group")
        grid = QtWidgets.QGridLayout(group_box)
        self.group_buttons: dict[str, QtWidgets.QPushButton] = {}
        for index, (name, text, tip, slot) in enumerate((
                ("rerun_portrait", "Re-run portrait", "Restyle the person again, keeping the "
                 "mask you painted", lambda: self.ctl.rerun("portrait")),
                ("rerun_background", "Re-run background", "Restyle the background again, "
                 "keeping the mask", lambda: self.ctl.rerun("background")),
                ("mask_from_selection", "Mask from selection", "The active selection becomes "
                 "the Portrait layer's mask", self.ctl.mask_from_selection),
                ("selection_from_mask", "Selection from mask", "Select what the Portrait "
                 "layer's mask shows", self.ctl.selection_from_mask))):
            button = QtWidgets.QPushButton(text)
            button.setObjectName(name)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            button.setEnabled(False)
            grid.addWidget(button, index // 2, index % 2)
            self.group_buttons[name] = button
        layout.addWidget(group_box)

        self.message_label = QtWidgets.QLabel("")
        self.message_label.setObjectName("message")
        self.message_label.setWordWrap(True)
        self.message_label.setTextFormat(PLAIN_TEXT)
        self.message_label.setTextInteractionFlags(TEXT_SELECTABLE)
        self.message_label.setAlignment(ALIGN_TOP)
        # a fixed-height area: the text wraps at the docker's width and scrolls when longer
        self.message_area = QtWidgets.QScrollArea()
        self.message_area.setObjectName("message_area")
        self.message_area.setWidgetResizable(True)
        self.message_area.setHorizontalScrollBarPolicy(SCROLL_OFF)
        self.message_area.setFrameShape(NO_FRAME)
        self.message_area.setWidget(self.message_label)
        lines = self.message_label.fontMetrics().lineSpacing()
        self.message_area.setFixedHeight(MESSAGE_LINES * lines + 6)
        layout.addStretch(1)
        scroll = QtWidgets.QScrollArea()  # a short screen scrolls the docker, never squeezes it
        scroll.setObjectName("docker_scroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(SCROLL_OFF)
        scroll.setFrameShape(NO_FRAME)
        scroll.setWidget(root)
        self.scroll = scroll
        # the message area sits below the scrolling part, as wide as the docker itself: a
        # message is always in view and wraps at the docker's edge, even when the rows
        # above are wider than a narrow docker and scrolled
        outer = QtWidgets.QWidget(self)
        outer_layout = QtWidgets.QVBoxLayout(outer)
        outer_layout.setContentsMargins(0, 0, 0, 4)
        outer_layout.addWidget(scroll, 1)
        outer_layout.addWidget(self.message_area)
        self.setWidget(outer)

    # ----------------------------------------------------------------- style

    def _choose_style(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a style painting", str(self.chooser_folder()),
            "Images (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.bmp)")
        if path:
            self.set_style(Path(path))

    def chooser_folder(self) -> Path:
        """Where the painting chooser opens: the last painting's folder, else Pictures, else home.

        (An empty start folder made Qt's dialog open at ``/``.)
        """
        candidates: list[Path] = []
        if self.style_path is not None:
            candidates.append(Path(self.style_path).parent)
        with contextlib.suppress(Exception):  # kritarc unreadable: the other places remain
            candidates += [Path(p).parent for p in recent_styles()]
        pictures = QtCore.QStandardPaths.writableLocation(PICTURES)
        if pictures:
            candidates.append(Path(pictures))
        candidates.append(Path.home())
        return next((c for c in candidates if c.is_dir()), Path.home())

    def set_style(self, path: Path) -> None:
        from .styles import preload

        self.style_path = path
        image = thumbnail(path, _THUMB)
        self.style_thumb.setPixmap(QPixmap.fromImage(image) if not image.isNull() else QPixmap())
        self.style_name.setText(_readable(path))
        self.style_name.setToolTip(str(path))
        painting = self.gallery.painting_for(path)
        if painting is not None:  # a gallery painting is named by its title
            self.style_name.setText(painting.title)
            self.style_name.setToolTip(painting.label)
        preload(path)
        self.preview.request()

    def _load_recent(self) -> None:
        self.recent.clear()
        try:
            paths = recent_styles()
        except Exception:
            paths = []
        for path in paths:
            item = QtWidgets.QListWidgetItem(QIcon(QPixmap.fromImage(thumbnail(path, _THUMB))),
                                             "")
            item.setToolTip(path)
            self.recent.addItem(item)
        if paths and self.style_path is None:
            self.set_style(Path(paths[0]))

    # ------------------------------------------------------------------- run

    def options(self) -> DockerOptions:
        """What Apply sends: the painting and every knob's value as shown."""
        values = self.knobs.values() if self.knobs is not None else {}
        return DockerOptions(style_path=self.style_path, controls=values)

    def _apply(self) -> None:
        self.message_label.setText("")
        self.ctl.apply(self.options())
        self._load_recent()  # the painting just used moves to the front

    def _on_busy(self, busy: bool) -> None:
        self.apply_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
        self._update_group_tools()

    def _on_progress(self, words: str, fraction: float) -> None:
        """``words``: the whole line, percentage included ("painting… 40 %")."""
        if fraction < 0:
            self.progress.setRange(0, 0)  # busy indicator: the daemon gives no fraction
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(words)  # its "40 %" is no %p/%v/%m template: shown as it is

    def _on_message(self, level: str, text: str) -> None:
        self.message_label.setStyleSheet(_LEVEL_COLOURS.get(level, ""))
        self.message_label.setText(text)

    def _update_group_tools(self) -> None:
        """Enable the result-group buttons when a result group (or its layer) is active."""
        enabled = False
        if not self.ctl.running and self.isVisible():
            try:
                document, _ = active_document_and_nodes()
                node = document.activeNode() if document is not None else None
                enabled = node is not None and _in_result_group(document, node)
            except Exception:
                enabled = False
        for button in self.group_buttons.values():
            button.setEnabled(enabled)

    def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 - Krita's API name
        self._update_group_tools()


def _in_result_group(document: Any, node: Any) -> bool:
    """Cheap test (no core import): a group up the tree has a job-record annotation."""
    types = set(document.annotationTypes() or [])
    while node is not None:
        if node.type() == "grouplayer" and \
                _RECORD_PREFIX + node.uniqueId().toString() in types:
            return True
        node = node.parentNode()
    return False


def _readable(path: Path) -> str:
    try:
        from .runtime import core

        return core()["core"].readable_style_name(path)
    except Exception:
        return path.stem


def _knob_panel(layout: QtWidgets.QVBoxLayout) -> KnobPanel | None:
    """The knob widgets from the knob table; a line saying why when the core is missing."""
    try:
        panel = KnobPanel()
    except Exception as exc:  # the bundled core is missing: Apply reports it in words
        layout.addWidget(QtWidgets.QLabel(f"Controls unavailable: {exc}"))
        return None
    layout.addWidget(panel)
    return panel


def _add_preview(dock: PortraitStyleDocker, layout: QtWidgets.QVBoxLayout) -> LivePreview:
    """The live preview: on/off, the before|after view with its split, a state line."""
    box = QtWidgets.QGroupBox("Live preview")
    box.setObjectName("live_preview")
    box.setCheckable(True)
    box.setChecked(False)
    box.setToolTip("Restyle a small copy of the active layer (or the selection) after every "
                   "change; nothing is written to the image until Apply")
    inner = QtWidgets.QVBoxLayout(box)
    dock.preview_view = PreviewView()
    dock.preview_view.setFixedHeight(200)
    inner.addWidget(dock.preview_view)
    row = QtWidgets.QHBoxLayout()
    split = QtWidgets.QSlider(enum(Qt, "Orientation", "Horizontal"))
    split.setObjectName("preview_split")
    split.setRange(0, 100)
    split.setValue(50)
    split.setToolTip("Before on the left of the line, after on the right")
    split.valueChanged.connect(dock.preview_view.set_split)
    before = QtWidgets.QPushButton("Before")
    before.setObjectName("preview_before")
    before.setCheckable(True)
    before.setToolTip("Show the layer as it is (toggle)")
    before.toggled.connect(dock.preview_view.set_only_before)
    row.addWidget(split, 1)
    row.addWidget(before)
    inner.addLayout(row)
    dock.preview_state = QtWidgets.QLabel("Live preview off")
    dock.preview_state.setObjectName("preview_state")
    dock.preview_state.setStyleSheet("color: gray;")
    inner.addWidget(dock.preview_state)
    layout.addWidget(box)
    live = LivePreview(lambda: (dock.style_path, dock.knobs.values() if dock.knobs else {}), dock)
    live.shown.connect(lambda b, a, _info: dock.preview_view.set_images(b, a))
    live.state.connect(dock.preview_state.setText)
    box.toggled.connect(live.set_enabled)
    if dock.knobs is not None:
        dock.knobs.changed.connect(live.request)
    dock.preview_box = box
    return live
