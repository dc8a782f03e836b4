"""Start and stop real ``portrait-style serve`` subprocesses for tests and benchmarks.

One harness for every test that needs a daemon: it binds a free loopback port
(``tcp://127.0.0.1:*``), waits for the ready file (which carries the real
endpoint), isolates ``PORTRAIT_STYLE_HOME`` and never leaves a daemon behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 180.0
#: environment variables a test daemon or CLI must not inherit from the developer
_PRIVATE_ENV = ("PORTRAIT_STYLE_TOKEN", "PORTRAIT_STYLE_ENDPOINT")


@dataclass
class Daemon:
    endpoint: str
    proc: subprocess.Popen
    home: Path
    ready_file: Path

    def log(self) -> str:
        path = self.home / "state" / "logs" / "serve.log"
        return path.read_text() if path.exists() else ""


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment with ``PORTRAIT_STYLE_HOME`` at ``home`` and no private settings."""
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    env.update({"PORTRAIT_STYLE_HOME": str(home), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def start_daemon(home: Path, *args: str, bind: str = "tcp://127.0.0.1:*",
                 env: dict[str, str] | None = None) -> Daemon:
    """Start ``serve`` and wait for its ready file; the endpoint is read from it."""
    home.mkdir(parents=True, exist_ok=True)
    ready = home / "ready.json"
    cmd = [sys.executable, "-m", "portrait_style", "serve", "--bind", bind,
           "--ready-file", str(ready), *args]
    stderr = home / "stderr.txt"
    with open(stderr, "w") as sink:  # a file, not a pipe: a full pipe would block the daemon
        proc = subprocess.Popen(cmd, env=env or isolated_env(home),
                                stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}: {stderr.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"daemon not ready in {START_TIMEOUT_S} s: {stderr.read_text()}")
        time.sleep(0.05)
    return Daemon(json.loads(ready.read_text())["endpoint"], proc, home, ready)


def stop_daemon(daemon: Daemon) -> int:
    """SIGTERM, then SIGKILL after 15 s; returns the exit code."""
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(15)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()
    return daemon.proc.returncode


@contextlib.contextmanager
def running(home: Path, *args: str, **kwargs: str) -> Iterator[Daemon]:
    daemon = start_daemon(home, *args, **kwargs)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


def run_cli(command: str, args: list[str], env: dict[str, str],
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``portrait-style COMMAND ARGS`` as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "portrait_style", command, *args],
                          capture_output=True, text=True, env=env, timeout=timeout)
