"""The "Portrait Style" docker: widgets only; the ``Controller`` does the work.

Layout, top to bottom, in the spirit of Krita AI Diffusion's docker: the
daemon's status line; the chosen painting (thumbnail, name, Choose…) and the
recent paintings as a strip of thumbnails; the two strengths ("preset" =
the daemon's tuned default) and preserve colour; Apply / Cancel with a
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
    QtCore,
    QTimer,
    QtWidgets,
)
from .styles import recent_styles, thumbnail

__all__ = ["PortraitStyleDocker", "DOCKER_ID", "DOCKER_TITLE"]

DOCKER_ID = "portrait_style_docker"
DOCKER_TITLE = "Portrait Style"
_THUMB = 48
_PRESET = -0.05  # the spin boxes' minimum, shown as "preset"
#: = record.RECORD_NAME; spelled out so enabling buttons never imports the core
_RECORD_PREFIX = "portrait-style-job/"
_LEVEL_COLOURS = {"info": "", "warning": "color: #c08000;", "error": "color: #d04040;"}
#: how often the status line asks the daemon (ms): a dead daemon shows within this
STATUS_EVERY_MS = 3000
#: lines of text the message area shows before it scrolls
MESSAGE_LINES = 5


def _strength_box(tip: str, high: float = 1.0, low: float = 0.0) -> QtWidgets.QDoubleSpinBox:
    """A spin box whose lowest step below ``low`` reads "preset" (the daemon's default)."""
    box = QtWidgets.QDoubleSpinBox()
    box.setRange(low + _PRESET, high)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setSpecialValueText("preset")
    box.setValue(low + _PRESET)
    box.setToolTip(tip)
    return box


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
        choose = QtWidgets.QPushButton("Choose…")
        choose.setObjectName("choose_style")
        choose.setToolTip("Pick the painting whose style the photo takes")
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
        layout.addWidget(style_box)

        form = QtWidgets.QFormLayout()
        self.background_strength = _strength_box(
            "How strongly the background takes the painting's style (preset: the tuned default)")
        self.portrait_strength = _strength_box(
            "How strongly the person takes the style; lower keeps the face recognisable")
        self.likeness = _strength_box(
            "How much of the face's own detail the portrait keeps (higher: more like the "
            "photo, lower: more painted)")
        self.stroke_size = _strength_box(
            "The painting's brush size relative to the photo (1: as painted, 2: twice as "
            "large strokes)", high=4.0, low=0.25)
        self.preserve_color = QtWidgets.QCheckBox("Preserve the photo's colours")
        form.addRow("Background strength", self.background_strength)
        form.addRow("Portrait strength", self.portrait_strength)
        form.addRow("Likeness", self.likeness)
        form.addRow("Stroke size", self.stroke_size)
        form.addRow(self.preserve_color)
        layout.addLayout(form)

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
        layout.addWidget(self.message_area)
        layout.addStretch(1)
        self.setWidget(root)

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
        preload(path)

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

    def _strength(self, box: QtWidgets.QDoubleSpinBox) -> float | None:
        return None if box.value() <= box.minimum() + 1e-6 else round(box.value(), 3)

    def options(self) -> DockerOptions:
        return DockerOptions(style_path=self.style_path,
                             background_strength=self._strength(self.background_strength),
                             portrait_strength=self._strength(self.portrait_strength),
                             preserve_color=self.preserve_color.isChecked(),
                             likeness=self._strength(self.likeness),
                             stroke_size=self._strength(self.stroke_size))

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
