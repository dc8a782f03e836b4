"""Which daemon a client talks to by default, and whether an endpoint is local.

Why per user: a machine-wide TCP port is answered by whichever daemon got there
first — another user's, or another checkout's — and the client cannot tell. The
default is therefore a Unix socket in a folder only this user can enter
(``paths.runtime_dir``, mode 0700): nobody else can connect to it, and nobody
else can put a socket there for us to find.

Windows has no Unix sockets for ZeroMQ: there the default is loopback TCP on a
port derived from the user's name (so two users of one machine do not collide),
and the daemon requires a token kept in a file under the user's own state
folder (``local_secret``), which only that user can read. Written down here and
in SPEC.md §1; only Linux is tested.

``PORTRAIT_STYLE_ENDPOINT`` (or the config file, or ``--connect``) names any
other endpoint explicitly. Standard library only (copied into the plug-ins).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
from pathlib import Path

from .. import paths

__all__ = ["ENDPOINT_ENV", "default_endpoint", "default_token", "describe_endpoint", "ipc_path",
           "is_local_endpoint", "is_loopback_tcp", "local_secret"]

#: environment variable naming the endpoint to use instead of the default
ENDPOINT_ENV = "PORTRAIT_STYLE_ENDPOINT"

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Windows: per-user ports are drawn from this range
_WINDOWS_PORT_BASE, _WINDOWS_PORT_SPAN = 40000, 20000


def default_endpoint() -> str:
    """This user's local daemon: ``ipc://…/daemon.sock``, or per-user TCP on Windows."""
    if sys.platform == "win32":
        user = os.environ.get("USERNAME", "user").lower().encode()
        port = _WINDOWS_PORT_BASE + int(hashlib.sha256(user).hexdigest(), 16) % _WINDOWS_PORT_SPAN
        return f"tcp://127.0.0.1:{port}"
    return f"ipc://{paths.socket_path()}"


def configured_or_default(configured: str | None = None) -> str:
    """``$PORTRAIT_STYLE_ENDPOINT``, else ``configured`` (the config file's), else the default."""
    return os.environ.get(ENDPOINT_ENV) or configured or default_endpoint()


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an ``ipc://`` endpoint (None for other transports)."""
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


def is_loopback_tcp(endpoint: str) -> bool:
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:/]+):(\d+|\*)", endpoint)
    return bool(match) and match.group(1).lower() in _LOOPBACK_HOSTS


def is_local_endpoint(endpoint: str) -> bool:
    """Whether a daemon for ``endpoint`` runs (or could be started) on this machine."""
    return endpoint.startswith("ipc://") or is_loopback_tcp(endpoint)


def describe_endpoint(endpoint: str) -> str:
    """Words for the endpoint in messages to the artist."""
    path = ipc_path(endpoint)
    if path is not None:
        return f"the local daemon ({path})"
    if is_loopback_tcp(endpoint):
        return f"the daemon on this machine ({endpoint})"
    return f"the daemon at {endpoint}"


def default_token(endpoint: str) -> str | None:
    """The token the default endpoint needs: Windows' per-user secret, else none."""
    if sys.platform == "win32" and endpoint == default_endpoint():
        return local_secret()
    return None


def local_secret() -> str:
    """Windows: the token of this user's loopback daemon, created on first use.

    Kept in the user's state folder with owner-only permissions; both the
    daemon and the plug-ins read it. Unused on Linux and macOS (the socket's
    folder already keeps other users out).
    """
    path = paths.state_dir() / "local-secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token
