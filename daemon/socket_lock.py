"""One daemon per Unix socket: an exclusive lock beside the socket file.

Why: binding an ``ipc://`` endpoint makes ZeroMQ delete whatever socket file is
there. A second daemon started on the same socket (two editors starting one at
the same moment, or a user running ``serve`` by hand) would silently take over
the path while the first keeps running, unreachable. The lock makes the second
one fail at once, naming the first one's pid, so whoever started it can use the
running daemon instead.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DaemonAlreadyRunning", "SocketLock"]


class DaemonAlreadyRunning(OSError):
    """Another daemon holds this socket; ``pid`` is its process id when known."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class SocketLock:
    """An ``flock`` on ``<socket>.lock`` held for the daemon's lifetime."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, socket_path: Path) -> SocketLock:
        """Take the lock or raise ``DaemonAlreadyRunning``; writes our pid into it."""
        path = socket_path.with_name(socket_path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            import fcntl
        except ImportError:  # Windows has no ipc:// endpoints: nothing to guard
            return cls(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise DaemonAlreadyRunning(
                f"another daemon{who} is already serving {socket_path}", holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
