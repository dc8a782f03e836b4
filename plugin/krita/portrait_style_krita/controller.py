"""What the docker's buttons and the menu actions do, without any widget code.

Why separate from the docker: Krita can show the docker in several windows
and the actions exist even when the docker is hidden; both drive one
``Controller`` per Krita instance, which owns the running job. The docker only
draws what the controller's signals say. Everything here runs on the GUI
thread; the daemon is only talked to from worker threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .qt import QUEUED, QObject, Signal
from .runner import JobRunner
from .runtime import LAYER_OUTPUTS, CoreUnavailable, core

__all__ = ["Controller", "DockerOptions", "controller"]


@dataclass
class DockerOptions:
    """What the docker holds: the painting and {knob-table control name: value}.

    The knobs themselves are the core's (``StylizeOptions.controls``); a
    control left out gets the daemon's default.
    """

    style_path: Path | None = None
    controls: dict[str, float | bool] = field(default_factory=dict)


def _krita() -> Any:
    from krita import Krita  # type: ignore[import-not-found]

    return Krita.instance()


def active_document_and_nodes() -> tuple[Any, list[Any]]:
    """The active document and the layers selected in its view (active first)."""
    app = _krita()
    document = app.activeDocument()
    nodes: list[Any] = []
    window = app.activeWindow()
    view = window.activeView() if window is not None else None
    if view is not None and hasattr(view, "selectedNodes"):
        try:
            nodes = list(view.selectedNodes() or [])
        except Exception:
            nodes = []
    return document, nodes


class Controller(QObject):
    """One per Krita instance: runs jobs, reports progress and the daemon's status.

    Signals (all on the GUI thread):
      busy(bool) — a job is running (the docker swaps Apply for Cancel);
      progress(str, float) — what is happening, in words with its percentage (the core's
        ``stages.describe``), and the fraction (< 0: unknown);
      message(str, str) — level ("info", "warning", "error") and a sentence;
      status(str) — the daemon line: endpoint, device, engine.
    """

    busy = Signal(bool)
    progress = Signal(str, float)
    message = Signal(str, str)
    status = Signal(str)
    _status_ready = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner: JobRunner | None = None
        self._queue: list[tuple[Any, Any]] = []  # (KritaDocument, job) still to run
        self._batch = 0  # how many layers the current Apply covers
        self._status_ready.connect(self.status.emit, QUEUED)
        self.last_status = ""
        self.results: list[Any] = []
        self._probing = threading.Event()  # a status probe is in flight

    # ------------------------------------------------------------------ jobs

    @property
    def running(self) -> bool:
        return self.runner is not None

    def _idle(self) -> bool:
        """True when no job runs; otherwise says so to the artist."""
        if self.running:
            self.message.emit("warning", "A job is already running; cancel it first.")
        return not self.running

    @staticmethod
    def _open_document(modules: dict[str, Any]) -> tuple[Any, Any]:
        """(Krita document, its KritaDocument over the selected nodes), or OptionError."""
        from .document import KritaDocument

        document, nodes = active_document_and_nodes()
        if document is None:
            raise modules["core"].OptionError("open an image first")
        return document, KritaDocument(document, nodes)

    def _start(self, jobs: list[tuple[Any, Any]]) -> None:
        self._queue = jobs
        self._batch = len(jobs)
        self.results = []
        self._next()

    def apply(self, options: DockerOptions) -> None:
        """Stylize the active layer, or each selected layer, one job after another."""
        if not self._idle():
            return
        try:
            modules = core()
            from .styles import load_style, remember_style

            _, kdoc = self._open_document(modules)
            layers = kdoc.active_layers()
            if not layers:
                raise modules["core"].OptionError("select the photo's layer")
            stylize = modules["core"].StylizeOptions(
                style_path=options.style_path, controls=dict(options.controls),
                outputs=LAYER_OUTPUTS)
            # a layer inside a result group stands for the group's photo (the core's rule),
            # so two selected layers can mean one photo: it is done once
            jobs: list[tuple[Any, Any]] = []
            for info in layers:
                job = modules["job"].prepare_stylize(kdoc, info.ref, stylize, load_style,
                                                     self._connection())
                if all(job.source.layer_id != other.source.layer_id for _, other in jobs):
                    jobs.append((kdoc, job))
            if options.style_path is not None:
                remember_style(options.style_path)
        except Exception as exc:
            self._fail(exc)
            return
        self._start(jobs)

    def rerun(self, region: str) -> None:
        """Re-run "portrait" or "background" of the selected result group."""
        if not self._idle():
            return
        try:
            modules = core()
            from .styles import load_style

            document, kdoc = self._open_document(modules)
            active = document.activeNode()
            job = modules["job"].prepare_rerun(kdoc, active, region, load_style,
                                               self._connection())
        except Exception as exc:
            self._fail(exc)
            return
        self._start([(kdoc, job)])

    def cancel(self) -> None:
        self._queue = []
        if self.runner is not None:
            self.runner.cancel()
            self.progress.emit(f"{core()['stages'].stage_words('cancelling')}…", -1.0)

    def _connection(self) -> Any:
        return core()["job"].Connection(start_daemon=True)

    def _next(self) -> None:
        if not self._queue:
            self.runner = None
            self.busy.emit(False)
            return
        kdoc, job = self._queue[0]
        self.runner = JobRunner(job, self)
        self.runner.event.connect(self._on_event)
        self.runner.finished.connect(lambda finished: self._on_finished(kdoc, finished))
        self.busy.emit(True)
        connecting = SimpleNamespace(state="connecting", stage="", fraction=-1.0, position=None)
        self.progress.emit(self._prefix(job) + core()["stages"].describe(connecting), -1.0)
        self.runner.start()

    def _prefix(self, job: Any) -> str:
        """Name the layer in the progress text when several layers are being done."""
        return f"{job.source.name}: " if self._batch > 1 else ""

    def _on_event(self, event: Any) -> None:
        prefix = self._prefix(self.runner.job) if self.runner else ""
        self.progress.emit(prefix + core()["stages"].describe(event), event.fraction)

    def _on_finished(self, kdoc: Any, job: Any) -> None:
        modules = core()
        state = modules["job"].JobState
        self._queue = self._queue[1:]
        if job.state is state.DONE:
            try:
                started = time.perf_counter()
                group = modules["job"].apply(kdoc, job)
                self.results.append(group)
                for notice in job.notices:
                    self.message.emit("warning", notice)
                took = time.perf_counter() - started
                self.message.emit("info", f"Done: {group.name()} ({took * 1000:.0f} ms to "
                                  "build the layers)")
                if job.daemon:
                    self._status_ready.emit(self._describe(job.daemon, self._job_endpoint(job)))
            except Exception as exc:
                self._fail(exc)
                self._queue = []
        elif job.state is state.CANCELLED:
            self.message.emit("info", "Cancelled: the image is unchanged.")
            self._queue = []
        else:
            self.message.emit("error", job.error)
            self._queue = []
        self._next()

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, CoreUnavailable):
            self.message.emit("error", str(exc))
            return
        self.message.emit("error", core()["explain"].explain(exc))

    # ----------------------------------------------------------- mask tools

    def _selected_group(self) -> tuple[Any, Any]:
        modules = core()
        from .document import KritaDocument

        document, nodes = active_document_and_nodes()
        if document is None:
            raise modules["core"].OptionError("open an image first")
        kdoc = KritaDocument(document, nodes)
        active = document.activeNode()
        group = kdoc.result_group_of(active) if active is not None else None
        if group is None:
            raise modules["core"].OptionError(
                "select a Portrait style result group (or a layer inside it)")
        return kdoc, group

    def mask_from_selection(self) -> None:
        try:
            kdoc, group = self._selected_group()
            kdoc.mask_from_selection(group)
            self.message.emit("info", "The selection is now the Portrait layer's mask.")
        except Exception as exc:
            self._fail(exc)

    def selection_from_mask(self) -> None:
        try:
            kdoc, group = self._selected_group()
            kdoc.selection_from_mask(group)
            self.message.emit("info", "Selected the Portrait layer's mask.")
        except Exception as exc:
            self._fail(exc)

    # ---------------------------------------------------------------- status

    def refresh_status(self) -> None:
        """Ask the daemon who it is, on a worker thread; ``status`` gets the line.

        The docker calls this every few seconds, so a daemon that died shows
        within that time; a probe still waiting for its answer is not doubled.
        """
        if self._probing.is_set():
            return
        self._probing.set()

        def work() -> None:
            try:
                modules = core()
                config = modules["config"].load_config()
                from_env = modules["job"].Connection().endpoint
                endpoint = self._endpoint(config, from_env)
                hello = modules["launcher"].probe(endpoint, timeout_s=1.5)
                line = self._describe(hello, endpoint)
            except Exception as exc:
                line = f"Daemon: unavailable — {exc}"
            finally:
                self._probing.clear()
            self._status_ready.emit(line)

        threading.Thread(target=work, name="portrait-style-status", daemon=True).start()

    def _job_endpoint(self, job: Any) -> str | None:
        try:
            return self._endpoint(job.connection.settings(), job.connection.endpoint)
        except Exception:
            return None

    @staticmethod
    def _endpoint(config: Any, override: str | None) -> str:
        from ._core.protocol.endpoints import configured_or_default

        return override or configured_or_default(config.endpoint)

    def _describe(self, hello: dict[str, Any] | None, endpoint: str | None) -> str:
        if hello is None:
            line = f"Daemon: not running on {endpoint} (it starts on Apply)"
        else:
            engines = hello.get("engines") or {}
            engine = engines.get("active", "?") if isinstance(engines, dict) else "?"
            where = endpoint or hello.get("endpoint") or ""
            line = (f"Daemon: {where or 'connected'} · {hello.get('device', '?')} · "
                    f"engine {engine}").replace(" ·  ·", " ·")
        self.last_status = line
        return line


_controller: Controller | None = None


def controller() -> Controller:
    """The instance's controller, made on first use (after Krita has started)."""
    global _controller
    if _controller is None:
        _controller = Controller()
    return _controller
