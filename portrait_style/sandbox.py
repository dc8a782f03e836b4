"""Whether this process runs inside a Flatpak sandbox, and what fixes it there.

Why: GIMP and Krita from Flathub run their plug-ins inside the app's sandbox.
There ``$XDG_CONFIG_HOME`` points into ``~/.var/app/<app-id>/config`` (so the
config file the installer wrote on the host is not where the plug-in looks),
``$XDG_RUNTIME_DIR`` is private to the app (so the daemon's per-user socket is
invisible unless the host folder is exposed with ``flatpak override``), and
host programs — the product's environment — cannot be run. The plug-in can
still reach a daemon that runs on the host through the exposed socket folder.

This module only *recognises* the sandbox and words the fixes; the installer
does the set-up (``installer/install.py``). Standard library only: it is
copied into the editor plug-ins.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import paths

__all__ = ["FLATPAK_INFO", "SERVICE_NAME", "app_name", "flatpak_app", "host_config_dir",
           "override_command", "socket_folder_exposed", "unreachable_message"]

#: the file Flatpak puts at the root of every sandbox
FLATPAK_INFO = Path("/.flatpak-info")
#: the systemd user unit the installer adds for Flatpak editors
SERVICE_NAME = "portrait-style.service"
#: words for the Flathub ids artists have
_APP_NAMES = {"org.gimp.GIMP": "GIMP", "org.kde.krita": "Krita"}


def flatpak_app() -> str | None:
    """The Flatpak app id this process runs in (``$FLATPAK_ID`` or /.flatpak-info), else None."""
    app = os.environ.get("FLATPAK_ID", "").strip()
    if app:
        return app
    try:
        text = FLATPAK_INFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Application]" and line.startswith("name="):
            return line.split("=", 1)[1].strip() or "a Flatpak app"
    return "a Flatpak app"


def app_name(app: str) -> str:
    """"GIMP" for org.gimp.GIMP, the id itself for other apps."""
    return _APP_NAMES.get(app, app)


def host_config_dir() -> Path:
    """The host's portrait-style config folder, as seen from inside a sandbox.

    Flatpak passes the host's ``$XDG_CONFIG_HOME`` on as ``$HOST_XDG_CONFIG_HOME``;
    without it the host uses ``~/.config``, which GIMP's and Krita's Flatpaks may read.
    """
    base = os.environ.get("HOST_XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / paths.APP_NAME


def override_command(app: str) -> str:
    """The host command that shows the daemon's socket folder to ``app``."""
    return f"flatpak override --user --filesystem=xdg-run/{paths.APP_NAME} {app}"


def socket_folder_exposed() -> bool:
    """Whether the runtime folder is the host's, mounted in (not the sandbox's own copy).

    Flatpak's ``--filesystem=xdg-run/NAME`` bind-mounts the host folder; a folder
    the plug-in created inside the private runtime dir is not a mount point.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return False
    folder = Path(runtime) / paths.APP_NAME
    try:
        return folder.is_dir() and os.path.ismount(folder)
    except OSError:
        return False


def unreachable_message(app: str, over_socket: bool = True) -> str:
    """What the artist reads when no daemon answers inside the sandbox: where, and the fix.

    over_socket: the endpoint is the per-user socket (then a hidden socket folder
    is the likelier cause); False for a loopback TCP endpoint the config names.
    """
    editor = app_name(app)
    where = f"{editor} runs in a Flatpak sandbox ({app})"
    if over_socket and not socket_folder_exposed():
        return (f"{where} that cannot see the portrait-style daemon's socket folder. "
                f"On the host (outside the sandbox) run: {override_command(app)} — "
                f"then restart {editor}")
    return (f"{where} and cannot start the portrait-style daemon itself; no daemon answers on "
            f"the host. On the host run: systemctl --user enable --now {SERVICE_NAME} "
            "(added by the installer; 'portrait-style serve' in a terminal works too)")
