"""Running one core ``Job`` on a worker thread while Krita's event loop keeps turning.

Why a plain Python thread plus a queued Qt signal: the job spends its time
waiting on ZeroMQ (which releases the GIL) and slicing bytes (C code), so the
GUI thread stays free; Krita's API is only touched on the GUI thread — before
(``prepare_*``) and after (``apply``) the worker runs. Events cross threads
through a signal with a queued connection, which Qt delivers in the receiver's
(GUI) thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .qt import QUEUED, QEventLoop, QObject, QTimer, Signal

__all__ = ["JobRunner", "wait_for"]


class JobRunner(QObject):
    """Runs ``job.run`` on a thread; re-emits its events on the GUI thread.

    Signals: ``event(JobEvent)`` for every state change and stage, then
    ``finished(job)`` once the job is in a final state. The runner does not
    apply the result: the owner does that on the GUI thread.
    """

    event = Signal(object)
    finished = Signal(object)
    _relay = Signal(object, bool)

    def __init__(self, job: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self._thread: threading.Thread | None = None
        self._relay.connect(self._deliver, QUEUED)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="portrait-style-job",
                                        daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self.job.cancel()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _work(self) -> None:
        self.job.run(lambda ev: self._relay.emit(ev, False))
        self._relay.emit(self.job, True)

    def _deliver(self, payload: Any, final: bool) -> None:
        if final:
            self.finished.emit(payload)
        else:
            self.event.emit(payload)


def wait_for(done: Callable[[], bool], timeout_s: float | None = None,
             poll_ms: int = 20) -> bool:
    """Spin a local event loop until ``done()`` (scripts: block the caller, not Krita).

    Returns False on timeout. Used by the scripting API so a script's
    ``apply()`` call keeps the canvas painting and queued signals flowing.
    """
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(poll_ms)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def check() -> None:
        if done() or (deadline is not None and time.monotonic() > deadline):
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    if not done():
        loop.exec() if hasattr(loop, "exec") else loop.exec_()
    timer.stop()
    return done()
