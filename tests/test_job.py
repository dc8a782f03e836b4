"""The job API a GUI host drives, against real daemon subprocesses (``--engine noop``).

prepare (GUI thread) → run with events (worker) → apply (GUI thread), re-runs
that keep the artist's mask, cancel, a daemon killed mid-job, the editor-safe
import rule, and the per-user daemon's lifecycle (start once, status, stop).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import isolated_env, run_cli, running
from fake_document import FakeDocument
from PIL import Image

from portrait_style.plugin.core import BACKGROUND_LAYER, PORTRAIT_LAYER, StylizeOptions
from portrait_style.plugin.job import (
    Connection,
    JobEvent,
    JobState,
    apply,
    prepare_rerun,
    prepare_stylize,
)
from portrait_style.protocol.messages import Pixels

REPO = Path(__file__).resolve().parents[1]
W, H = 48, 32


def _photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    px = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    px[..., 3] = np.linspace(30, 255, W, dtype=np.uint8)[None, :]
    return px


def _load_style(path: Path) -> Pixels:
    return Pixels.from_array(np.asarray(Image.open(path).convert("RGB")))


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    path = tmp_path / "great_wave.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path)
    return path


@pytest.mark.slow
def test_stylize_then_rerun_keeps_the_artists_mask(tmp_path: Path, style_file: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop") as daemon:
        doc = FakeDocument(Pixels.from_array(_photo()), offset=(4, 6))
        before = doc.source.pixels.tobytes()
        conn = Connection(endpoint=daemon.endpoint, start_daemon=False)
        job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=style_file,
                                                              portrait_strength=0.4),
                              _load_style, conn)
        events: list[JobEvent] = []
        assert job.run(events.append) is JobState.DONE, job.error
        states = [e.state for e in events]
        assert states[0] is JobState.CONNECTING and states[-1] is JobState.DONE
        assert [e.stage for e in events if e.state is JobState.RUNNING][1:4] == [
            "started", "segment", "transform"]
        group = apply(doc, job)
        assert doc.undo_steps == 1 and group.name == "Portrait style — Great Wave"
        assert doc.source.pixels.tobytes() == before  # the source is never modified
        record = json.loads(doc.read_record(group))
        assert record["params"]["regions"] == {"portrait": {"strength": 0.4}}
        assert record["source_id"] == doc.source.layer_id and record["engine"] == "noop"

        # the artist paints the mask; re-running the portrait sends that mask and keeps it
        edited = np.zeros((H, W, 1), np.uint8)
        edited[:, : W // 3] = 255
        doc.write_mask(group, Pixels.from_array(edited))
        background = doc.result_layers(group)[BACKGROUND_LAYER].pixels
        rerun = prepare_rerun(doc, doc.result_layers(group)[PORTRAIT_LAYER], "portrait",
                              _load_style, conn)
        assert rerun.params.outputs == ("portrait",)
        assert rerun.mask is not None and rerun.mask.tobytes() == edited.tobytes()
        assert rerun.run() is JobState.DONE, rerun.error
        apply(doc, rerun)
        assert doc.read_mask(group).tobytes() == edited.tobytes()
        assert doc.result_layers(group)[BACKGROUND_LAYER].pixels is background  # untouched
        assert doc.undo_steps == 3


@pytest.mark.slow
def test_cancel_while_running_leaves_the_document_alone(tmp_path: Path,
                                                        style_file: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop", "--noop-delay", "20") as daemon:
        doc = FakeDocument(Pixels.from_array(_photo()))
        job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=style_file),
                              _load_style, Connection(endpoint=daemon.endpoint,
                                                      start_daemon=False))

        def cancel_once_running(event: JobEvent) -> None:
            if event.state is JobState.RUNNING and event.stage == "segment":
                job.cancel()

        assert job.run(cancel_once_running) is JobState.CANCELLED
        assert len(doc.stack) == 1 and doc.undo_steps == 0


@pytest.mark.slow
def test_a_killed_local_daemon_is_reported_within_a_second(tmp_path: Path,
                                                           style_file: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop", "--noop-delay", "30") as daemon:
        doc = FakeDocument(Pixels.from_array(_photo()))
        job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=style_file),
                              _load_style, Connection(endpoint=daemon.endpoint,
                                                      start_daemon=False))
        killed: list[float] = []

        def kill_once_running(event: JobEvent) -> None:
            if event.state is JobState.RUNNING and event.stage == "segment" and not killed:
                os.kill(daemon.proc.pid, signal.SIGKILL)
                killed.append(time.monotonic())

        assert job.run(kill_once_running) is JobState.FAILED
        noticed = time.monotonic() - killed[0]
        print(f"daemon death noticed after {noticed:.3f} s")
        assert noticed < 1.5, f"took {noticed:.2f} s to notice"
        assert "stopped while working" in job.error and "unchanged" in job.error


_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"numpy", "PIL", "platformdirs", "torch", "torchvision"}:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
"""

_EDITOR_JOB = _BLOCKER + """
import json
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from fake_document import FakeDocument
from portrait_style.plugin.core import StylizeOptions
from portrait_style.plugin.job import Connection, apply, prepare_stylize
from portrait_style.protocol.messages import Pixels
w, h = 20, 10
doc = FakeDocument(Pixels.from_buffer(bytes(range(200)) * 4, (h, w, 4)))
def load_style(path):
    return Pixels.from_buffer(bytes([7]) * 48, (4, 4, 3))
job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=Path(sys.argv[2])),
                      load_style, Connection(endpoint=sys.argv[1], start_daemon=False))
state = job.run()
if job.failure is not None:
    raise job.failure
group = apply(doc, job)
print(json.dumps({"state": state.value, "layers": [c.name for c in group.children],
                  "numpy": "numpy" in sys.modules}))
"""


@pytest.mark.slow
def test_the_core_runs_a_real_job_without_numpy_pillow_or_torch(tmp_path: Path,
                                                                 style_file: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop") as daemon:
        res = subprocess.run([sys.executable, "-c", _EDITOR_JOB, daemon.endpoint,
                              str(style_file), str(REPO / "tests")],
                             capture_output=True, text=True, timeout=60,
                             env=isolated_env(tmp_path / "editor"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"state": "done", "layers": ["Portrait", "Background"], "numpy": False}


def _verbose_pid(stderr: str) -> int | None:
    for line in stderr.splitlines():
        if "daemon pid" in line:
            return int(line.split("daemon pid", 1)[1].split()[0])
    return None


@pytest.mark.slow
def test_two_clients_starting_at_once_share_one_daemon(tmp_path: Path,
                                                       style_file: Path) -> None:
    """The per-user socket, the start lock, status and stop, as a user meets them."""
    home = tmp_path / "home"
    env = isolated_env(home)
    photo = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(photo)
    args = [str(photo), "--style", str(style_file), "--engine", "noop", "-v", "-q"]
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def stylize(name: str) -> None:
        results[name] = run_cli("stylize", [*args, "--out", str(tmp_path / name)], env, 180)

    threads = [threading.Thread(target=stylize, args=(n,)) for n in ("a", "b")]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for res in results.values():
            assert res.returncode == 0, res.stderr
        pids = {_verbose_pid(res.stderr) for res in results.values()}
        assert len(pids) == 1 and None not in pids, [r.stderr for r in results.values()]
        pid = pids.pop()
        os.kill(pid, 0)
        status = run_cli("status", [], env, 60)
        assert status.returncode == 0 and f"pid           {pid}" in status.stdout
        assert "daemon.sock" in status.stdout  # the per-user socket, not a shared TCP port
    finally:
        stop = run_cli("stop", [], env, 60)
    assert stop.returncode == 0 and str(pid) in stop.stdout, stop.stderr
    after = run_cli("status", [], env, 60)
    assert after.returncode == 1 and "no daemon" in after.stdout
