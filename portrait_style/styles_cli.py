"""``portrait-style styles``: list the gallery of paintings that ``--style gallery:NAME`` takes.

Why: the artist should not have to find a painting file to try the product;
the gallery ships with it (``portrait_style/gallery``), and this shows what is
there — name, title, artist, year, technique — or, with ``--json``, everything
a script or a picker needs (file paths, pixel sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .plugin.gallery import GALLERY_PREFIX, GalleryError, Painting, paintings

__all__ = ["add_parser", "main"]

_COLUMNS = ("name", "year", "artist", "title", "technique")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``styles``."""
    p = subparsers.add_parser(
        "styles", help="list the bundled gallery of paintings (for --style gallery:NAME)",
        description="List the public-domain paintings shipped with portrait-style. Use one "
                    f"with 'portrait-style stylize PHOTO --style {GALLERY_PREFIX}NAME'.")
    p.add_argument("--json", action="store_true",
                   help="print every field as JSON (paths, sizes, thumbnails) for scripts")
    p.add_argument("--paths", action="store_true", help="add each painting's file path")
    p.set_defaults(func=main)
    return p


def _row(painting: Painting) -> dict[str, str]:
    return {"name": painting.name, "year": painting.year, "artist": painting.artist,
            "title": painting.title, "technique": painting.technique}


def _as_json(painting: Painting) -> dict[str, Any]:
    return {**_row(painting), "artist_died": painting.artist_died, "style": painting.ref,
            "image": str(painting.image), "thumbnail": str(painting.thumbnail),
            "size": list(painting.size), "thumbnail_size": list(painting.thumbnail_size)}


def _table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(args: argparse.Namespace) -> int:
    """Print the gallery; exit 1 with one line when it is missing or unreadable."""
    try:
        found = paintings()
    except GalleryError as exc:
        print(f"portrait-style: error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.json:
            print(json.dumps([_as_json(p) for p in found], indent=1, ensure_ascii=False))
            return 0
        columns = _COLUMNS + (("path",) if args.paths else ())
        rows = [{**_row(p), "path": str(p.image)} for p in found]
        print(_table(rows, columns))
        if found:
            print(f"\n{len(found)} paintings; use one with --style {GALLERY_PREFIX}NAME "
                  f"(e.g. --style {GALLERY_PREFIX}{found[0].name})")
    except BrokenPipeError:  # `portrait-style styles | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
