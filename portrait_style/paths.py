"""Where portrait-style keeps its files on this machine.

One place decides, so the daemon's log, the weight cache, the config file, the
local socket and the plug-ins' launcher agree. ``PORTRAIT_STYLE_HOME`` moves
everything under one folder (tests use it to isolate runs); otherwise the
platform's user folders are used.

Standard library only: this module is copied into the editor plug-ins, whose
Python may have nothing but the two wire libraries (so no platformdirs; the
folders below are the ones platformdirs gives, written out).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

APP_NAME = "portrait-style"
HOME_ENV = "PORTRAIT_STYLE_HOME"

#: longest Unix socket path the kernel accepts is 107 bytes; keep a margin
_MAX_SOCKET_PATH = 100


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def _platform_dir(kind: str) -> Path:
    """The user folder of ``kind`` (data, state, config) for this platform."""
    if sys.platform == "win32":
        variable = "APPDATA" if kind == "config" else "LOCALAPPDATA"
        base = Path(os.environ.get(variable) or Path.home() / "AppData" / "Local")
        return base / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    xdg = {"data": ("XDG_DATA_HOME", ".local/share"), "state": ("XDG_STATE_HOME", ".local/state"),
           "config": ("XDG_CONFIG_HOME", ".config")}[kind]
    return _xdg(*xdg) / APP_NAME


def data_dir() -> Path:
    """Long-lived data: model files and their converted forms."""
    override = _home_override()
    return override / "data" if override is not None else _platform_dir("data")


def state_dir() -> Path:
    """Logs and the running daemon's ready file."""
    override = _home_override()
    return override / "state" if override is not None else _platform_dir("state")


def config_dir() -> Path:
    """The config file the installer writes and the plug-ins read."""
    override = _home_override()
    return override / "config" if override is not None else _platform_dir("config")


def weights_cache_dir() -> Path:
    """Verified model files and their conversions.

    ``PORTRAIT_STYLE_WEIGHTS_CACHE`` points it elsewhere on its own, so test runs
    that isolate ``PORTRAIT_STYLE_HOME`` still share one cache of model files.
    """
    value = os.environ.get("PORTRAIT_STYLE_WEIGHTS_CACHE")
    return Path(value).expanduser() if value else data_dir() / "weights"


def log_dir() -> Path:
    return state_dir() / "logs"


def runtime_dir() -> Path:
    """A folder only this user can enter, for the local daemon's socket and lock.

    ``$XDG_RUNTIME_DIR/portrait-style`` where the session has one (Linux),
    otherwise ``<tmp>/portrait-style-<uid>``. Created with mode 0700; one that
    exists but belongs to someone else, or that others can enter, is refused —
    a socket there could be another user's daemon.
    """
    override = _home_override()
    if override is not None:
        folder = override / "run"
    elif os.environ.get("XDG_RUNTIME_DIR") and sys.platform.startswith("linux"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / APP_NAME
    else:
        folder = Path(tempfile.gettempdir()) / f"{APP_NAME}-{_uid()}"
    return _private_folder(folder)


def _uid() -> int | str:
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else os.environ.get("USERNAME", "user")


def _private_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name != "posix":
        return folder
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user: refusing to put the "
                              "daemon's socket there")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def socket_path(name: str = "daemon") -> Path:
    """The local daemon's Unix socket, short enough for the kernel's limit."""
    folder = runtime_dir()
    path = folder / f"{name}.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    short = _private_folder(Path(tempfile.gettempdir()) / f"{APP_NAME}-{_uid()}")
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return short / f"{name}-{digest}.sock"


def installation() -> str:
    """Which installation this process runs from (its environment's prefix).

    The daemon reports it in ``hello`` so a client can tell "my daemon" from one
    started by another checkout or install that happens to use the same socket.
    """
    return str(Path(sys.prefix).resolve())
