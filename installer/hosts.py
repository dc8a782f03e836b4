"""Which editors are installed for this user, where their plug-ins go, which Python runs them.

Why its own module: the installer puts the plug-in into every editor it finds
and ``doctor`` checks each of them, so both must agree on what an installed
editor looks like. The facts (folders, Flatpak ids, which Python each build
embeds) come from the editors' build files and trackers, written down in
NOTES-hosts; only Linux is tested here, but the Windows and macOS folders are
used by ``installer/plugins.py``.

An editor whose Python cannot be run from here (a Flatpak, an AppImage) is
given by version: ``install-plugin`` then bundles wheels for that version.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .plugins import _gimp_profile_dir, _krita_resource_dir, kritarc_path

__all__ = ["EditorInstall", "find_editors"]

#: Python each packaged build embeds when we cannot ask it (NOTES-hosts)
GIMP_FLATPAK_PYTHON = "3.13"
KRITA_FLATPAK_PYTHON = "3.11"
KRITA_APPIMAGE_PYTHON = "3.10"


@dataclass(frozen=True)
class EditorInstall:
    """One editor installation: which plug-in, into which profile, for which Python.

    python: an interpreter path this machine can run, or a version ("3.10").
    kritarc: Krita's settings file for this installation (None for GIMP).
    """

    host: str
    kind: str  # "native", "flatpak", "appimage"
    profile: Path
    python: str
    kritarc: Path | None = None

    def describe(self) -> str:
        return f"{self.host} ({self.kind}) → {self.profile} (Python {self.python})"


def _home() -> Path:
    return Path.home()


def _system_python() -> str:
    return shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


def _flatpak_python(app: str, fallback: str) -> str:
    """The Python version inside a Flatpak app, asked from the app when flatpak runs."""
    flatpak = shutil.which("flatpak")
    if flatpak is None:
        return fallback
    try:
        done = subprocess.run([flatpak, "run", "--command=python3", app, "-c",
                               "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return fallback
    version = done.stdout.strip()
    return version if done.returncode == 0 and version.startswith("3.") else fallback


def _gimp3_native() -> bool:
    return bool(shutil.which("gimp-3.0") or shutil.which("gimp-console-3.0")
                or Path("/usr/lib/gimp/3.0").is_dir()
                or any(Path("/usr/lib").glob("*/gimp/3.0")))


def _krita_appimages() -> list[Path]:
    places = [_home() / "Applications", _home() / "Downloads", _home() / "bin",
              _home() / ".local" / "bin"]
    return sorted(p for folder in places if folder.is_dir()
                  for p in folder.glob("[Kk]rita*.AppImage"))


def find_editors() -> list[EditorInstall]:
    """Every GIMP 3 and Krita this user has, each once per plug-in folder."""
    found: list[EditorInstall] = []
    home = _home()
    if sys.platform.startswith("linux"):
        if _gimp3_native():
            found.append(EditorInstall("gimp", "native", _gimp_profile_dir(), _system_python()))
        gimp_flatpak = home / ".var" / "app" / "org.gimp.GIMP"
        if gimp_flatpak.is_dir():
            python = _flatpak_python("org.gimp.GIMP", GIMP_FLATPAK_PYTHON)
            found.append(EditorInstall("gimp", "flatpak",
                                       gimp_flatpak / "config" / "GIMP" / "3.0", python))
            if not any(e.host == "gimp" for e in found[:-1]):
                # the Flatpak reads the host's folder when it exists (NOTES-hosts): fill it too
                found.append(EditorInstall("gimp", "flatpak", _gimp_profile_dir(), python))
        if shutil.which("krita"):
            found.append(EditorInstall("krita", "native", _krita_resource_dir(), _system_python(),
                                       kritarc_path()))
        krita_flatpak = home / ".var" / "app" / "org.kde.krita"
        if krita_flatpak.is_dir():
            found.append(EditorInstall(
                "krita", "flatpak", krita_flatpak / "data" / "krita",
                _flatpak_python("org.kde.krita", KRITA_FLATPAK_PYTHON),
                krita_flatpak / "config" / "kritarc"))
        if _krita_appimages() and not any(e.host == "krita" and e.kind == "native"
                                          for e in found):
            found.append(EditorInstall("krita", "appimage", _krita_resource_dir(),
                                       KRITA_APPIMAGE_PYTHON, kritarc_path()))
    elif sys.platform in ("win32", "darwin"):  # written down, untested here
        if _gimp_profile_dir().parent.is_dir():
            found.append(EditorInstall("gimp", "native", _gimp_profile_dir(),
                                       "3.12" if sys.platform == "win32" else "3.10"))
        if _krita_resource_dir().is_dir():
            found.append(EditorInstall("krita", "native", _krita_resource_dir(), "3.10",
                                       kritarc_path()))
    # a profile folder an editor already created counts even when its binary is elsewhere
    for host, profile in (("gimp", _gimp_profile_dir()), ("krita", _krita_resource_dir())):
        if profile.is_dir() and not any(e.profile == profile for e in found):
            rc = kritarc_path() if host == "krita" else None
            found.append(EditorInstall(host, "profile", profile, _system_python(), rc))
    return found

