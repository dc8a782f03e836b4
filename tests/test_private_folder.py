"""The private folder of the daemon's socket, against another local user (issue 23).

Another user shares ``$TMPDIR`` (world-writable, sticky) or ``$XDG_RUNTIME_DIR``
with us and plants, before our first run, a symbolic link or a folder of their
own where ours will be. Every command (``serve``, ``status``, ``stop``,
``stylize``) and the plug-ins' job must refuse it in one sentence with exit
status 7 and a fix, and must never follow the link (no chmod of its target, no
socket in it). The other user is a real throwaway account made here when the
tests run as root (``useradd``); elsewhere those cases skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portrait_style import paths

REFUSED = paths.UNSAFE_FOLDER_EXIT
COMMANDS = {
    "status": ["status"],
    "stop": ["stop"],
    "serve": ["serve", "--engine", "noop"],
    "stylize": ["stylize", "sample:astronaut", "--style", "sample:starry_night", "--out",
                "{out}", "--engine", "noop", "--quiet"],
}


@pytest.fixture(scope="module")
def other_user() -> Iterator[str]:
    """A throwaway local account (removed afterwards); skips unless we are root."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("making another Unix user needs root and useradd/runuser")
    name = f"pst{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def _as(user: str, *argv: str) -> None:
    subprocess.run(["runuser", "-u", user, "--", *argv], check=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A ``/tmp``-like folder: everybody may write, nobody may remove others' entries.

    Made directly in the system's temporary folder (pytest's own is private to us).
    """
    shared = Path(tempfile.mkdtemp(prefix="portrait-style-shared-",
                                   dir=os.environ.get("TMPDIR", "/tmp")))
    shared.chmod(0o1777)
    try:
        yield shared
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _env(tmpdir: Path, xdg: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORTRAIT_STYLE_HOME", "XDG_RUNTIME_DIR", "PORTRAIT_STYLE_ENDPOINT")}
    env.update(TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    if xdg is not None:
        env["XDG_RUNTIME_DIR"] = str(xdg)
    return env


def _run(command: str, env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    argv = [a.format(out=out) for a in COMMANDS[command]]
    return subprocess.run([sys.executable, "-m", "portrait_style", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_refused(proc: subprocess.CompletedProcess[str], folder: Path, why: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == REFUSED, proc.stderr
    assert len(lines) == 1, f"not one sentence: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert str(folder) in lines[0] and why in lines[0], lines[0]
    assert "XDG_RUNTIME_DIR" in lines[0]  # the fix


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_planted_link_to_our_folder_is_refused_not_followed(
        command: str, other_user: str, shared_tmp: Path, tmp_path: Path) -> None:
    """Issue 23 case 1: the link's target (a folder of ours) is neither chmodded nor used."""
    ours = tmp_path / "victim-folder"
    ours.mkdir(mode=0o755)
    ours.chmod(0o755)
    link = shared_tmp / f"portrait-style-{os.getuid()}"
    _as(other_user, "ln", "-s", str(ours), str(link))
    proc = _run(command, _env(shared_tmp), tmp_path / "out")
    _assert_refused(proc, link, "symbolic link")
    assert "rm " in proc.stderr
    assert ours.stat().st_mode & 0o777 == 0o755, "the link's target was chmodded"
    assert list(ours.iterdir()) == [], "something was put in the link's target"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_of_another_user_in_tmp_is_refused(
        command: str, other_user: str, shared_tmp: Path, tmp_path: Path) -> None:
    """Issue 23 case 2: ``$TMPDIR/portrait-style-<uid>`` made first by someone else."""
    theirs = shared_tmp / f"portrait-style-{os.getuid()}"
    _as(other_user, "mkdir", "-m", "700", str(theirs))
    proc = _run(command, _env(shared_tmp), tmp_path / "out")
    _assert_refused(proc, theirs, f"belongs to user {other_user}")


def test_a_folder_of_another_user_in_the_runtime_dir_is_refused(
        other_user: str, shared_tmp: Path, tmp_path: Path) -> None:
    """Issue 23 case 2: ``$XDG_RUNTIME_DIR/portrait-style`` made first by someone else."""
    theirs = shared_tmp / "portrait-style"
    _as(other_user, "mkdir", "-m", "777", str(theirs))
    proc = _run("status", _env(tmp_path, xdg=shared_tmp), tmp_path / "out")
    _assert_refused(proc, theirs, f"belongs to user {other_user}")


def test_a_link_to_a_folder_of_another_user_is_refused(
        other_user: str, shared_tmp: Path, tmp_path: Path) -> None:
    """Issue 23 case 2: a link to the other user's own open folder (their socket would win)."""
    theirs = shared_tmp / "bait"
    _as(other_user, "mkdir", "-m", "777", str(theirs))
    link = shared_tmp / f"portrait-style-{os.getuid()}"
    _as(other_user, "ln", "-s", str(theirs), str(link))
    proc = _run("serve", _env(shared_tmp), tmp_path / "out")
    _assert_refused(proc, link, "symbolic link")
    assert list(theirs.iterdir()) == [], "the daemon bound its socket in their folder"


def test_our_own_folder_open_to_others_is_refused_with_the_chmod(
        shared_tmp: Path, tmp_path: Path) -> None:
    """Wrong mode: refused (never silently changed), the fix is the chmod to run."""
    ours = shared_tmp / f"portrait-style-{os.getuid()}"
    ours.mkdir()
    ours.chmod(0o755)
    proc = _run("status", _env(shared_tmp), tmp_path / "out")
    _assert_refused(proc, ours, "mode 755")
    assert f"chmod 700 {ours}" in proc.stderr
    assert ours.stat().st_mode & 0o777 == 0o755


def test_a_fresh_folder_is_made_private(shared_tmp: Path, tmp_path: Path) -> None:
    """Nothing planted: the folder is created 0700 and ``status`` answers as usual."""
    proc = _run("status", _env(shared_tmp), tmp_path / "out")
    assert proc.returncode == 1, proc.stderr  # no daemon runs
    folder = shared_tmp / f"portrait-style-{os.getuid()}"
    assert folder.is_dir() and not folder.is_symlink()
    assert folder.stat().st_mode & 0o777 == 0o700


def test_the_plugins_job_says_the_same_sentence(other_user: str, shared_tmp: Path,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The editors' shared job code: FAILED with the refusal, the document untouched."""
    import numpy as np
    from fake_document import FakeDocument

    from portrait_style.plugin.core import StylizeOptions
    from portrait_style.plugin.job import Connection, JobState, prepare_stylize
    from portrait_style.protocol.messages import Pixels

    # the link's target is a throwaway folder: code that follows the link (the bug this
    # guards against) chmods it and puts its lock there, so never point it at a real one
    target = tmp_path / "a-folder-of-ours"
    target.mkdir()
    target.chmod(0o755)
    link = shared_tmp / f"portrait-style-{os.getuid()}"
    _as(other_user, "ln", "-s", str(target), str(link))
    for name in ("PORTRAIT_STYLE_HOME", "XDG_RUNTIME_DIR", "PORTRAIT_STYLE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    style = tmp_path / "style.png"
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(style)
    doc = FakeDocument(Pixels.from_array(np.full((8, 8, 3), 9, np.uint8)))
    job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=style),
                          lambda p: Pixels.from_array(np.asarray(Image.open(p))),
                          Connection(command=["true"]))
    assert job.run() is JobState.FAILED
    assert str(link) in job.error and "symbolic link" in job.error, job.error
    assert "\n" not in job.error and len(doc.stack) == 1
    assert target.stat().st_mode & 0o777 == 0o755 and list(target.iterdir()) == []
