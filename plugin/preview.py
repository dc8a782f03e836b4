"""Live preview: what the editors' dialog and docker drive while the artist tries things.

Why a session object: a preview is asked for on every change of a knob or the
painting, faster than the daemon answers. Only the latest request matters, so
``PreviewSession`` keeps one slot: ``submit`` puts the newest request there and
cancels the running one on the daemon (its ``cancel`` message stops the job at
its next stage), and one worker thread runs whatever is in the slot when it is
free. Results come back as ``PreviewEvent``s on that worker thread; the host
hands them to its GUI thread (a Qt signal, ``GLib.idle_add``). Nothing here
blocks the caller: ``submit`` returns at once.

The preview is the same job as Apply (``plugin/job.py``, ``JobParams.preview``
= the long side), so the same daemon code serves GIMP, Krita and
``portrait-style stylize --preview N``: it is the full result scaled down (the
same working size, hence the same strokes, colours and mask), and the work the
daemon did for it is reused by the next preview and by Apply
(``daemon/reuse.py``).

A host's use::

    session = PreviewSession(on_event=lambda e: gui_thread(show, e), long_side=512)
    source = document.read_layer(layer)            # GUI thread, once per layer
    session.submit(source, style_pixels, options)  # on every change; returns at once
    ...                                            # show e.image when e.state == "done"
    session.close()                                # when the dialog closes

Editor-safe: standard library, pyzmq, msgpack.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..protocol.messages import Pixels
from ..protocol.request import JobParams
from .core import OptionError, SourceLayer, StylizeOptions
from .job import Connection, Job, JobEvent, JobState
from .record import JobRecord

__all__ = ["DEFAULT_LONG_SIDE", "PreviewEvent", "PreviewSession", "preview_params"]

#: a preview's long side when the host does not say (fits a dialog's preview pane)
DEFAULT_LONG_SIDE = 512

#: what a PreviewEvent's state can be
RUNNING, DONE, STALE, FAILED = "running", "done", "stale", "failed"


@dataclass(frozen=True)
class PreviewEvent:
    """One report about a preview request.

    ticket: the number ``submit`` returned for the request.
    state: "running" (stage/fraction: the daemon's progress), "done" (``image``
        holds the preview composite, ``before`` the source at the same size is
        the host's to make), "stale" (a newer request replaced it: it was
        cancelled on the daemon or never sent), "failed" (``message``: the
        artist's sentence).
    info: the daemon's facts (timings, what it reused, the preview's size).
    """

    ticket: int
    state: str
    stage: str = ""
    fraction: float = -1.0
    image: Pixels | None = None
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def preview_params(options: StylizeOptions | JobParams, long_side: int) -> JobParams:
    """The request of a preview: the artist's knobs, the composite only, at ``long_side``."""
    params = options if isinstance(options, JobParams) else options.params()
    try:
        return replace(params, outputs=("composite",), preview=long_side).check()
    except ValueError as exc:
        raise OptionError(str(exc)) from None


class PreviewSession:
    """Latest-wins previews of one layer on one worker thread (see the module docstring).

    on_event: called on the worker thread with every ``PreviewEvent``.
    connection: how to reach the daemon (default: the config's, started if need be).
    long_side: the preview's long side in pixels.
    """

    def __init__(self, on_event: Callable[[PreviewEvent], None],
                 connection: Connection | None = None,
                 long_side: int = DEFAULT_LONG_SIDE) -> None:
        self.on_event = on_event
        self.connection = connection or Connection()
        self.long_side = int(long_side)
        self._cond = threading.Condition()
        self._pending: tuple[int, Job] | None = None
        self._running: tuple[int, Job] | None = None
        self._tickets = 0
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="portrait-style-preview",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ GUI side

    def submit(self, source: SourceLayer, style: Pixels,
               options: StylizeOptions | JobParams) -> int:
        """Ask for a preview; returns its ticket at once. Older requests become stale.

        Raises ``OptionError`` (the artist's words) for invalid knobs, before
        anything is sent.
        """
        params = preview_params(options, self.long_side)
        record = JobRecord(style_path="", style_sha256="", style_name="preview",
                           params=params.as_dict(), source_id=source.layer_id,
                           source_name=source.name)
        job = Job(source=source, style=style, params=params, record=record,
                  connection=self.connection)
        with self._cond:
            if self._closed:
                raise RuntimeError("the preview session is closed")
            self._tickets += 1
            ticket = self._tickets
            replaced, self._pending = self._pending, (ticket, job)
            if self._running is not None:
                self._running[1].cancel()  # the daemon stops it at its next stage
            self._cond.notify_all()
        if replaced is not None:
            self._emit(PreviewEvent(replaced[0], STALE, message="replaced before it was sent"))
        return ticket

    def cancel(self) -> None:
        """Drop the waiting request and stop the running one (e.g. the dialog's Cancel)."""
        with self._cond:
            replaced, self._pending = self._pending, None
            if self._running is not None:
                self._running[1].cancel()
        if replaced is not None:
            self._emit(PreviewEvent(replaced[0], STALE, message="cancelled"))

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel everything and end the worker thread (waits up to ``timeout_s``)."""
        self.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def busy(self) -> bool:
        """Whether a request is running or waiting."""
        with self._cond:
            return self._running is not None or self._pending is not None

    # ------------------------------------------------------------------ worker side

    def _emit(self, event: PreviewEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a host's handler must not end the session
            import logging

            logging.getLogger(__name__).exception("preview event handler failed")

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._pending is not None
                self._running, self._pending = self._pending, None
                ticket, job = self._running
            try:
                self._run(ticket, job)
            finally:
                with self._cond:
                    self._running = None

    def _run(self, ticket: int, job: Job) -> None:
        def progress(event: JobEvent) -> None:
            if event.state in (JobState.RUNNING, JobState.QUEUED, JobState.STARTING_DAEMON):
                self._emit(PreviewEvent(ticket, RUNNING, stage=event.stage or event.state.value,
                                        fraction=event.fraction))

        state = job.run(progress)
        if state is JobState.DONE and job.plan is not None and not job.cancelled:
            self._emit(PreviewEvent(ticket, DONE, image=job.plan.composite,
                                    message="; ".join(job.notices), info=job.plan.info))
        elif state is JobState.FAILED and not job.cancelled:
            self._emit(PreviewEvent(ticket, FAILED, message=job.error))
        else:  # cancelled on the daemon (or done just as it was replaced): not the latest
            self._emit(PreviewEvent(ticket, STALE, message="replaced by a newer preview"))
