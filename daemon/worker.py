"""The job worker: runs queued jobs one at a time, off the socket loop's thread.

Why a thread and an event line: the socket loop must never block on a job, or
``ping`` and ``cancel`` would wait behind a 10-second stylize; and ZeroMQ
sockets are not thread-safe, so the worker never touches the ROUTER socket. It
puts typed events (``jobs.JobEvent``) on a plain queue and rings an inproc
socket that the loop polls next to the ROUTER; the loop does all the sending.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import zmq

from ..protocol import errors
from ..protocol.errors import ProtocolError
from .jobs import Job, JobDone, JobEvent, JobFailed, JobProgress, JobQueue, JobStarted
from .jobspec import JobCancelled, JobContext, StylizeJob, StylizeResult

__all__ = ["EventLine", "Pipeline", "Worker"]

log = logging.getLogger("portrait_style.daemon.server")


class Pipeline(Protocol):
    """What the server needs from the models (daemon/pipeline.py, daemon/noop.py)."""

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult: ...

    def describe(self) -> dict[str, Any]: ...


class EventLine:
    """Events from any thread to the loop: a queue plus an inproc wake-up socket.

    ``post`` may be called from the worker or from threads the pipeline makes
    (one PUSH socket, guarded by a lock); the loop polls ``receiver`` and calls
    ``drain``.
    """

    def __init__(self, context: zmq.Context) -> None:
        self._ctx = context
        self._address = f"inproc://portrait-style-events-{id(self):x}"
        self._events: queue.SimpleQueue[JobEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._push: zmq.Socket | None = None
        self.receiver: zmq.Socket = context.socket(zmq.PULL)
        self.receiver.bind(self._address)

    def post(self, event: JobEvent) -> None:
        self._events.put(event)
        with self._lock:
            if self._push is None:
                self._push = self._ctx.socket(zmq.PUSH)
                self._push.setsockopt(zmq.LINGER, 0)
                self._push.connect(self._address)
            self._push.send(b"", zmq.NOBLOCK)

    def drain(self) -> list[JobEvent]:
        """Every event posted so far (loop thread)."""
        while True:
            try:
                self.receiver.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def close_sender(self) -> None:
        with self._lock:
            if self._push is not None:
                self._push.close()
                self._push = None

    def close(self) -> None:
        self.close_sender()
        if not self.receiver.closed:
            self.receiver.close()


class Worker:
    """Take jobs from ``jobs`` until ``stop``; ``build`` turns each into the pipeline's job."""

    def __init__(self, jobs: JobQueue, pipeline: Pipeline, build: Callable[[Job], StylizeJob],
                 events: EventLine, stop: threading.Event) -> None:
        self.jobs = jobs
        self.pipeline = pipeline
        self.build = build
        self.events = events
        self.stop = stop
        self.thread = threading.Thread(target=self._work, name="portrait-style-worker",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout_s: float) -> bool:
        """True when the worker has ended."""
        self.thread.join(timeout_s)
        return not self.thread.is_alive()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _work(self) -> None:
        try:
            while (job := self.jobs.take(self.stop)) is not None:
                self.events.post(JobStarted(job))
                try:
                    self._run(job)
                finally:
                    self.jobs.finished(job)
        finally:
            self.events.close_sender()

    def _run(self, job: Job) -> None:
        job.started = time.monotonic()
        request_id = job.message.id
        try:
            stylize_job = self.build(job)
            ctx = JobContext(on_progress=lambda stage, fraction: self.events.post(
                JobProgress(job, stage, fraction)), cancel=job.cancel)
            result = self.pipeline.run(stylize_job, ctx)
            result.info.setdefault("timings", ctx.finish())
            self.events.post(JobDone(job, result))
            log.info("job %s done in %.3f s", request_id, time.monotonic() - job.started)
        except JobCancelled:
            log.info("job %s cancelled", request_id)
            self.events.post(JobFailed(job, errors.CANCELLED, "cancelled"))
        except ProtocolError as err:
            log.info("job %s refused: %s", request_id, err)
            self.events.post(JobFailed(job, err.code, err.message, err.field))
        except Exception as exc:
            log.exception("job %s failed", request_id)
            self.events.post(JobFailed(
                job, errors.INTERNAL, f"the job failed: {type(exc).__name__}: {str(exc)[:300]}"))
