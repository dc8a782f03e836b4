"""How a job that ends early is told to the artist: four causes, four sentences (issue 19 item 4).

Real daemon subprocesses (``--engine noop`` with a slow job). Before, stopping the
daemon mid-job (``portrait-style stop``) ended the job as if the artist had
cancelled it: "Cancelled; the image is unchanged."
"""

from __future__ import annotations

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

from portrait_style.plugin.core import StylizeOptions
from portrait_style.plugin.explain import CANCELLED_SENTENCE
from portrait_style.plugin.job import Connection, Job, JobEvent, JobState, prepare_stylize
from portrait_style.protocol import errors
from portrait_style.protocol.messages import Pixels

pytestmark = pytest.mark.slow


def _style(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path)
    return path


def _job(tmp_path: Path, endpoint: str) -> tuple[Job, FakeDocument]:
    doc = FakeDocument(Pixels.from_array(np.full((24, 32, 3), 40, np.uint8)))
    job = prepare_stylize(doc, doc.source, StylizeOptions(style_path=_style(tmp_path)),
                          lambda p: Pixels.from_array(np.asarray(Image.open(p).convert("RGB"))),
                          Connection(endpoint=endpoint, start_daemon=False, timeout_s=30))
    return job, doc


def _when_running(job: Job, act) -> list[JobEvent]:
    """Run ``job`` here; call ``act()`` once (on a thread) when the daemon works on it."""
    events: list[JobEvent] = []
    fired = threading.Event()

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.state is JobState.RUNNING and event.stage == "segment" and not fired.is_set():
            fired.set()
            threading.Thread(target=act).start()

    job.run(on_event)
    assert fired.is_set(), "the job never ran on the daemon"
    return events


def test_cancelled_by_the_artist(tmp_path: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop", "--noop-delay", "30") as daemon:
        job, doc = _job(tmp_path, daemon.endpoint)
        _when_running(job, job.cancel)
        assert job.state is JobState.CANCELLED
        assert len(doc.stack) == 1 and doc.undo_steps == 0


def test_daemon_stopped_mid_job_and_in_the_queue(tmp_path: Path) -> None:
    """``portrait-style stop`` while one job runs and another waits: both hear "stopped"."""
    home = tmp_path / "home"
    with running(home, "--engine", "noop", "--noop-delay", "30") as daemon:
        running_job, doc = _job(tmp_path, daemon.endpoint)
        queued_job, _ = _job(tmp_path, daemon.endpoint)
        queued_thread = threading.Thread(target=queued_job.run)

        def stop() -> None:
            queued_thread.start()
            time.sleep(1.0)  # the second job is in the queue behind the first
            proc = run_cli("stop", ["--connect", daemon.endpoint], isolated_env(home))
            assert proc.returncode == 0, proc.stderr

        _when_running(running_job, stop)
        queued_thread.join(30)
        for job in (running_job, queued_job):
            assert job.state is JobState.FAILED, (job.state, job.error)
            assert isinstance(job.failure, errors.DaemonStopped), job.failure
            assert "daemon was stopped" in job.error and "unchanged" in job.error
            assert job.error != CANCELLED_SENTENCE
        assert len(doc.stack) == 1


def test_daemon_crashed_kill_9(tmp_path: Path) -> None:
    with running(tmp_path / "home", "--engine", "noop", "--noop-delay", "30") as daemon:
        job, _ = _job(tmp_path, daemon.endpoint)
        _when_running(job, lambda: os.kill(daemon.proc.pid, signal.SIGKILL))
        assert job.state is JobState.FAILED
        assert isinstance(job.failure, errors.DaemonGone), job.failure
        assert "crashed" in job.error and "unchanged" in job.error, job.error


def test_daemon_crashed_heartbeats_missed(tmp_path: Path) -> None:
    """A hung daemon (SIGSTOP: its pid lives, it sends nothing) is told by its silence."""
    with running(tmp_path / "home", "--engine", "noop", "--noop-delay", "30",
                 "--heartbeat", "0.5") as daemon:
        job, _ = _job(tmp_path, daemon.endpoint)
        try:
            _when_running(job, lambda: os.kill(daemon.proc.pid, signal.SIGSTOP))
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        assert job.state is JobState.FAILED
        assert isinstance(job.failure, errors.DaemonTimeout), job.failure
        assert "stopped answering" in job.error and "crashed or hangs" in job.error


def test_daemon_unreachable(tmp_path: Path) -> None:
    job, _ = _job(tmp_path, "tcp://127.0.0.1:9")
    job.connection.timeout_s = 1.0
    assert job.run() is JobState.FAILED
    assert type(job.failure) is errors.DaemonUnreachable, job.failure
    assert job.error.startswith("Could not reach"), job.error


def test_the_four_sentences_differ() -> None:
    from portrait_style.plugin.explain import explain

    sentences = {
        explain(errors.Cancelled(errors.CANCELLED, "cancelled")),
        explain(errors.DaemonStopped(errors.STOPPING, "stopping")),
        explain(errors.DaemonGone("gone")),
        explain(errors.DaemonUnreachable("no answer"), "tcp://127.0.0.1:9"),
    }
    assert len(sentences) == 4 and CANCELLED_SENTENCE in sentences


def test_command_line_says_the_daemon_was_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running(home, "--engine", "noop", "--noop-delay", "30") as daemon:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portrait_style", "stylize", "sample:astronaut", "--style",
             "sample:starry_night", "--out", str(tmp_path / "out"), "--connect",
             daemon.endpoint, "-q"], env=isolated_env(tmp_path / "cli"),
            stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)  # sent and running (the job takes 30 s)
        assert proc.poll() is None
        daemon.proc.send_signal(signal.SIGTERM)  # what 'portrait-style stop' sends
        _, stderr = proc.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 4, stderr
    assert len(lines) == 1 and "daemon was stopped" in lines[0], stderr
    assert not (tmp_path / "out").exists()
