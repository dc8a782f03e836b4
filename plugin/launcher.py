"""Find the local daemon, or start one and wait until it is ready.

Why: the artist should not have to open a terminal and run ``portrait-style
serve`` before the first stylize. Loading models takes seconds, so a daemon we
start is left running (detached, in its own session, logging to a file) and the
next call finds it warm. A daemon that dies while starting is reported with the
tail of its log, because "it did not start" alone tells nobody anything.

Inside a Flatpak sandbox nothing is started: the product's environment lives
on the host, where the installer's user service runs the daemon; the artist
reads which sandbox it is and the one host command that fixes it
(``portrait_style/sandbox.py``).

The daemon is started with the command the config file names (written by the
set-up for its installation) — never ``sys.executable`` blindly, which inside
an editor is the editor. Two hosts starting a daemon at the same moment take
turns through a lock file, so they end up with one daemon and both learn its
true pid from its ``hello``.

Editor-safe: only the protocol client and the standard library.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths, sandbox
from ..config import Config, load_config
from ..protocol.client import DaemonClient
from ..protocol.endpoints import configured_or_default, default_endpoint, is_local_endpoint
from ..protocol.errors import CANCELLED, Cancelled, DaemonUnreachable

__all__ = ["DaemonHandle", "DaemonStartError", "ensure_daemon", "probe", "start_daemon",
           "wait_ready", "is_local_endpoint", "daemon_files", "log_tail", "STARTING_STAGE",
           "launcher_lock", "stop_daemon"]

ProgressFn = Callable[[str, float], None]

#: the progress stage shown while a daemon starts (fraction -1: unknown)
STARTING_STAGE = "starting daemon: loading models…"
#: the launcher's own start log is rotated past this size (the daemon rotates its own)
MAX_START_LOG_BYTES = 1 << 20


class DaemonStartError(Exception):
    """A daemon could not be started; the message ends with its log's tail."""


@dataclass
class DaemonHandle:
    """The daemon a host will talk to.

    started: True when this call started it (it keeps running afterwards).
    pid: the daemon's own pid (from its ``hello``; the process we started, or
        the one that was already running).
    log_path: the start log when we started it.
    hello: its ``hello_reply`` (engine, device, limits, installation…).
    """

    endpoint: str
    started: bool
    hello: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    log_path: Path | None = None

    def installation_notice(self, expected: str | None) -> str | None:
        """A sentence when the daemon runs from another installation than ``expected``."""
        theirs = str(self.hello.get("installation") or "")
        if not expected or not theirs or theirs == expected:
            return None
        return (f"the daemon on {self.endpoint} (pid {self.pid}) runs from {theirs}, not from "
                f"this installation ({expected}); 'portrait-style stop' replaces it")

    def describe(self) -> str:
        """One line for ``-v`` and status lines: which daemon this is."""
        hello = self.hello
        engine = hello.get("engines", {}).get("active", "?")
        return (f"daemon pid {self.pid} on {self.endpoint}: portrait-style "
                f"{hello.get('daemon_version', '?')}, engine {engine}, device "
                f"{hello.get('device', '?')}, installation {hello.get('installation', '?')}")


def daemon_files(endpoint: str) -> tuple[Path, Path]:
    """(log file, ready file) for a daemon on ``endpoint``, under the user state dir.

    The default endpoint gets the plain names a user would look for
    (``logs/daemon.log``); other endpoints get their own, so two daemons never
    share a ready file.
    """
    suffix = "" if endpoint == default_endpoint() else "-" + re.sub(
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


def probe(endpoint: str, timeout_s: float = 1.5, token: str | None = None,
          curve: Any = None) -> dict[str, Any] | None:
    """``hello`` the daemon at ``endpoint``; None when nothing answers in time.

    ``curve``: ``protocol.curve.CurveClientKeys`` for a CURVE daemon.
    """
    try:
        with DaemonClient(endpoint, timeout_s=timeout_s, token=token, curve=curve) as client:
            return dict(client.hello())
    except DaemonUnreachable:
        return None


def start_daemon(endpoint: str, command: Sequence[str], *, engine: str | None = None,
                 device: str | None = None, extra_args: Sequence[str] = (),
                 log_path: Path | None = None, ready_file: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` (a ``portrait-style serve`` argv) detached from this process.

    Detached (own session, stdin closed, output to the log) so it survives the
    command-line call or the editor that started it, and a Ctrl-C in the
    terminal does not reach it.
    """
    default_log, default_ready = daemon_files(endpoint)
    log_path = log_path or default_log
    ready_file = ready_file or default_ready
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    ready_file.unlink(missing_ok=True)  # a stale one would read as "ready" at once
    _rotate(log_path)
    # stderr is this file, which only rotates at a start: the daemon's full log
    # goes to its own rotating serve.log, and only warnings come here
    cmd = [*command, "--bind", endpoint, "--ready-file", str(ready_file),
           "--stderr-level", "warning"]
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


def _rotate(log_path: Path) -> None:
    """Keep one previous start log; the file never grows past ~1 MiB per start."""
    try:
        if log_path.stat().st_size > MAX_START_LOG_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    except OSError:
        pass


class launcher_lock:  # noqa: N801 - used as a context manager, reads like one
    """An exclusive lock on this user's daemon start, polled so cancel still works.

    Held from the first probe until the started daemon answers: a second host
    that wants a daemon at the same moment waits here, then finds the first
    one's daemon instead of starting another.
    """

    def __init__(self, cancel: threading.Event | None = None, timeout_s: float = 600.0) -> None:
        self._cancel = cancel
        self._timeout = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> launcher_lock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; a second start fails on its port instead
            return self
        path = paths.runtime_dir() / "launcher.lock"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if self._cancel is not None and self._cancel.is_set():
                    self.__exit__()
                    raise Cancelled(CANCELLED,
                                    "cancelled while waiting for another start") from None
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise DaemonStartError("another program has been starting the daemon for "
                                           f"{self._timeout:.0f} s; try again") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def daemon_command(config: Config | None = None) -> list[str]:
    """How to start the daemon: the config file's command (its installation's)."""
    config = config if config is not None else load_config()
    if config.daemon_command:
        return list(config.daemon_command)
    raise DaemonStartError(
        "portrait-style is not set up for this user: the config file has no daemon command. "
        "Run the installer (installer/install.sh), or 'portrait-style config --init' from "
        "the environment portrait-style is installed in")


def ensure_daemon(endpoint: str | None = None, *, command: Sequence[str] | None = None,
                  engine: str | None = None, device: str | None = None,
                  start_timeout_s: float = 300.0, probe_timeout_s: float = 1.5,
                  on_progress: ProgressFn | None = None, token: str | None = None,
                  cancel: threading.Event | None = None,
                  config: Config | None = None) -> DaemonHandle:
    """Use the daemon answering on ``endpoint``, or start one there and wait for it.

    endpoint: default ``$PORTRAIT_STYLE_ENDPOINT``, the config's, or this
        user's local socket. command: the ``serve`` argv (default: the config's).
    ``engine`` / ``device`` only matter when a daemon is started; a running one
    is used as it is (its ``hello`` says which engine it runs).
    """
    config = config if config is not None else load_config()
    endpoint = endpoint or configured_or_default(config.endpoint)
    hello = probe(endpoint, timeout_s=probe_timeout_s, token=token)
    if hello is not None:
        return DaemonHandle(endpoint, started=False, hello=hello, pid=hello.get("pid"))
    if not is_local_endpoint(endpoint):
        raise DaemonUnreachable(
            f"no daemon answered at {endpoint}, and a daemon can only be started here "
            f"for a local endpoint")
    app = sandbox.flatpak_app()
    if app is not None and not command:
        # the product's environment is on the host: a sandbox cannot run it (NOTES-hosts)
        raise DaemonStartError(sandbox.unreachable_message(app, endpoint.startswith("ipc://")))
    argv = list(command) if command else daemon_command(config)
    with launcher_lock(cancel):
        hello = probe(endpoint, timeout_s=probe_timeout_s, token=token)  # won the race?
        if hello is not None:
            return DaemonHandle(endpoint, started=False, hello=hello, pid=hello.get("pid"))
        log_path, ready_file = daemon_files(endpoint)
        proc = start_daemon(endpoint, argv, engine=engine or config.engine,
                            device=device or config.device, log_path=log_path,
                            ready_file=ready_file)
        hello = wait_ready(proc, endpoint, ready_file, log_path, timeout_s=start_timeout_s,
                           on_progress=on_progress, token=token, cancel=cancel)
    return DaemonHandle(endpoint, started=True, hello=hello,
                        pid=hello.get("pid") or proc.pid, log_path=log_path)


def stop_daemon(endpoint: str | None = None, *, timeout_s: float = 15.0,
                token: str | None = None) -> DaemonHandle | None:
    """Stop this user's local daemon (SIGTERM, then SIGKILL); None when none runs."""
    endpoint = endpoint or configured_or_default(load_config().endpoint)
    hello = probe(endpoint, token=token)
    if hello is None:
        return None
    pid = hello.get("pid")
    if not pid or not is_local_endpoint(endpoint):
        raise DaemonStartError(f"the daemon at {endpoint} is not a local process I can stop")
    handle = DaemonHandle(endpoint, started=False, hello=hello, pid=pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return handle
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return handle


def _alive(pid: int) -> bool:
    from ..protocol.client import process_alive

    return process_alive(pid)
