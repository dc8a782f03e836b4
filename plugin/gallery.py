"""The gallery of paintings shipped with the product: what it holds and where the files are.

Why a module of its own: the command line (``portrait-style styles``,
``--style gallery:NAME``) and the editors' painting pickers show the same
list, so one reader of ``gallery/index.json`` serves them all. Standard
library only: the editors import this from the plug-in's bundled core, whose
Python has no numpy or Pillow — the pickers get pre-made thumbnails and their
sizes from here, so an editor never decodes a full painting to draw its grid.

Where the files are: the ``gallery`` folder sits in the root package next to
``plugin/`` — ``portrait_style/gallery`` in the product, ``_core/gallery`` in
an installed plug-in (the installer copies it there with the core, so an editor
in a Flatpak sandbox, which cannot see the product's environment, still has
every painting inside its own plug-in folder). ``PORTRAIT_STYLE_GALLERY``
points elsewhere for unusual layouts.

For a picker: ``paintings()`` in order, each with ``thumbnail`` (and its
``thumbnail_size`` for the grid), ``label`` for the tooltip, ``image`` to load
as the style with the editor's own loader; ``for_path`` turns a remembered
style file back into its painting. In a plug-in, import it from the bundled
core (``<package>._core.plugin.gallery``).
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["GALLERY_ENV", "GALLERY_PREFIX", "GalleryError", "Painting", "find", "for_path",
           "gallery_dir", "is_gallery_ref", "paintings", "resolve"]

#: ``--style gallery:NAME`` (and what a saved setting may hold)
GALLERY_PREFIX = "gallery:"
#: a folder holding ``index.json`` and the paintings, instead of the bundled one
GALLERY_ENV = "PORTRAIT_STYLE_GALLERY"
INDEX_NAME = "index.json"


class GalleryError(LookupError):
    """The gallery is missing, unreadable, or has no painting of that name."""


@dataclass(frozen=True)
class Painting:
    """One painting of the gallery, with everything a picker or a listing shows."""

    name: str  # the id used in ``gallery:NAME``: lower case, digits and underscores
    title: str
    artist: str
    artist_died: int
    year: str  # as art historians write it: "1888", "c. 1831", "1884–86"
    technique: str
    image: Path  # the painting itself (JPEG, long side ≤ 1024 px)
    thumbnail: Path  # a small JPEG for pickers (long side ≤ 160 px)
    size: tuple[int, int]  # the image's width and height
    thumbnail_size: tuple[int, int]

    @property
    def ref(self) -> str:
        """What ``--style`` takes for this painting."""
        return GALLERY_PREFIX + self.name

    @property
    def label(self) -> str:
        """One line for a picker's tooltip or a list: title, artist, year."""
        return f"{self.title} — {self.artist}, {self.year}"


def gallery_dir() -> Path:
    """The folder holding ``index.json``: ``$PORTRAIT_STYLE_GALLERY``, else the bundled one."""
    override = os.environ.get(GALLERY_ENV)
    if override:
        return Path(override).expanduser()
    root_package = (__package__ or "").rpartition(".")[0]
    if root_package:
        root_file = getattr(importlib.import_module(root_package), "__file__", None)
        if root_file:
            return Path(root_file).resolve().parent / "gallery"
    return Path(__file__).resolve().parents[1] / "gallery"


def paintings(folder: Path | None = None) -> list[Painting]:
    """Every painting of the gallery, in the index's order (raises ``GalleryError``)."""
    return list(_load(folder or gallery_dir()))


@lru_cache(maxsize=4)
def _load(folder: Path) -> tuple[Painting, ...]:
    index = folder / INDEX_NAME
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        entries = data["paintings"]
        return tuple(_painting(folder, entry) for entry in entries)
    except FileNotFoundError as exc:
        raise GalleryError(f"the gallery of paintings is missing ({index} not found): "
                           "reinstall portrait-style or the plug-in") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GalleryError(f"the gallery index {index} is unreadable ({exc}): "
                           "reinstall portrait-style or the plug-in") from exc


def _painting(folder: Path, entry: dict) -> Painting:
    return Painting(
        name=str(entry["name"]), title=str(entry["title"]), artist=str(entry["artist"]),
        artist_died=int(entry["artist_died"]), year=str(entry["year"]),
        technique=str(entry["technique"]), image=folder / entry["image"],
        thumbnail=folder / entry["thumbnail"],
        size=(int(entry["width"]), int(entry["height"])),
        thumbnail_size=(int(entry["thumbnail_width"]), int(entry["thumbnail_height"])))


def find(name: str, folder: Path | None = None) -> Painting:
    """The painting called ``name`` (with or without ``gallery:``), or a ``GalleryError``
    that lists the closest names."""
    wanted = name[len(GALLERY_PREFIX):] if is_gallery_ref(name) else name
    wanted = wanted.strip().lower().replace("-", "_").replace(" ", "_")
    known = paintings(folder)
    by_name = {p.name: p for p in known}
    if wanted in by_name:
        return by_name[wanted]
    raise GalleryError(f"no painting {name!r} in the gallery; {_suggest(wanted, known)} "
                       "('portrait-style styles' lists them all)")


def _suggest(wanted: str, known: list[Painting]) -> str:
    """Close names: fuzzy matches, then names sharing a word (an artist's name, say)."""
    names = [p.name for p in known]
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5)
    words = {w for w in wanted.split("_") if len(w) > 2}
    close += [n for n in names if n not in close and words & set(n.split("_"))]
    if not close:
        return f"the gallery has {len(names)}, e.g. {', '.join(names[:4])}"
    return "did you mean " + ", ".join(GALLERY_PREFIX + n for n in close[:6]) + "?"


def for_path(path: str | Path, folder: Path | None = None) -> Painting | None:
    """The gallery painting stored at ``path``, or None: lets a picker show a recent
    style that came from the gallery by its title rather than its file name."""
    try:
        wanted = Path(path).resolve()
        return next((p for p in paintings(folder) if p.image.resolve() == wanted), None)
    except (GalleryError, OSError):
        return None


def is_gallery_ref(text: str) -> bool:
    """Whether ``text`` names a gallery painting rather than a file."""
    return text.startswith(GALLERY_PREFIX)


def resolve(text: str, folder: Path | None = None) -> Path:
    """The file for ``gallery:NAME`` (raises ``GalleryError``)."""
    return find(text, folder).image
