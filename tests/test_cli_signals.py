"""Killing the command line while it writes leaves nothing behind (issue 23 case 5).

Before: SIGKILL left 290–459 MiB of hidden ``.NAME.XXXX.tmp`` files over 4–5
kills, SIGTERM 76–135 MiB and SIGHUP 42–331 MiB per run, and a later good run
did not remove them. Each signal is sent here while the files are being
written (seen in the process's open files), against a real daemon; the output
folder must then hold no byte, or, after a later good run, only the outputs.
The file system without ``O_TMPFILE`` (hidden named temporaries) is tested too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import Daemon, isolated_env, running
from PIL import Image

pytestmark = pytest.mark.slow

OUTPUTS = ["background.png", "composite.png", "layers.ora", "mask.png", "portrait.png"]
#: run the command line with hidden named temporaries, as on a file system without O_TMPFILE
NAMED_TEMPORARIES = ("import sys; from portrait_style.plugin import imageio; "
                     "imageio._open_unnamed = lambda folder: None; "
                     "from portrait_style.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("signals"), "--engine", "noop") as d:
        yield d


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """Noise (it deflates badly): writing its five outputs takes long enough to hit."""
    path = tmp_path_factory.mktemp("photo") / "noise.png"
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(
        path, compress_level=0)
    return path


def _start(daemon: Daemon, photo: Path, out: Path, named: bool) -> subprocess.Popen:
    args = ["stylize", str(photo), "--style", "sample:starry_night", "--out", str(out),
            "--connect", daemon.endpoint, "-q"]
    head = [sys.executable, "-c", NAMED_TEMPORARIES] if named else [
        sys.executable, "-m", "portrait_style"]
    return subprocess.Popen([*head, *args], env=isolated_env(out.parent / "home"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _writing_into(pid: int, out: Path) -> bool:
    """Whether process ``pid`` has a file open in ``out`` (named or not)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(out) + "/"):
                return True
        except OSError:
            continue
    return False


def _kill_while_writing(proc: subprocess.Popen, out: Path, signum: int) -> None:
    deadline = time.monotonic() + 120
    while not _writing_into(proc.pid, out):
        assert proc.poll() is None, f"finished before writing was seen: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "never started writing"
        time.sleep(0.002)
    time.sleep(0.05)  # well into the writing
    proc.send_signal(signum)
    proc.wait(60)


def _left(out: Path) -> tuple[list[str], int]:
    if not out.exists():
        return [], 0
    files = sorted(p.name for p in out.iterdir())
    return files, sum(p.stat().st_size for p in out.iterdir())


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named-temporaries"])
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                          (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_while_writing_leaves_no_file(daemon: Daemon, photo: Path, tmp_path: Path,
                                               signum: int, code: int, named: bool) -> None:
    out = tmp_path / "out"
    proc = _start(daemon, photo, out, named)
    _kill_while_writing(proc, out, signum)
    files, size = _left(out)
    stderr = proc.stderr.read()
    print(f"{signal.Signals(signum).name} ({'named' if named else 'unnamed'}): exit "
          f"{proc.returncode}, left {len(files)} file(s), {size / 2**20:.1f} MiB")
    assert files == [], f"left behind: {files} ({size} bytes)"
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named-temporaries"])
def test_sigkill_leftovers_are_gone_after_the_next_run(daemon: Daemon, photo: Path,
                                                       tmp_path: Path, named: bool) -> None:
    """SIGKILL runs no handler: unnamed files vanish with the process, named ones are
    removed by the next run into the same folder (its pid is dead)."""
    out = tmp_path / "out"
    for _ in range(2):
        proc = _start(daemon, photo, out, named)
        _kill_while_writing(proc, out, signal.SIGKILL)
    files, size = _left(out)
    print(f"SIGKILL x2 ({'named' if named else 'unnamed'}): left {len(files)} file(s), "
          f"{size / 2**20:.1f} MiB")
    if not named:
        assert files == [], files
    proc = _start(daemon, photo, out, named)
    assert proc.wait(120) == 0, proc.stderr.read()
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
