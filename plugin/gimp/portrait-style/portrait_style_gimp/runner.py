"""Run jobs from GIMP: the core's job on a worker thread, progress on GIMP's.

Why a worker thread: libgimp talks to GIMP over a pipe that is not
thread-safe, while the daemon's reply can take a while. So ``Job.run`` (which
only talks ZeroMQ) runs on a worker thread and posts its events into a queue;
the plug-in's main thread — the only one that calls GIMP — turns them into
``Gimp.progress_*`` calls, then applies the result. GIMP's Cancel on the
progress bar kills the plug-in process: results are applied only at the end,
so the image is left exactly as it was, and the daemon drops a job whose
connection closed (tests/test_gimp.py checks both).

Importing this module imports the wire libraries (via ``ensure_wire``), so
``plugin.py`` imports it inside ``run`` only.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from ._core.plugin.wire import ensure_wire

ensure_wire(Path(__file__).resolve().parent / "_wire")

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gimp, Gio  # noqa: E402

from . import knob_args, recent  # noqa: E402
from ._core.plugin import job as jobs  # noqa: E402
from ._core.plugin.core import StylizeOptions  # noqa: E402
from ._core.plugin.explain import explain  # noqa: E402
from ._core.plugin.image_integrity import check_complete  # noqa: E402
from ._core.plugin.stages import describe  # noqa: E402
from ._core.protocol.messages import Pixels  # noqa: E402
from .document import GimpDocument, _read, check_image_mode  # noqa: E402

__all__ = ["stylize", "rerun", "load_style", "run_with_progress"]

#: the layers a GIMP result needs (the composite is what GIMP itself shows)
_OUTPUTS = ("background", "portrait", "mask")
_PULSE_S = 0.1
#: the daemon works at ≤ 1 MP of style (daemon/pipeline.py) and refuses > 16 MP; a big scan
#: is scaled down on GIMP's private copy first, with room to spare, to keep the wire light
STYLE_SEND_PIXELS = 2048 * 2048


def load_style(path: Path) -> Pixels:
    """Decode the painting with GIMP's own loaders (any format GIMP opens), 8-bit RGB.

    A JPEG or PNG that would load only partly is refused first (``image_integrity``).
    """
    check_complete(path)
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(str(path)))
    if image is None:
        raise OSError(0, "GIMP could not open it as an image", str(path))
    try:
        if image.get_base_type() != Gimp.ImageBaseType.RGB:
            image.convert_rgb()  # a greyscale or indexed painting: on this private copy
        width, height = image.get_width(), image.get_height()
        if width * height > STYLE_SEND_PIXELS:
            factor = (STYLE_SEND_PIXELS / (width * height)) ** 0.5
            image.scale(max(1, round(width * factor)), max(1, round(height * factor)))
        layer = image.flatten()
        return _read(layer, "R'G'B' u8", 3)
    finally:
        image.delete()


def _stage_text(layer_name: str, event: jobs.JobEvent) -> str:
    """The status bar's line: the layer, then what is happening in words ("painting… 40 %")."""
    return f"Portrait Style — {layer_name}: {describe(event)}"


def run_with_progress(job: jobs.Job, layer_name: str) -> jobs.JobState:
    """``job.run`` on a worker thread while this (GIMP's) thread shows its progress."""
    events: queue.Queue[jobs.JobEvent] = queue.Queue()
    worker = threading.Thread(target=job.run, args=(events.put,), name="portrait-style-job",
                              daemon=True)
    Gimp.progress_init(f"Portrait Style — {layer_name}")
    worker.start()
    last_text, last_words = "", ""
    while worker.is_alive() or not events.empty():
        try:
            event = events.get(timeout=_PULSE_S)
        except queue.Empty:
            if job.state is not jobs.JobState.RUNNING:  # no fraction to show yet
                Gimp.progress_pulse()
            continue
        text = _stage_text(layer_name, event)
        if text != last_text:
            Gimp.progress_set_text(text)
            last_text = text
        words = text.split("…")[0]
        if words != last_words:  # each new stage once on GIMP's console (and in tests)
            _timing(f"progress: {words}")
            last_words = words
        if event.fraction >= 0:
            Gimp.progress_update(min(1.0, event.fraction))
    worker.join()
    return job.state


def _connection(config: Any) -> jobs.Connection:
    endpoint = (config.get_property("endpoint") or "").strip()
    return jobs.Connection(endpoint=endpoint or None, start_daemon=True)


def _options(config: Any) -> StylizeOptions:
    style = config.get_property("style")
    path = style.get_path() if style is not None else None
    return StylizeOptions(style_path=Path(path) if path else None,
                          controls=knob_args.values(config, knob_args.table()),
                          outputs=_OUTPUTS)


def _layers(drawables: list[Any]) -> list[Any]:
    """The selected layers; a selected layer mask stands for its layer."""
    layers: list[Any] = []
    for drawable in drawables:
        if drawable.is_layer_mask():
            drawable = Gimp.Layer.from_mask(drawable)
        if isinstance(drawable, Gimp.Layer) and drawable not in layers:
            layers.append(drawable)
    return layers


def _problem(job: jobs.Job) -> str | None:
    """The artist's sentence for a job that did not finish (None: it did).

    The sentences are the core's (``explain``: daemon stopped, crashed,
    unreachable…). GIMP's own Cancel kills this process before any sentence,
    so CANCELLED only comes from a cancel this plug-in asked for.
    """
    if job.state is jobs.JobState.DONE:
        return None
    if job.error:
        return job.error
    if job.state is jobs.JobState.CANCELLED:
        return "Cancelled; the image is unchanged."
    return "The job did not finish; the image is unchanged."


def _timing(text: str) -> None:
    """Timings on stderr: GIMP's console shows them, tests record them."""
    import sys

    print(f"portrait-style: {text}", file=sys.stderr, flush=True)


def _run_all(image: Any, prepare: Any, targets: list[Any]) -> str | None:
    """Prepare and run one job per target, then apply them all in one undo step.

    The image's undo group is opened only once every job is done: GIMP's
    Cancel kills this process mid-job, and an undo group left open then makes
    GIMP warn "left image undo in inconsistent state" and mark the untouched
    image modified. Nothing is applied unless every job finished.
    """
    document = GimpDocument(image, targets)
    done: list[jobs.Job] = []
    try:
        for target in targets:
            started = time.monotonic()
            try:
                job = prepare(document, target)
            except Exception as exc:  # OptionError, RecordError, OSError… → the artist's words
                return explain(exc)
            read = time.monotonic()
            state = run_with_progress(job, job.source.name)
            _timing(f"layer and style read in {read - started:.2f} s, job {state.value} in "
                    f"{time.monotonic() - read:.2f} s")
            problem = _problem(job)
            if problem:
                return problem
            done.append(job)
        Gimp.progress_set_text("Portrait Style: adding the layers")
        started = time.monotonic()
        image.undo_group_start()
        try:
            for job in done:
                jobs.apply(document, job)
        except Exception as exc:
            return explain(exc)
        finally:
            image.undo_group_end()
        Gimp.progress_update(1.0)
        _timing(f"layers applied in {time.monotonic() - started:.2f} s")
    finally:
        Gimp.progress_end()
        Gimp.displays_flush()
    for job in done:
        for notice in job.notices:
            Gimp.message(f"Portrait Style: {notice}")
    return None


def stylize(image: Any, drawables: list[Any], config: Any) -> str | None:
    """Filters ▸ Artistic ▸ Portrait Style: one result group per selected layer.

    Returns None on success, else the sentence GIMP shows.
    """
    try:
        check_image_mode(image)
        options = _options(config)
    except Exception as exc:
        return explain(exc)
    layers = _layers(drawables)
    if not layers:
        return "Select the layer to restyle first (Portrait Style works on layers)."
    connection = _connection(config)

    def prepare(document: GimpDocument, layer: Any) -> jobs.Job:
        return jobs.prepare_stylize(document, layer, options, load_style, connection)

    problem = _run_all(image, prepare, layers)
    if problem is None and options.style_path is not None:
        recent.remember(recent.default_path(), options.style_path)
    return problem


def rerun(image: Any, drawables: list[Any], config: Any, region: str) -> str | None:
    """Re-run one region of each selected result group, keeping the artist's mask."""
    try:
        check_image_mode(image)
    except Exception as exc:
        return explain(exc)
    document = GimpDocument(image, drawables)
    groups: list[Any] = []
    for layer in _layers(drawables):
        group = document.result_group_of(layer)
        if group is not None and group not in groups:
            groups.append(group)
    if not groups:
        return ("Select a Portrait Style result group (or a layer inside one) to re-run; "
                "this layer is not part of one.")
    connection = _connection(config)

    def prepare(document: GimpDocument, group: Any) -> jobs.Job:
        return jobs.prepare_rerun(document, group, region, load_style, connection)

    return _run_all(image, prepare, groups)
