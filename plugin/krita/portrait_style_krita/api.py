"""The scripting entry points: ``apply`` and ``rerun``, one job each, run to the end.

Why they spin an event loop instead of calling the core's ``run_to_end``: a
script runs on Krita's GUI thread, and blocking it for the seconds a job
takes would freeze the canvas. The job runs on a worker thread
(``runner.JobRunner``) while a local event loop keeps Krita responsive; the
result is applied on the GUI thread once the job is done.

Usage from Krita's Scripter::

    import portrait_style_krita as ps
    doc = Krita.instance().activeDocument()
    group = ps.apply(doc, doc.activeNode(), "/path/starry_night.jpg", portrait_strength=0.4)
    ps.rerun(doc, group, "portrait")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runner import JobRunner, wait_for
from .runtime import LAYER_OUTPUTS, core

__all__ = ["apply", "rerun", "cancel", "PortraitStyleError", "last_run", "connection", "execute"]

#: timings and the job of the most recent scripted run (for scripts and tests)
last_run: dict[str, Any] = {}


_running: list[Any] = []  # the scripted job in flight (one at a time: apply() blocks)


def cancel() -> bool:
    """Cancel the scripted job in flight (from an ``on_event`` handler or a script's button).

    The blocked ``apply``/``rerun`` then raises ``PortraitStyleError("cancelled")``
    and the document is unchanged. False when no job is running.
    """
    if not _running:
        return False
    _running[0].cancel()
    return True


class PortraitStyleError(RuntimeError):
    """A scripted job failed; the message is the sentence the docker would show."""


def connection(endpoint: str | None = None) -> Any:
    """How to reach the daemon: ``endpoint``, else the env/config; started on demand."""
    return core()["job"].Connection(endpoint=endpoint, start_daemon=True)


def execute(job: Any, on_event: Callable[[Any], None] | None = None,
            timeout_s: float | None = None) -> Any:
    """Run ``job`` on a worker thread, keeping Krita's event loop turning; its final state."""
    runner = JobRunner(job)
    if on_event is not None:
        runner.event.connect(on_event)
    done: list[Any] = []
    runner.finished.connect(done.append)
    runner.start()
    if not wait_for(lambda: bool(done), timeout_s):
        job.cancel()
        wait_for(lambda: bool(done), 30.0)
        raise PortraitStyleError(f"the job did not finish within {timeout_s:.0f} s")
    return job.state


def _finish(document: Any, kdoc: Any, job: Any, on_event: Callable[[Any], None] | None,
            timeout_s: float | None, prepared_s: float) -> Any:
    modules = core()
    started = time.perf_counter()
    _running[:] = [job]
    try:
        state = execute(job, on_event, timeout_s)
    finally:
        _running.clear()
    ran = time.perf_counter()
    last_run.clear()
    last_run.update(job=job, prepare_s=prepared_s, run_s=ran - started)
    if state is modules["job"].JobState.CANCELLED:
        raise PortraitStyleError("cancelled")
    if state is not modules["job"].JobState.DONE:
        raise PortraitStyleError(job.error or f"the job ended {state.value}")
    try:
        group = modules["job"].apply(kdoc, job)
    except Exception as exc:
        raise PortraitStyleError(modules["explain"].explain(exc)) from exc
    last_run["apply_s"] = time.perf_counter() - ran
    return group


def apply(document: Any, node: Any, style_path: str | Path, *,
          background_strength: float | None = None, portrait_strength: float | None = None,
          preserve_color: bool = False, endpoint: str | None = None,
          likeness: float | None = None, stroke_size: float | None = None,
          controls: dict[str, float | bool] | None = None,
          on_event: Callable[[Any], None] | None = None,
          timeout_s: float | None = 600.0) -> Any:
    """Stylize ``node`` after the painting at ``style_path``; the new result group node.

    The group "Portrait style — <style name>" is put directly above ``node``.
    Strengths, ``likeness`` and ``stroke_size`` left at None use the daemon's
    presets. ``controls``: any knob-table control by name ({"portrait-saturation": 1.3},
    what the docker sends); the keywords above win over it. ``on_event`` receives
    each ``JobEvent`` (state, stage, fraction) on the GUI thread.
    Raises ``PortraitStyleError`` with a plain sentence when the job fails.
    """
    modules = core()  # first: it makes the wire libraries importable
    from .document import KritaDocument
    from .styles import load_style

    started = time.perf_counter()
    kdoc = KritaDocument(document)
    options = modules["core"].StylizeOptions(
        style_path=Path(style_path), background_strength=background_strength,
        portrait_strength=portrait_strength, preserve_color=preserve_color,
        likeness=likeness, stroke_size=stroke_size, controls=dict(controls or {}),
        outputs=LAYER_OUTPUTS)
    try:
        job = modules["job"].prepare_stylize(kdoc, node, options, load_style,
                                             connection(endpoint))
    except Exception as exc:
        raise PortraitStyleError(modules["explain"].explain(exc, endpoint)) from exc
    return _finish(document, kdoc, job, on_event, timeout_s, time.perf_counter() - started)


def rerun(document: Any, group: Any, region: str, endpoint: str | None = None, *,
          on_event: Callable[[Any], None] | None = None,
          timeout_s: float | None = 600.0) -> Any:
    """Recompute the "portrait" or "background" layer of a result group; the group.

    The artist's current mask on the Portrait layer is sent with the request
    (no new segmentation), so mask edits are kept; only that region's layer
    is replaced.
    """
    modules = core()  # first: it makes the wire libraries importable
    from .document import KritaDocument
    from .styles import load_style

    started = time.perf_counter()
    kdoc = KritaDocument(document)
    try:
        job = modules["job"].prepare_rerun(kdoc, group, region, load_style, connection(endpoint))
    except Exception as exc:
        raise PortraitStyleError(modules["explain"].explain(exc, endpoint)) from exc
    return _finish(document, kdoc, job, on_event, timeout_s, time.perf_counter() - started)
