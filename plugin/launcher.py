"""Find the local daemon, or start one and wait until it is ready.

Why: the artist should not have to open a terminal and run ``portrait-style
serve`` before the first stylize. Loading models takes seconds, so a daemon we
start is left running (detached, in its own session, logging to a file) and the
next call finds it warm. A daemon that dies while starting is reported with the
tail of its log, because "it did not start" alone tells nobody anything.

Only the protocol client is used to talk to it: no torch, no daemon imports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..protocol.client import DaemonClient
from ..protocol.constants import DEFAULT_ENDPOINT
from ..protocol.errors import CANCELLED, Cancelled, DaemonUnreachable

__all__ = ["DaemonHandle", "DaemonStartError", "ensure_daemon", "probe", "start_daemon",
           "wait_ready", "is_local_endpoint", "daemon_files", "log_tail", "STARTING_STAGE"]

ProgressFn = Callable[[str, float], None]

#: the progress stage shown while a daemon starts (fraction -1: unknown)
STARTING_STAGE = "starting daemon: loading models…"

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class DaemonStartError(Exception):
    """A daemon could not be started; the message ends with its log's tail."""


@dataclass
class DaemonHandle:
    """The daemon a host will talk to.

    started: True when this call started it (it keeps running afterwards).
    pid / log_path: of the daemon we started; None when one was already running.
    hello: its ``hello_reply`` (engine, device, limits…).
    """

    endpoint: str
    started: bool
    hello: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    log_path: Path | None = None


def is_local_endpoint(endpoint: str) -> bool:
    """Whether a daemon for ``endpoint`` could be started on this machine."""
    if endpoint.startswith("ipc://"):
        return True
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:]+):(\d+)", endpoint)
    return bool(match) and match.group(1).lower() in _LOCAL_HOSTS


def daemon_files(endpoint: str) -> tuple[Path, Path]:
    """(log file, ready file) for a daemon on ``endpoint``, under the user state dir.

    The default endpoint gets the plain names a user would look for
    (``logs/daemon.log``); other endpoints get their own, so two daemons never
    share a ready file.
    """
    suffix = "" if endpoint == DEFAULT_ENDPOINT else "-" + re.sub(
        r"[^A-Za-z0-9]+", "-", endpoint).strip("-")
    return (paths.log_dir() / f"daemon{suffix}.log",
            paths.state_dir() / f"daemon{suffix}.ready")


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (empty when there is none)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def probe(endpoint: str, timeout_s: float = 1.5, token: str | None = None) -> dict[str, Any] | None:
    """``hello`` the daemon at ``endpoint``; None when nothing answers in time."""
    try:
        with DaemonClient(endpoint, timeout_s=timeout_s, token=token) as client:
            return dict(client.hello())
    except DaemonUnreachable:
        return None


def start_daemon(endpoint: str, *, engine: str | None = None, device: str | None = None,
                 python: str | None = None, extra_args: Sequence[str] = (),
                 log_path: Path | None = None, ready_file: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m portrait_style serve`` detached from this process.

    Detached (own session, stdin closed, output to the log) so it survives the
    command-line call or the editor that started it, and a Ctrl-C in the
    terminal does not reach it. ``python`` is the interpreter that has the
    daemon's dependencies installed (default: this one).
    """
    default_log, default_ready = daemon_files(endpoint)
    log_path = log_path or default_log
    ready_file = ready_file or default_ready
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    ready_file.unlink(missing_ok=True)  # a stale one would read as "ready" at once
    cmd = [python or sys.executable, "-m", "portrait_style", "serve", "--bind", endpoint,
           "--ready-file", str(ready_file)]
    if engine:
        cmd += ["--engine", engine]
    if device:
        cmd += ["--device", device]
    cmd += list(extra_args)
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                   | subprocess.DETACHED_PROCESS)
    else:
        kwargs["start_new_session"] = True
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: "
                  f"{' '.join(cmd)}\n".encode())
        log.flush()
        # cwd: a long-lived daemon must not pin whatever folder the user was in
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, close_fds=True,
                                cwd=str(log_path.parent),
                                env=env if env is not None else os.environ.copy(), **kwargs)


def wait_ready(proc: subprocess.Popen[bytes], endpoint: str, ready_file: Path,
               log_path: Path | None, *, timeout_s: float = 300.0,
               on_progress: ProgressFn | None = None, token: str | None = None,
               cancel: threading.Event | None = None, poll_s: float = 0.1) -> dict[str, Any]:
    """Wait until the daemon we started wrote its ready file and answers ``hello``.

    Raises ``DaemonStartError`` (with the log's tail) when it exits first or
    does not get ready within ``timeout_s`` (then it is stopped: a daemon that
    never came up must not linger holding the port). ``cancel`` stops the wait
    with ``Cancelled`` but leaves the daemon starting, for the next call.
    """
    deadline = time.monotonic() + timeout_s
    next_report = 0.0
    while True:
        now = time.monotonic()
        if on_progress is not None and now >= next_report:
            on_progress(STARTING_STAGE, -1.0)
            next_report = now + 1.0
        if cancel is not None and cancel.is_set():
            raise Cancelled(CANCELLED, "cancelled while the daemon was starting")
        if ready_file.exists():
            hello = probe(endpoint, timeout_s=5.0, token=token)
            if hello is not None:
                return hello
        code = proc.poll()
        if code is not None:
            # lost a race with another starter? then that daemon is as good
            hello = probe(endpoint, timeout_s=1.0, token=token)
            if hello is not None:
                return hello
            raise DaemonStartError(_start_failure(
                f"the daemon exited with status {code} while starting", log_path))
        if now >= deadline:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise DaemonStartError(_start_failure(
                f"the daemon was not ready after {timeout_s:.0f} s", log_path))
        time.sleep(poll_s)


def _start_failure(what: str, log_path: Path | None) -> str:
    tail = log_tail(log_path)
    where = f" (log: {log_path})" if log_path else ""
    if not tail:
        return what + where
    body = "\n".join("    " + line for line in tail.splitlines())
    return f"{what}{where}; last lines of its log:\n{body}"


def ensure_daemon(endpoint: str = DEFAULT_ENDPOINT, *, engine: str | None = None,
                  device: str | None = None, start_timeout_s: float = 300.0,
                  probe_timeout_s: float = 1.5, on_progress: ProgressFn | None = None,
                  token: str | None = None, python: str | None = None,
                  cancel: threading.Event | None = None) -> DaemonHandle:
    """Use the daemon answering on ``endpoint``, or start one there and wait for it.

    ``engine`` / ``device`` only matter when a daemon is started; a running one
    is used as it is (its ``hello`` says which engine it runs).
    """
    hello = probe(endpoint, timeout_s=probe_timeout_s, token=token)
    if hello is not None:
        return DaemonHandle(endpoint, started=False, hello=hello)
    if not is_local_endpoint(endpoint):
        raise DaemonUnreachable(
            f"no daemon answered at {endpoint}, and a daemon can only be started here "
            f"for a local endpoint")
    log_path, ready_file = daemon_files(endpoint)
    proc = start_daemon(endpoint, engine=engine, device=device, python=python,
                        log_path=log_path, ready_file=ready_file)
    hello = wait_ready(proc, endpoint, ready_file, log_path, timeout_s=start_timeout_s,
                       on_progress=on_progress, token=token, cancel=cancel)
    return DaemonHandle(endpoint, started=True, hello=hello, pid=proc.pid, log_path=log_path)
