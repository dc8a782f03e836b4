"""The artist's recently used style paintings, kept in GIMP's user folder.

Why a file of our own: GIMP remembers a procedure's last values, but only the
last one; picking between the last few paintings is what an artist who works
in series wants. Standard library only, so it works before the wire
libraries are imported (the dialog needs it first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["default_path", "load", "remember", "LIMIT"]

LIMIT = 8
FILE_NAME = "portrait-style-recent-styles.json"


def default_path() -> Path:
    """``<GIMP's user folder>/portrait-style-recent-styles.json``."""
    import gi

    gi.require_version("Gimp", "3.0")
    from gi.repository import Gimp

    return Path(Gimp.directory()) / FILE_NAME


def load(path: Path) -> list[str]:
    """The remembered paintings, newest first, leaving out files that are gone."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [p for p in data if isinstance(p, str) and os.path.isfile(p)][:LIMIT]


def remember(path: Path, style: Path | str) -> list[str]:
    """Put ``style`` first in the list (once), keep ``LIMIT``, write it atomically."""
    style = str(Path(style).expanduser().resolve())
    styles = [style, *(p for p in load(path) if p != style)][:LIMIT]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        part.write_text(json.dumps(styles, indent=1), encoding="utf-8")
        os.replace(part, path)
    except OSError:
        pass  # a read-only profile only costs the list, never the job
    return styles
