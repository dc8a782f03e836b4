"""Which editors are installed for this user, where their plug-ins go, which Python runs them.

Why its own module: the installer puts the plug-in into every editor it finds
and ``doctor`` checks each of them, so both must agree on what an installed
editor looks like.

GIMP keeps one user folder per minor version: ``gimp_directory()`` in GIMP's
libgimpbase/gimpenv.c is ``$GIMP3_DIRECTORY`` (absolute, or relative to the
home folder), else ``<config dir>/GIMP/<major.minor>`` — the config dir being
``$XDG_CONFIG_HOME`` (``~/.config``) on Linux, the roaming AppData folder on
Windows, and Application Support on macOS. GIMP 3.2 reads ``GIMP/3.2`` and
nothing from ``GIMP/3.0``; so the version comes from the installed binaries
(``gimp-3.2``, ``gimp-console-3.0``…), and every ``GIMP/3.N`` folder works for
future minors without a code change. GIMP 3.2 from Flathub keeps its profile
in the host's ``~/.config/GIMP/3.2``, 3.0 in ``~/.var/app/org.gimp.GIMP``
(NOTES-hosts): a Flatpak GIMP gets both.

Which Python the editor runs plug-ins with is asked from the editor itself,
never assumed to be the installer's: GIMP's ``*.interp`` files name it (else
the ``python3`` beside GIMP), Krita's scripting plug-in links ``libpython3.X``.
For a Flatpak the files of the app and its runtime are read (``/app`` and
``/usr`` inside the sandbox), or ``flatpak run`` asks the app's Python. An
interpreter this machine cannot run is given by version: ``install-plugin``
then bundles wheels for that version.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EditorInstall", "FlatpakApp", "GIMP_FLATPAK", "KRITA_FLATPAK", "editor_python",
           "find_editors", "find_flatpak", "gimp_config_root", "gimp_profiles",
           "gimp_versions", "installed_gimp_folders", "krita_resource_dir", "kritarc_path"]

GIMP_FLATPAK = "org.gimp.GIMP"
KRITA_FLATPAK = "org.kde.krita"
#: Python each packaged build embeds when nothing can be read or asked (NOTES-hosts)
GIMP_FLATPAK_PYTHON = "3.13"
KRITA_FLATPAK_PYTHON = "3.11"
KRITA_APPIMAGE_PYTHON = "3.10"
#: GIMP user folders to fill when GIMP is found but its version cannot be told
FALLBACK_GIMP_VERSIONS = ("3.0", "3.2")

_GIMP_BINARY = re.compile(r"^gimp(-console)?(-\d+(\.\d+)?)?(\.exe)?$")
_VERSION = re.compile(r"(3\.\d+)")


@dataclass(frozen=True)
class EditorInstall:
    """One editor installation: which plug-in, into which profile, for which Python.

    python: an interpreter path this machine can run, or a version ("3.10").
    kritarc: Krita's settings file for this installation (None for GIMP).
    app_id: the Flatpak app id (None for other kinds).
    version: GIMP's major.minor the profile folder belongs to.
    """

    host: str
    kind: str  # "native", "flatpak", "appimage", "profile"
    profile: Path
    python: str
    kritarc: Path | None = None
    app_id: str | None = None
    version: str | None = None

    def describe(self) -> str:
        name = f"{self.host} {self.version}" if self.version else self.host
        return f"{name} ({self.kind}) → {self.profile} (Python {self.python})"


@dataclass(frozen=True)
class FlatpakApp:
    """A Flatpak app's deployed files: ``/app`` and its runtime's ``/usr`` inside the sandbox."""

    app_id: str
    app_files: Path
    runtime_files: Path | None

    def host_path(self, inside: str) -> Path | None:
        """Where a path of the sandbox (``/app/…``, ``/usr/…``) is on the host."""
        for prefix, base in (("/app/", self.app_files), ("/usr/", self.runtime_files)):
            if inside.startswith(prefix) and base is not None:
                return base / inside[len(prefix):]
        return None

    def roots(self) -> list[Path]:
        return [r for r in (self.app_files, self.runtime_files) if r is not None]


# ------------------------------------------------------------------------ folders


def _home() -> Path:
    return Path.home()


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config")


def gimp_config_root() -> Path:
    """The folder holding GIMP's per-version user folders (gimpenv.c, without GIMP3_DIRECTORY)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming") / "GIMP"
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "GIMP"
    return _config_home() / "GIMP"


def _gimp3_directory() -> Path | None:
    value = os.environ.get("GIMP3_DIRECTORY")
    if not value:
        return None
    return Path(value) if os.path.isabs(value) else _home() / value


def krita_resource_dir() -> Path:
    """Krita's resource folder (pykrita lives in it)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", _home())) / "krita"
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "Krita"
    base = os.environ.get("XDG_DATA_HOME") or str(_home() / ".local" / "share")
    return Path(base) / "krita"


def kritarc_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", _home())) / "kritarc"
    if sys.platform == "darwin":
        return _home() / "Library" / "Preferences" / "kritarc"
    return _config_home() / "kritarc"


def _sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=lambda v: tuple(int(p) for p in v.split(".")))


def installed_gimp_folders(root: Path) -> list[str]:
    """The ``3.N`` user folders GIMP versions already created under ``root`` (``…/GIMP``)."""
    if not root.is_dir():
        return []
    return _sort_versions(p.name for p in root.iterdir()
                          if p.is_dir() and re.fullmatch(r"3\.\d+", p.name))


def gimp_profiles(versions: Iterable[str], root: Path | None = None, *,
                  existing: bool = True) -> list[tuple[str, Path]]:
    """(version, user folder) for each GIMP version (and each folder already under ``root``).

    ``$GIMP3_DIRECTORY`` replaces them all, as in GIMP.
    """
    override = _gimp3_directory()
    if override is not None:
        return [(next(iter(_sort_versions(versions)), ""), override)]
    root = root or gimp_config_root()
    every = _sort_versions([*versions, *(installed_gimp_folders(root) if existing else [])])
    return [(v, root / v) for v in every]


# ----------------------------------------------------------------------- binaries


def _bin_dirs() -> list[Path]:
    seen: list[Path] = []
    for entry in [*os.get_exec_path(), "/usr/bin", "/usr/local/bin"]:
        path = Path(entry)
        if entry and path.is_dir() and path not in seen:
            seen.append(path)
    return seen


def _link_version(path: Path, hops: int = 8) -> str | None:
    """A ``3.N`` in the names a symlink chain passes through (``gimp`` → ``gimp-3.0``)."""
    for _ in range(hops):
        match = _VERSION.search(path.name)
        if match:
            return match.group(1)
        try:
            target = os.readlink(path)
        except OSError:
            return None
        path = path.parent / target
    return None


def _ask_version(binary: Path) -> str | None:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version\s+(3\.\d+)", done.stdout + done.stderr)
    return match.group(1) if match else None


def gimp_versions(bin_dirs: Iterable[Path], *, runnable: bool = True) -> list[str]:
    """GIMP 3 versions (``3.0``, ``3.2``…) among the ``gimp*`` binaries in ``bin_dirs``.

    The version is in the name (``gimp-console-3.2``) or in the symlink the name
    points at; a bare ``gimp``/``gimp-console`` of this machine is asked
    (``--version``), which also tells GIMP 2.10 apart.
    """
    found: set[str] = set()
    unknown: list[Path] = []
    for folder in bin_dirs:
        try:
            names = sorted(p.name for p in folder.iterdir())
        except OSError:
            continue
        for name in names:
            match = _GIMP_BINARY.match(name)
            if not match:
                continue
            version = _link_version(folder / name)
            if version:
                found.add(version)
            elif match.group(2) in (None, "-3"):
                unknown.append(folder / name)
    if runnable and not found:
        for binary in unknown[:2]:
            version = _ask_version(binary)
            if version:
                found.add(version)
                break
    return _sort_versions(found)


# ------------------------------------------------------------------------- Python


def _python_version_in(usr: Path, interpreter: Path | None = None) -> str | None:
    """The Python version of a ``/usr`` tree that cannot be run from here."""
    candidate = interpreter or usr / "bin" / "python3"
    version = _link_version(candidate)
    if version:
        return version
    libs = [p.parent.name[len("python"):] for p in usr.glob("lib/python3.*/os.py")]
    libs = [v for v in libs if re.fullmatch(r"3\.\d+", v)]
    return _sort_versions(libs)[-1] if libs else None


def _interp_python(roots: Iterable[Path]) -> str | None:
    """The interpreter GIMP's ``*.interp`` files register for Python plug-ins, if any."""
    for root in roots:
        for interp in [*root.glob("lib/gimp/3.0/interpreters/*.interp"),
                       *root.glob("lib/*/gimp/3.0/interpreters/*.interp")]:
            try:
                lines = interp.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.strip().partition("=")
                if key in ("python", "python3") and value.startswith("/"):
                    return value
    return None


def _libpython(roots: Iterable[Path]) -> str | None:
    """The ``3.X`` of the ``libpython3.X`` Krita's scripting plug-in is linked with."""
    for root in roots:
        for lib in [*root.glob("lib/kritaplugins/kritapykrita.so"),
                    *root.glob("lib/*/kritaplugins/kritapykrita.so"),
                    *root.glob("lib64/kritaplugins/kritapykrita.so")]:
            try:
                match = re.search(rb"libpython(3\.\d+)", lib.read_bytes())
            except OSError:
                continue
            if match:
                return match.group(1).decode()
    return None


def editor_python(host: str, flatpak: FlatpakApp | None = None) -> str | None:
    """The Python the editor runs plug-ins with: a runnable path here, or a version.

    Native: GIMP's interp files (else ``/usr/bin/python3``, what its plug-ins'
    ``#!/usr/bin/env python3`` finds), Krita's linked libpython. Flatpak: the
    same, read from the app's and runtime's files. None: nothing to go by.
    """
    if flatpak is None:
        usr = Path("/usr")
        if host == "gimp":
            return _interp_python([usr]) or shutil.which("python3", path="/usr/bin:/bin")
        version = _libpython([usr])
        if version is None:
            return shutil.which("python3", path="/usr/bin:/bin")
        return shutil.which(f"python{version}", path="/usr/bin:/bin") or version
    if host == "gimp":
        inside = _interp_python(flatpak.roots()) or "/usr/bin/python3"
        path = flatpak.host_path(inside)
        usr = flatpak.app_files if inside.startswith("/app/") else flatpak.runtime_files
        if path is None or usr is None:
            return None
        return _python_version_in(usr, path)
    return _libpython(flatpak.roots()) or (
        _python_version_in(flatpak.runtime_files) if flatpak.runtime_files else None)


def _flatpak_run_python(app: str) -> str | None:
    """Ask the app's own Python for its version (needs the ``flatpak`` command)."""
    flatpak = shutil.which("flatpak")
    if flatpak is None:
        return None
    try:
        done = subprocess.run([flatpak, "run", "--command=python3", app, "-c",
                               "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and re.fullmatch(r"3\.\d+", version) else None


# ------------------------------------------------------------------------ Flatpak


def _flatpak_installations() -> list[Path]:
    """Flatpak's per-user and system installations (flatpak's own variables move them)."""
    user = os.environ.get("FLATPAK_USER_DIR") or str(_home() / ".local" / "share" / "flatpak")
    system = os.environ.get("FLATPAK_SYSTEM_DIR") or "/var/lib/flatpak"
    return [Path(user), Path(system)]


def find_flatpak(app: str) -> FlatpakApp | None:
    """The deployed files of Flatpak ``app`` in either installation, or None."""
    installs = _flatpak_installations()
    for install in installs:
        active = install / "app" / app / "current" / "active"
        if not (active / "files").is_dir():
            continue
        runtime = None
        meta = configparser.ConfigParser(interpolation=None)
        try:
            meta.read(active / "metadata", encoding="utf-8")
            ref = meta.get("Application", "runtime", fallback="")
        except (configparser.Error, OSError):
            ref = ""
        for candidate in installs:
            files = candidate / "runtime" / ref / "active" / "files"
            if ref and files.is_dir():
                runtime = files
                break
        return FlatpakApp(app, active / "files", runtime)
    return None


def _var_app(app: str) -> Path:
    return _home() / ".var" / "app" / app


# ------------------------------------------------------------------------ editors


def _krita_appimages() -> list[Path]:
    places = [_home() / "Applications", _home() / "Downloads", _home() / "bin",
              _home() / ".local" / "bin"]
    return sorted(p for folder in places if folder.is_dir()
                  for p in folder.glob("[Kk]rita*.AppImage"))


def _native_gimp() -> list[EditorInstall]:
    versions = gimp_versions(_bin_dirs())
    has_lib = Path("/usr/lib/gimp/3.0").is_dir() or any(Path("/usr/lib").glob("*/gimp/3.0"))
    if not versions and not has_lib:
        return []
    python = editor_python("gimp") or "/usr/bin/python3"
    # the versions installed read only their own folders; others' folders count as "profile"
    chosen = gimp_profiles(versions, existing=False) if versions else gimp_profiles(
        FALLBACK_GIMP_VERSIONS)
    return [EditorInstall("gimp", "native", profile, python, version=version)
            for version, profile in chosen]


def _flatpak_gimp() -> list[EditorInstall]:
    deployed = find_flatpak(GIMP_FLATPAK)
    sandbox_root = _var_app(GIMP_FLATPAK) / "config" / "GIMP"
    if deployed is None and not _var_app(GIMP_FLATPAK).is_dir():
        return []
    versions = gimp_versions([r / "bin" for r in deployed.roots()], runnable=False) \
        if deployed else []
    known = bool(versions)
    versions = versions or installed_gimp_folders(sandbox_root) or list(FALLBACK_GIMP_VERSIONS)
    python = (_flatpak_run_python(GIMP_FLATPAK)
              or (editor_python("gimp", deployed) if deployed else None) or GIMP_FLATPAK_PYTHON)
    found = []
    # 3.0 reads the sandbox's folder, 3.2 the host's (NOTES-hosts): fill both
    for root in (sandbox_root, gimp_config_root()):
        for version, profile in gimp_profiles(versions, root, existing=not known):
            found.append(EditorInstall("gimp", "flatpak", profile, python, app_id=GIMP_FLATPAK,
                                       version=version))
    return found


def _flatpak_krita() -> list[EditorInstall]:
    deployed = find_flatpak(KRITA_FLATPAK)
    if deployed is None and not _var_app(KRITA_FLATPAK).is_dir():
        return []
    python = (_flatpak_run_python(KRITA_FLATPAK)
              or (editor_python("krita", deployed) if deployed else None) or KRITA_FLATPAK_PYTHON)
    var = _var_app(KRITA_FLATPAK)
    return [EditorInstall("krita", "flatpak", var / "data" / "krita", python,
                          var / "config" / "kritarc", app_id=KRITA_FLATPAK)]


def _other_platform() -> list[EditorInstall]:
    """Windows and macOS: written from GIMP's and Krita's sources, untested here."""
    found = []
    versions = installed_gimp_folders(gimp_config_root())
    programs = [Path(os.environ.get(v, "")) for v in ("ProgramFiles", "LOCALAPPDATA")
                if os.environ.get(v)]
    bins = ([p / "GIMP 3" / "bin" for p in programs] + [p / "Programs" / "GIMP 3" / "bin"
                                                        for p in programs]
            if sys.platform == "win32" else [Path("/Applications/GIMP.app/Contents/MacOS")])
    versions = _sort_versions([*versions, *gimp_versions(bins)])
    python = "3.12" if sys.platform == "win32" else "3.10"
    for version, profile in gimp_profiles(versions):
        found.append(EditorInstall("gimp", "native", profile, python, version=version))
    if krita_resource_dir().is_dir():
        found.append(EditorInstall("krita", "native", krita_resource_dir(), "3.10",
                                   kritarc_path()))
    return found


def find_editors() -> list[EditorInstall]:
    """Every GIMP 3 and Krita this user has, once per plug-in folder each reads."""
    found: list[EditorInstall] = []

    def add(editors: Iterable[EditorInstall]) -> None:
        for editor in editors:
            if not any(e.host == editor.host and e.profile == editor.profile for e in found):
                found.append(editor)

    if sys.platform.startswith("linux"):
        add(_native_gimp())
        add(_flatpak_gimp())
        if shutil.which("krita"):
            add([EditorInstall("krita", "native", krita_resource_dir(),
                               editor_python("krita") or "/usr/bin/python3", kritarc_path())])
        add(_flatpak_krita())
        if _krita_appimages() and not any(e.host == "krita" and e.kind == "native"
                                          for e in found):
            add([EditorInstall("krita", "appimage", krita_resource_dir(),
                               KRITA_APPIMAGE_PYTHON, kritarc_path())])
    elif sys.platform in ("win32", "darwin"):
        add(_other_platform())
    # a profile folder an editor already created counts even when its binary is elsewhere
    system = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    add(EditorInstall("gimp", "profile", profile, system, version=version)
        for version, profile in gimp_profiles([]))
    if krita_resource_dir().is_dir():
        add([EditorInstall("krita", "profile", krita_resource_dir(), system, kritarc_path())])
    return found


def default_gimp_profiles() -> list[Path]:
    """Where ``install-plugin gimp`` without ``--profile`` installs: every folder GIMP reads."""
    profiles = [e.profile for e in find_editors() if e.host == "gimp"]
    return profiles or [p for _, p in gimp_profiles(FALLBACK_GIMP_VERSIONS)]
