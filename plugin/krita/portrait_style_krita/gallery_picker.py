"""The gallery of paintings shipped with the plug-in, as a grid of thumbnails.

Why pre-made thumbnails: the gallery's index (``plugin/gallery.py``) lists a
small JPEG per painting, so the grid costs the GUI thread a few kilobytes per
painting, never a full decode. Clicking a thumbnail picks that painting as
the style, exactly as "Choose…" (your own file) or a recent painting would;
its tooltip says title, artist, year and technique.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from .qt import ICON_MODE, QIcon, QImage, QPixmap, QSize, Qt, QtWidgets, Signal, enum

__all__ = ["GalleryPicker", "gallery_module", "THUMB"]

#: the grid's icon size (px); the gallery's thumbnails are larger and scaled down
THUMB = 56
_ROLE = enum(Qt, "ItemDataRole", "UserRole")  # an item's painting name


def gallery_module() -> ModuleType:
    """The bundled core's ``plugin.gallery`` (standard library only)."""
    package = __package__ or "portrait_style_krita"
    return importlib.import_module(f"{package}._core.plugin.gallery")


class GalleryPicker(QtWidgets.QListWidget):
    """Thumbnails of every gallery painting; ``picked(Path)`` when one is clicked."""

    picked = Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gallery")
        self.setViewMode(ICON_MODE)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 8, THUMB + 8))
        self.setResizeMode(enum(QtWidgets.QListView, "ResizeMode", "Adjust"))
        self.setMovement(enum(QtWidgets.QListView, "Movement", "Static"))
        self.setWrapping(True)
        self.setFixedHeight(2 * (THUMB + 8) + 6)  # two rows; the rest scrolls
        self.setToolTip("Paintings shipped with Portrait Style (public domain)")
        self.paintings: list[Any] = []
        self.error = ""
        self.itemClicked.connect(self._clicked)
        self.load()

    def load(self) -> None:
        """Fill the grid from the gallery's index (a missing gallery says so in the tooltip)."""
        self.clear()
        try:
            self.paintings = gallery_module().paintings()
        except Exception as exc:  # GalleryError, or a plug-in installed without it
            self.paintings = []
            self.error = str(exc)
            self.setToolTip(f"The gallery is unavailable: {exc}")
            return
        for painting in self.paintings:
            image = QImage(str(painting.thumbnail))
            item = QtWidgets.QListWidgetItem(QIcon(QPixmap.fromImage(image)), "")
            item.setToolTip(f"{painting.label}\n{painting.technique}")
            item.setData(_ROLE, painting.name)
            self.addItem(item)

    def _clicked(self, item: Any) -> None:
        name = item.data(_ROLE)
        painting = next((p for p in self.paintings if p.name == name), None)
        if painting is not None:
            self.picked.emit(Path(painting.image))

    def select_painting(self, name: str) -> Path:
        """Pick the painting called ``name`` as a click would (scripts, tests); its file."""
        for row in range(self.count()):
            item = self.item(row)
            if item.data(_ROLE) == name:
                self.setCurrentItem(item)
                self._clicked(item)
                return Path(next(p.image for p in self.paintings if p.name == name))
        raise KeyError(f"no painting {name!r} in the gallery")

    def painting_for(self, path: Path | str) -> Any | None:
        """The gallery painting stored at ``path`` (for its title), or None."""
        try:
            return gallery_module().for_path(path)
        except Exception:
            return None

