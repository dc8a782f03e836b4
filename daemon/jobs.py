"""Accepted jobs, the FIFO queue they wait in, and the typed events of their lives.

Why its own module: the queue is the one piece of state the socket loop and
the worker thread share. Everything that touches it goes through ``JobQueue``,
under its one lock, so neither side can see a job both waiting and running or
lose one between the two. Events are dataclasses, not positional tuples, so a
new field cannot silently shift another's meaning.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..protocol.messages import Stylize
from .jobspec import StylizeResult

__all__ = ["Job", "JobDone", "JobEvent", "JobFailed", "JobProgress", "JobQueue", "JobStarted",
           "QueueFull"]


@dataclass(eq=False)
class Job:
    """A stylize request between acceptance and its final reply."""

    peer: bytes
    message: Stylize
    style: np.ndarray
    #: the style came with the request: its key is checked (and it is cached) when it runs
    verify_key: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    #: the last progress sent to the client (heartbeats repeat it)
    stage: str = "queued"
    fraction: float = 0.0
    last_sent: float = field(default_factory=time.monotonic)
    accepted: float = field(default_factory=time.monotonic)
    started: float = 0.0

    @property
    def key(self) -> tuple[bytes, str]:
        """Ids are per connection: the same id from two peers is two jobs."""
        return (self.peer, self.message.id)


@dataclass(frozen=True)
class JobStarted:
    job: Job


@dataclass(frozen=True)
class JobProgress:
    job: Job
    stage: str
    fraction: float


@dataclass(frozen=True)
class JobDone:
    job: Job
    result: StylizeResult


@dataclass(frozen=True)
class JobFailed:
    """The job's one final error (``code`` from SPEC.md §6)."""

    job: Job
    code: str
    message: str
    field: str | None = None


JobEvent = JobStarted | JobProgress | JobDone | JobFailed


class QueueFull(Exception):
    """``max_waiting`` jobs already wait."""


class JobQueue:
    """Waiting jobs (FIFO) and the one running job, shared by loop and worker."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False

    # ---------------------------------------------------------------- loop side

    def push(self, job: Job) -> int:
        """Queue ``job``; its position (0: it starts at once). Raises ``QueueFull``."""
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(self.max_waiting)
            self._waiting.append(job)
            self._cond.notify_all()
            return len(self._waiting) if self._running is not None else 0

    def in_flight(self, peer: bytes, request_id: str) -> bool:
        return any(job.key == (peer, request_id) for job in self.active())

    def cancel(self, peer: bytes, request_id: str) -> tuple[Job | None, Job | None]:
        """Remove the waiting job, or flag the running one: (removed, flagged)."""
        with self._cond:
            removed = next((j for j in self._waiting if j.key == (peer, request_id)), None)
            if removed is not None:
                self._waiting.remove(removed)
            running = self._running
            flagged = running if running is not None and running.key == (peer, request_id) \
                else None
            if flagged is not None:
                flagged.cancel.set()
            return removed, flagged

    def drop_peer(self, peer: bytes) -> tuple[list[Job], Job | None]:
        """A peer left: remove its waiting jobs, flag its running one."""
        with self._cond:
            removed = [job for job in self._waiting if job.peer == peer]
            for job in removed:
                self._waiting.remove(job)
            running = self._running if (self._running is not None
                                        and self._running.peer == peer) else None
            if running is not None:
                running.cancel.set()
            return removed, running

    def waiting(self) -> list[Job]:
        with self._cond:
            return list(self._waiting)

    def active(self) -> list[Job]:
        """The running job first, then the waiting ones in order."""
        with self._cond:
            return [*([self._running] if self._running else []), *self._waiting]

    def counts(self) -> tuple[int, int]:
        """(waiting, running)."""
        with self._cond:
            return len(self._waiting), int(self._running is not None)

    def close(self) -> tuple[list[Job], Job | None]:
        """Stop for good: remove every waiting job, flag the running one, wake the worker."""
        with self._cond:
            self._closed = True
            removed = list(self._waiting)
            self._waiting.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
            return removed, self._running

    def running(self) -> Job | None:
        with self._cond:
            return self._running

    # -------------------------------------------------------------- worker side

    def take(self, stop: threading.Event) -> Job | None:
        """Block until a job is next (it becomes the running one), or None once stopped."""
        with self._cond:
            while not self._waiting and not (self._closed or stop.is_set()):
                self._cond.wait(0.5)
            if self._closed or stop.is_set():
                return None
            self._running = self._waiting.popleft()
            return self._running

    def finished(self, job: Job) -> None:
        with self._cond:
            if self._running is job:
                self._running = None
