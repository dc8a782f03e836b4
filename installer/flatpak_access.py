"""What lets a Flatpak editor reach the daemon on the host: its overrides and the user unit.

Why its own module: the installer grants and takes back the access, and
``doctor`` checks it, so both read the same files. The grant is Flatpak's own
per-user override (``flatpak override --user --filesystem=xdg-run/portrait-style
APP``), stored as a keyfile under ``$FLATPAK_USER_DIR/overrides/APP``; where
the ``flatpak`` command is missing the installer writes the same entry there.
Uninstalling removes only that one entry. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .. import paths
from ..sandbox import SERVICE_NAME

__all__ = ["XDG_RUN_FILESYSTEM", "app_config_copy", "flatpak_override_granted",
           "grant_override", "overrides_file", "remove_override", "service_unit_path"]

#: the Flatpak sandbox permission that shows the daemon's socket folder to an app
XDG_RUN_FILESYSTEM = f"xdg-run/{paths.APP_NAME}"


def app_config_copy(app: str) -> Path:
    """The config file as the plug-in in Flatpak ``app`` looks for it (its XDG_CONFIG_HOME)."""
    return Path.home() / ".var" / "app" / app / "config" / paths.APP_NAME / "config.json"


def service_unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / SERVICE_NAME


def overrides_file(app: str) -> Path:
    base = os.environ.get("FLATPAK_USER_DIR") or str(Path.home() / ".local" / "share" /
                                                      "flatpak")
    return Path(base) / "overrides" / app


def _entries(app: str) -> tuple[list[str], int | None, list[str]]:
    """(lines of the app's overrides file, index of its filesystems= line, its entries)."""
    try:
        lines = overrides_file(app).read_text(encoding="utf-8").splitlines()
    except OSError:
        return [], None, []
    for index, line in enumerate(lines):
        if line.startswith("filesystems="):
            return lines, index, [e for e in line.split("=", 1)[1].split(";") if e]
    return lines, None, []


def flatpak_override_granted(app: str) -> bool:
    return XDG_RUN_FILESYSTEM in _entries(app)[2]


def grant_override(app: str, run: Callable[[list[str]], None],
                   say: Callable[[str], None]) -> None:
    """``flatpak override`` for ``app``; the same keyfile entry when there is no flatpak command."""
    flatpak = shutil.which("flatpak")
    if flatpak is not None:
        run([flatpak, "override", "--user", f"--filesystem={XDG_RUN_FILESYSTEM}", app])
        return
    if flatpak_override_granted(app):
        return
    lines, index, entries = _entries(app)
    value = "filesystems=" + ";".join([*entries, XDG_RUN_FILESYSTEM]) + ";"
    if index is not None:
        lines[index] = value
    elif "[Context]" in lines:
        lines.insert(lines.index("[Context]") + 1, value)
    else:
        lines += ["[Context]", value]
    target = overrides_file(app)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    say(f"no flatpak command here: added {XDG_RUN_FILESYSTEM} to {target}")


def remove_override(app: str, say: Callable[[str], None]) -> None:
    """Take back only the one filesystem entry an install added."""
    flatpak = shutil.which("flatpak")
    if flatpak is not None:
        subprocess.run([flatpak, "override", "--user", f"--nofilesystem={XDG_RUN_FILESYSTEM}",
                        app], capture_output=True)
    lines, index, entries = _entries(app)
    if index is None:
        return
    rest = [e for e in entries if e not in (XDG_RUN_FILESYSTEM, "!" + XDG_RUN_FILESYSTEM)]
    if rest:
        lines[index] = "filesystems=" + ";".join(rest) + ";"
    else:
        del lines[index]
    target = overrides_file(app)
    if [line for line in lines if line.strip() and line.strip() != "[Context]"]:
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        target.unlink()
    say(f"removed {XDG_RUN_FILESYSTEM} from {target}")
