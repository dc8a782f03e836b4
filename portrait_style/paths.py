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

import contextlib
import hashlib
import os
import stat
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
    otherwise ``<tmp>/portrait-style-<uid>``. Created with mode 0700 and checked
    without following links (``_private_folder``): a symbolic link, a folder of
    another user or one that others may enter raises ``UnsafeFolderError`` —
    a socket there could be another user's daemon, and following a planted link
    would hand the daemon's socket (and a chmod) to a folder of the link's choice.
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


#: the exit status of every command that refuses an unsafe private folder
UNSAFE_FOLDER_EXIT = 7


class UnsafeFolderError(Exception):
    """The private folder is a link, another user's, or open to others: refused.

    Deliberately not an ``OSError``: nothing that tolerates a missing or
    unwritable folder may swallow it. The message is one sentence that names
    the folder, what is wrong and the fix; commands exit with
    ``UNSAFE_FOLDER_EXIT``.
    """

    exit_code = UNSAFE_FOLDER_EXIT


def _private_folder(folder: Path) -> Path:
    """Create or check ``folder`` (mode 0700, ours) without following a link at its name.

    Why not ``mkdir`` + ``stat`` + ``chmod``: in a shared, sticky folder (``/tmp``)
    another user can put a symbolic link where our folder will be; ``stat`` and
    ``chmod`` follow it. Here the parent is opened once, the folder is made and
    opened relative to it with ``O_NOFOLLOW``, and owner and mode are checked on
    what was opened (``fstat``), never changed. A folder we own in a sticky
    parent cannot be renamed or replaced by others, so later uses of the path
    reach this same folder.
    """
    if os.name != "posix":
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder.name, 0o700, dir_fd=parent_fd)
        try:
            fd = os.open(folder.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                         dir_fd=parent_fd)
        except OSError as exc:
            raise _refusal(folder, parent_fd, exc) from None
    finally:
        os.close(parent_fd)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_uid != os.getuid():
        raise UnsafeFolderError(
            f"refusing {folder}: it belongs to {_user_name(info.st_uid)}, not to you, so a "
            f"daemon socket there could be theirs; have it removed (rm -r {folder}, as its "
            f"owner or an administrator) or {_ELSEWHERE}")
    if info.st_mode & 0o077:
        raise UnsafeFolderError(
            f"refusing {folder}: others may enter it (mode {info.st_mode & 0o777:o}), so a "
            f"socket there could be someone else's; run 'chmod 700 {folder}' or "
            f"{_ELSEWHERE}")
    return folder


_ELSEWHERE = ("set XDG_RUNTIME_DIR (or PORTRAIT_STYLE_HOME) to a folder only you can "
              "enter")


def _refusal(folder: Path, parent_fd: int, exc: OSError) -> UnsafeFolderError:
    """Words for a folder that could not be opened as a plain directory of ours."""
    try:
        info = os.stat(folder.name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(folder.name, dir_fd=parent_fd)
        except OSError:
            target = "?"
        return UnsafeFolderError(
            f"refusing {folder}: it is a symbolic link (to {target}, made by "
            f"{_user_name(info.st_uid)}), which could send the daemon's socket anywhere; "
            f"remove the link (rm {folder}) or {_ELSEWHERE}")
    if info is not None and not stat.S_ISDIR(info.st_mode):
        return UnsafeFolderError(
            f"refusing {folder}: it is a file, not a folder (made by "
            f"{_user_name(info.st_uid)}); remove it (rm {folder}) or {_ELSEWHERE}")
    return UnsafeFolderError(f"cannot open {folder}: {exc.strerror or exc}; {_ELSEWHERE}")


def _user_name(uid: int) -> str:
    if uid == getattr(os, "getuid", lambda: -1)():
        return "you"
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


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
