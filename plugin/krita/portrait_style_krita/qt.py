"""The one module that imports Qt: PyQt5 (Krita 5) or PyQt6 (Krita 6).

Why one module: Krita 6 embeds PyQt6 and refuses PyQt5 imports, and the two
differ in enum spelling (``Qt.AlignLeft`` vs ``Qt.AlignmentFlag.AlignLeft``)
and a few renamed members. Everything else in the plug-in imports Qt names
from here, so moving to Krita 6 means editing this file only.
"""

from __future__ import annotations

from typing import Any

try:
    from PyQt5 import QtCore, QtGui, QtWidgets

    QT_MAJOR = 5
except ImportError:  # Krita 6
    from PyQt6 import QtCore, QtGui, QtWidgets  # type: ignore[no-redef]

    QT_MAJOR = 6

Qt = QtCore.Qt
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QEventLoop = QtCore.QEventLoop
QByteArray = QtCore.QByteArray
QSize = QtCore.QSize
QElapsedTimer = QtCore.QElapsedTimer
Signal = QtCore.pyqtSignal
QImage = QtGui.QImage
QImageReader = QtGui.QImageReader
QIcon = QtGui.QIcon
QPixmap = QtGui.QPixmap

__all__ = ["QT_MAJOR", "QtCore", "QtGui", "QtWidgets", "Qt", "QObject", "QTimer", "QEventLoop",
           "QByteArray", "QSize", "QElapsedTimer", "Signal", "QImage", "QImageReader", "QIcon",
           "QPixmap",
           "enum", "qbytes", "image_bytes", "RGB888", "QUEUED", "ALIGN_LEFT", "ICON_MODE",
           "KEEP_ASPECT", "SMOOTH", "ELIDE_MIDDLE", "TEXT_SELECTABLE", "PLAIN_TEXT",
           "SCROLL_OFF", "NO_FRAME", "PICTURES", "ALIGN_TOP"]


def enum(owner: Any, scope: str, member: str) -> Any:
    """``owner.scope.member`` under PyQt6, ``owner.member`` under PyQt5."""
    if QT_MAJOR >= 6:
        return getattr(getattr(owner, scope), member)
    return getattr(owner, member)


def qbytes(data: bytes | bytearray | memoryview) -> QByteArray:
    """Python bytes → QByteArray (one copy, done in C)."""
    return QByteArray(bytes(data))


def image_bytes(image: QImage) -> bytes:
    """A QImage's raw bytes, rows padded to ``bytesPerLine`` (Qt 5 and 6 alike)."""
    bits = image.constBits()
    size = image.sizeInBytes()
    bits.setsize(size)
    return bytes(bits)


RGB888 = enum(QImage, "Format", "Format_RGB888")
QUEUED = enum(Qt, "ConnectionType", "QueuedConnection")
ALIGN_LEFT = enum(Qt, "AlignmentFlag", "AlignLeft")
ICON_MODE = enum(QtWidgets.QListView, "ViewMode", "IconMode")
KEEP_ASPECT = enum(Qt, "AspectRatioMode", "KeepAspectRatio")
SMOOTH = enum(Qt, "TransformationMode", "SmoothTransformation")
ELIDE_MIDDLE = enum(Qt, "TextElideMode", "ElideMiddle")
TEXT_SELECTABLE = enum(Qt, "TextInteractionFlag", "TextSelectableByMouse")
PLAIN_TEXT = enum(Qt, "TextFormat", "PlainText")
SCROLL_OFF = enum(Qt, "ScrollBarPolicy", "ScrollBarAlwaysOff")
NO_FRAME = enum(QtWidgets.QFrame, "Shape", "NoFrame")
PICTURES = enum(QtCore.QStandardPaths, "StandardLocation", "PicturesLocation")
ALIGN_TOP = enum(Qt, "AlignmentFlag", "AlignTop")
