"""Style paintings: decoding them with Qt, and the artist's recent styles.

Why Qt for decoding: the plug-in may not import Pillow or numpy, and Krita's
Qt reads every format an artist keeps paintings in (JPEG, PNG, WebP, TIFF).
``QImage`` is safe to use off the GUI thread, so the docker decodes a newly
picked painting in the background and the job finds it in the cache.

Recent styles are kept in Krita's own settings (kritarc), most recent first,
so they follow the artist's Krita profile.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from .qt import KEEP_ASPECT, RGB888, SMOOTH, QImage, QImageReader, QSize, enum, image_bytes

__all__ = ["load_style", "preload", "recent_styles", "remember_style", "thumbnail",
           "MAX_RECENT", "SETTINGS_GROUP"]

SETTINGS_GROUP = "portrait_style"
MAX_RECENT = 8
_cache: dict[tuple[str, float, int], Any] = {}
_lock = threading.Lock()


def _key(path: Path) -> tuple[str, float, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime, stat.st_size)


def load_style(path: Path) -> Any:
    """The painting as 8-bit RGB ``Pixels`` (the core's ``StyleLoader``).

    Raises ``OptionError`` with the file's name when Qt cannot read it.
    """
    from .runtime import core

    modules = core()
    path = Path(path)
    key = _key(path)
    with _lock:
        if key in _cache:
            return _cache[key]
    image = _decode(path, modules["core"].OptionError)
    image = image.convertToFormat(RGB888)
    pixels = modules["messages"].Pixels.from_buffer(
        image_bytes(image), (image.height(), image.width(), 3), stride=image.bytesPerLine())
    pixels = modules["pixels"].packed(pixels)
    with _lock:
        _cache.clear()  # one painting at a time is what a job needs
        _cache[key] = pixels
    return pixels


def _decode(path: Path, refuse: type[Exception]) -> QImage:
    """The painting decoded by Qt, whole; ``refuse`` (a sentence naming the file) otherwise."""
    from .runtime import core

    integrity = core()["image_integrity"]
    try:
        integrity.check_complete(path)
        how = None
    except integrity.IncompleteImage as damaged:
        how = damaged.how
    if how is None:
        reader = QImageReader(str(path))
        image = reader.read()
        if not image.isNull():
            return image
        if reader.error() != enum(QImageReader, "ImageReaderError", "InvalidDataError"):
            raise refuse(
                f"Krita cannot read the style painting {path.name} (not an image, or a format "
                "Qt does not know): save it as JPEG or PNG")
        how = f"Qt says: {reader.errorString()}"
    raise refuse(f"the style painting {path.name} is damaged — only part of it can be read "
                 f"({how}), so the style would come out washed out and grey: save the painting "
                 "again or choose another copy")


def preload(path: Path) -> None:
    """Decode ``path`` on a background thread so Apply does not wait for it."""
    def work() -> None:
        with contextlib.suppress(Exception):  # the job reports it properly when it runs
            load_style(path)

    threading.Thread(target=work, name="portrait-style-style", daemon=True).start()


def _settings() -> Any:
    from krita import Krita  # type: ignore[import-not-found]

    return Krita.instance()


def recent_styles() -> list[str]:
    """The recently used paintings that still exist, most recent first."""
    raw = _settings().readSetting(SETTINGS_GROUP, "recent_styles", "[]")
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        items = []
    return [p for p in items if isinstance(p, str) and Path(p).is_file()][:MAX_RECENT]


def remember_style(path: Path) -> list[str]:
    """Put ``path`` first in the recent list (saved in kritarc); the new list."""
    text = str(Path(path).resolve())
    items = [text] + [p for p in recent_styles() if p != text]
    items = items[:MAX_RECENT]
    _settings().writeSetting(SETTINGS_GROUP, "recent_styles", json.dumps(items))
    return items


_thumbs: dict[tuple[tuple[str, float, int], int], QImage] = {}


def thumbnail(path: str | Path, size: int = 64) -> QImage:
    """A small copy of the painting for the recent-styles strip, cached.

    Decoded at reduced size (``QImageReader.setScaledSize``: JPEG decoders skip
    most of the work), so even a large scan costs the GUI thread little, once.
    """
    try:
        key = (_key(Path(path)), size)
    except OSError:
        return QImage()
    if key in _thumbs:
        return _thumbs[key]
    reader = QImageReader(str(path))
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        reader.setScaledSize(full.scaled(QSize(size, size), KEEP_ASPECT))
    image = reader.read()
    if not image.isNull() and max(image.width(), image.height()) > size:
        image = image.scaled(QSize(size, size), KEEP_ASPECT, SMOOTH)
    _thumbs[key] = image
    return image
