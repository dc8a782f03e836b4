"""``portrait-style stylize`` end to end, against real daemon subprocesses (``--engine noop``).

The noop engine returns the content as every layer without loading models, so
these tests check the command-line host, the launcher and the wire in seconds.
The end-to-end run on the embedded models lives with the lead's tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import Daemon, isolated_env, run_cli, start_daemon, stop_daemon
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

W, H = 72, 56


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str], timeout: float = 120,
         ) -> subprocess.CompletedProcess[str]:
    return run_cli("stylize", args, env, timeout)


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("portrait-style: error:")]


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A small RGBA content (alpha gradient), a style, and a half-frame mask."""
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((W, H), Image.Resampling.BILINEAR)
    rgba = np.asarray(photo.convert("RGBA")).copy()
    rgba[..., 3] = np.linspace(40, 255, W, dtype=np.uint8)[None, :]
    content = tmp_path / "in" / "astronaut.png"
    content.parent.mkdir()
    Image.fromarray(rgba, "RGBA").save(content)
    style = tmp_path / "in" / "style.jpg"
    Image.fromarray(data.coffee()).resize((48, 32)).save(style)
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 3:] = 255
    mask_path = tmp_path / "in" / "mask.png"
    Image.fromarray(mask, "L").save(mask_path)
    return {"content": content, "style": style, "mask": mask_path}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it so it does not linger as a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def _stop(pid: int) -> None:
    """Stop a daemon this test started (SIGTERM, then SIGKILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid):
            return


def _serve(home: Path, *extra: str, env: dict[str, str] | None = None) -> Daemon:
    """Start ``portrait-style serve --engine noop`` on a free port; wait until ready."""
    return start_daemon(home, "--engine", "noop", "--device", "cpu", *extra, env=env)


@pytest.fixture(scope="module")
def noop_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real ``portrait-style serve --engine noop`` on a free loopback port (shared)."""
    home = tmp_path_factory.mktemp("daemon-home")
    daemon = _serve(home)
    try:
        yield daemon.endpoint, home
    finally:
        stop_daemon(daemon)


# --- without a daemon ------------------------------------------------------------------


def test_help_documents_exit_codes() -> None:
    res = subprocess.run([sys.executable, "-m", "portrait_style", "stylize", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for code in ("0", "2", "3", "4", "5", "6", "130"):
        assert re.search(rf"^\s+{code}\s+\S", res.stdout, re.M), code


@pytest.mark.parametrize("which", ["content", "style", "mask"])
def test_unreadable_inputs_exit_3_with_one_line(tmp_path: Path, images: dict[str, Path],
                                                which: str) -> None:
    broken = tmp_path / f"broken-{which}.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = {**images, which: broken}
    res = _cli([str(paths["content"]), "--style", str(paths["style"]), "--mask",
                str(paths["mask"]), "--out", str(tmp_path / "out"),
                "--connect", "tcp://127.0.0.1:9"], isolated_env(tmp_path))
    assert res.returncode == 3, res.stderr
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and str(broken) in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_param_exits_2_before_any_daemon(tmp_path: Path, images: dict[str, Path]) -> None:
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out",
                str(tmp_path / "out"), "--param", "portrait.bogus=1"], isolated_env(tmp_path))
    assert res.returncode == 2
    from portrait_style.protocol.knobs import KNOBS

    assert _error_lines(res.stderr) == [
        "portrait-style: error: --param 'portrait.bogus=1': unknown knob 'bogus' for region "
        f"'portrait'; known: {', '.join(KNOBS)}"]
    assert not (tmp_path / "state").exists()  # no daemon was started


def test_refuses_to_overwrite_the_content(tmp_path: Path, images: dict[str, Path]) -> None:
    content = tmp_path / "composite.png"
    content.write_bytes(images["content"].read_bytes())
    before = _sha(content)
    res = _cli([str(content), "--style", str(images["style"]), "--out", str(tmp_path)],
               isolated_env(tmp_path))
    assert res.returncode == 6 and "overwrite the content" in res.stderr
    assert _sha(content) == before


def test_unreachable_connect_endpoint_exits_4(tmp_path: Path, images: dict[str, Path]) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.monotonic()
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out",
                str(tmp_path / "out"), "--connect", endpoint, "--timeout", "1"],
               isolated_env(tmp_path))
    assert res.returncode == 4, res.stderr
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and endpoint in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "state").exists()  # --connect never starts a daemon


# --- against a running noop daemon -----------------------------------------------------


@pytest.mark.slow
def test_stylize_writes_every_file(tmp_path: Path, images: dict[str, Path],
                                   noop_daemon: tuple[str, Path]) -> None:
    from portrait_style.plugin.ora import OraStack, read_ora

    endpoint, _ = noop_daemon
    before = _sha(images["content"])
    out = tmp_path / "out"
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out", str(out),
                "--connect", endpoint, "--portrait-strength", "0.4",
                "--param", "background.strength=0.9"], isolated_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert _sha(images["content"]) == before  # the content file is never modified
    content = np.asarray(Image.open(images["content"]))
    for name in ("background", "portrait", "composite"):
        with Image.open(out / f"{name}.png") as img:
            assert (img.size, img.mode) == ((W, H), "RGBA"), name
            px = np.asarray(img)
        assert np.array_equal(px[..., 3], content[..., 3]), name  # source alpha kept
    with Image.open(out / "mask.png") as img:
        assert (img.size, img.mode) == ((W, H), "L")
    doc = read_ora(out / "layers.ora")
    assert (doc.width, doc.height) == (W, H)
    group = doc.root.children[0]
    assert isinstance(group, OraStack) and group.name == "Portrait style — Style"
    assert [c.name for c in group.children] == ["Person mask", "Portrait", "Background"]
    assert doc.root.children[1].name == "astronaut"
    # noop finds no person: the artist is told, once, and progress went to stderr
    assert res.stderr.count("portrait-style: notice: no person was found") == 1
    assert re.search(r"^portrait-style: +\d+% ", res.stderr, re.M), res.stderr
    assert not _error_lines(res.stderr)
    printed = {Path(line).name for line in res.stdout.splitlines()}
    assert printed == {"background.png", "portrait.png", "mask.png", "composite.png",
                       "layers.ora"}


@pytest.mark.slow
def test_user_mask_reaches_the_outputs(tmp_path: Path, images: dict[str, Path],
                                       noop_daemon: tuple[str, Path]) -> None:
    endpoint, _ = noop_daemon
    out = tmp_path / "out"
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out", str(out),
                "--connect", endpoint, "--mask", str(images["mask"]), "-q"], isolated_env(tmp_path))
    assert res.returncode == 0, res.stderr
    got = np.asarray(Image.open(out / "mask.png"))
    assert np.array_equal(got, np.asarray(Image.open(images["mask"])))
    assert "no person" not in res.stderr


@pytest.mark.slow
def test_outputs_subset_writes_only_those(tmp_path: Path, images: dict[str, Path],
                                          noop_daemon: tuple[str, Path]) -> None:
    endpoint, _ = noop_daemon
    out = tmp_path / "out"
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out", str(out),
                "--connect", endpoint, "--outputs", "background,mask"], isolated_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["background.png", "mask.png"]


@pytest.mark.slow
def test_daemon_error_exits_5(tmp_path: Path, images: dict[str, Path]) -> None:
    """A daemon that requires a token refuses us: one line naming the cause, exit 5."""
    home = tmp_path / "home"
    daemon = _serve(home, env=isolated_env(home, PORTRAIT_STYLE_TOKEN="sesame"))
    endpoint = daemon.endpoint
    try:
        res = _cli([str(images["content"]), "--style", str(images["style"]), "--out",
                    str(tmp_path / "out"), "--connect", endpoint, "-q"], isolated_env(tmp_path))
        assert res.returncode == 5, res.stderr
        lines = _error_lines(res.stderr)
        assert len(lines) == 1 and "token" in lines[0], res.stderr
        ok = _cli([str(images["content"]), "--style", str(images["style"]), "--out",
                   str(tmp_path / "out"), "--connect", endpoint, "-q"],
                  {**isolated_env(tmp_path), "PORTRAIT_STYLE_TOKEN": "sesame"})
        assert ok.returncode == 0, ok.stderr
    finally:
        stop_daemon(daemon)


@pytest.mark.slow
def test_ctrl_c_cancels_the_job_on_the_daemon(tmp_path: Path, images: dict[str, Path]) -> None:
    home = tmp_path / "home"
    daemon = _serve(home, "--noop-delay", "30")
    endpoint = daemon.endpoint
    cli: subprocess.Popen[str] | None = None
    try:
        cli = subprocess.Popen(
            [sys.executable, "-m", "portrait_style", "stylize", str(images["content"]),
             "--style", str(images["style"]), "--out", str(tmp_path / "out"),
             "--connect", endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=isolated_env(tmp_path))
        assert cli.stderr is not None
        seen = []
        for line in cli.stderr:  # plain progress lines: stderr is a pipe, not a tty
            seen.append(line)
            if "segment" in line or "transform" in line:
                break
        assert any("%" in ln for ln in seen), seen
        t0 = time.monotonic()
        cli.send_signal(signal.SIGINT)
        try:
            rc = cli.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cli.kill()
            pytest.fail("Ctrl-C did not end the command in 20 s; stderr:\n"
                        + "".join(seen) + cli.communicate()[1])
        rest = cli.stderr.read()
        assert rc == 130, "".join(seen) + rest
        assert time.monotonic() - t0 < 15  # cancelled, not waited out (30 s job)
        assert "cancelled" in rest and "Traceback" not in rest
        assert not (tmp_path / "out" / "layers.ora").exists()
        assert daemon.proc.poll() is None  # the daemon keeps serving
        from portrait_style.protocol.client import DaemonClient

        with DaemonClient(endpoint, timeout_s=10) as client:
            assert client.ping() < 5
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
        stop_daemon(daemon)


# --- autostart -------------------------------------------------------------------------


def _started_pid(stderr: str) -> int | None:
    match = re.search(r"started a daemon on \S+ \(pid (\d+)", stderr)
    return int(match.group(1)) if match else None


def _ready_pid(home: Path) -> int | None:
    """The pid in a ready file the autostarted daemon wrote (for cleanup)."""
    import json

    for ready in (home / "state").glob("daemon*.ready"):
        try:
            return int(json.loads(ready.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return None


@pytest.mark.slow
def test_autostart_starts_once_and_leaves_the_daemon_running(
        tmp_path: Path, images: dict[str, Path]) -> None:
    home = tmp_path / "home"
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    env = isolated_env(home, PORTRAIT_STYLE_ENDPOINT=endpoint)
    args = [str(images["content"]), "--style", str(images["style"]), "--engine", "noop"]
    pid = None
    try:
        first = _cli([*args, "--out", str(tmp_path / "a")], env, timeout=180)
        pid = _started_pid(first.stderr) or _ready_pid(home)
        assert first.returncode == 0, first.stderr
        assert pid is not None, first.stderr
        assert "starting daemon" in first.stderr  # progress shown while it loads
        log = home / "state" / "logs"
        assert any(log.glob("daemon*.log")), "daemon log not under PORTRAIT_STYLE_HOME"
        os.kill(pid, 0)  # still running after the command finished
        second = _cli([*args, "--out", str(tmp_path / "b")], env, timeout=120)
        assert second.returncode == 0, second.stderr
        assert _started_pid(second.stderr) is None  # found the warm one
        assert (tmp_path / "b" / "layers.ora").exists()
    finally:
        if pid is not None:
            _stop(pid)
            assert _wait_gone(pid, 1.0)


@pytest.mark.slow
def test_autostart_failure_shows_the_daemon_log(tmp_path: Path,
                                                images: dict[str, Path]) -> None:
    """A port taken by something that is not a daemon: the start fails, its log is shown."""
    home = tmp_path / "home"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        endpoint = f"tcp://127.0.0.1:{squatter.getsockname()[1]}"
        res = _cli([str(images["content"]), "--style", str(images["style"]), "--engine",
                    "noop", "--out", str(tmp_path / "out")],
                   isolated_env(home, PORTRAIT_STYLE_ENDPOINT=endpoint), timeout=180)
    assert res.returncode == 4, res.stderr
    lines = _error_lines(res.stderr)
    assert len(lines) == 1 and "daemon could not start" in lines[0], res.stderr
    assert "last lines of its log" in lines[0]
    tail = res.stderr.split("last lines of its log:", 1)[1]
    assert tail.strip(), "the log tail is empty"


# --- launcher helpers ------------------------------------------------------------------


def test_launcher_paths_follow_portrait_style_home(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from portrait_style.plugin import launcher
    from portrait_style.protocol.endpoints import default_endpoint

    monkeypatch.setenv("PORTRAIT_STYLE_HOME", str(tmp_path))
    endpoint = default_endpoint()
    assert endpoint == f"ipc://{tmp_path / 'run' / 'daemon.sock'}"
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700  # only this user gets in
    log, ready = launcher.daemon_files(endpoint)
    assert log == tmp_path / "state" / "logs" / "daemon.log"
    assert ready.parent == tmp_path / "state"
    other_log, other_ready = launcher.daemon_files("tcp://127.0.0.1:6000")
    assert other_log != log and other_ready != ready
    assert launcher.is_local_endpoint("tcp://127.0.0.1:5571")
    assert launcher.is_local_endpoint("tcp://localhost:1")
    assert launcher.is_local_endpoint("ipc:///tmp/x.sock")
    assert not launcher.is_local_endpoint("tcp://10.0.0.2:5571")
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert launcher.log_tail(log, 3) == "line 97\nline 98\nline 99"


def test_file_document_writes_the_contract(tmp_path: Path, images: dict[str, Path]) -> None:
    """The CLI's Document turns a plan (as the core makes it from a reply) into the files."""
    from portrait_style.plugin.cli_host import FileDocument
    from portrait_style.plugin.core import SourceLayer, plan_layers
    from portrait_style.plugin.imageio import load_image
    from portrait_style.plugin.ora import read_ora
    from portrait_style.protocol.messages import Pixels

    pixels = load_image(images["content"])
    mask = np.asarray(Image.open(images["mask"]))
    inverted = pixels.copy()
    inverted[..., :3] = 255 - inverted[..., :3]

    class Reply:  # background = inverted content, portrait = content, mask = right 2/3
        layers = {"background": inverted, "portrait": pixels.copy(), "mask": mask}
        info = {"person_found": True}

    source = SourceLayer("astronaut", Pixels.from_array(pixels))
    plan = plan_layers(Reply(), source, "Style")
    doc = FileDocument(images["content"], pixels, tmp_path / "out")
    doc.add_result_group(plan, images["content"])
    assert sorted(p.name for p in doc.written) == [
        "background.png", "composite.png", "layers.ora", "mask.png", "portrait.png"]
    composite = np.asarray(Image.open(tmp_path / "out" / "composite.png"))
    right, left = composite[:, -1], composite[:, 0]  # composed locally through the mask
    assert np.array_equal(right, pixels[:, -1])
    assert np.array_equal(left[:, :3], 255 - pixels[:, 0, :3])
    ora = read_ora(tmp_path / "out" / "layers.ora")
    assert ora.find("Portrait").pixels[:, 0, 3].max() == 0  # cut away where mask = 0
    assert "write_s" in doc.timings


def test_out_that_is_a_file_is_named_before_any_work(tmp_path: Path,
                                                      images: dict[str, Path]) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("not a folder")
    res = _cli([str(images["content"]), "--style", str(images["style"]), "--out", str(taken)],
               isolated_env(tmp_path / "home"))
    assert res.returncode == 6
    assert _error_lines(res.stderr) == [
        f"portrait-style: error: --out {str(taken)!r} is a file, not a folder: choose a folder "
        "for the results"]
    assert not (tmp_path / "home" / "state").exists()  # refused before a daemon was started


def test_help_shows_defaults_and_the_region_knobs() -> None:
    res = run_cli("stylize", ["--help"], dict(os.environ), 60)
    from portrait_style.protocol.knobs import KNOBS

    assert res.returncode == 0
    assert "region knobs" in res.stdout and all(k in res.stdout for k in KNOBS)
    assert "(default: None)" in res.stdout or "default:" in res.stdout


def test_weights_fetch_of_an_unknown_name_lists_the_names(tmp_path: Path) -> None:
    res = run_cli("weights", ["fetch", "no-such-model"], isolated_env(tmp_path), 60)
    assert res.returncode == 2
    assert "unknown model file 'no-such-model'" in res.stderr and "selfie" in res.stderr
