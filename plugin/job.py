"""One job's life, in the three steps a GUI host drives from the right threads.

1. ``prepare_stylize`` / ``prepare_rerun`` — on the GUI thread: read the layer
   (and, for a re-run, the group's record and the artist's current mask) into a
   ``Job``. Nothing long happens here.
2. ``Job.run(on_event)`` — on a worker thread: find or start the daemon, send
   the request, wait for the reply, check it against the layer. Events
   (``JobEvent``) report each state change and the daemon's stages; the host
   forwards them to its GUI thread (a Qt signal, ``GLib.idle_add``). ``cancel()``
   may be called from any thread. ``run`` never raises: a failure becomes the
   FAILED state with a sentence for the artist (``plugin/explain.py``).
3. ``apply(document, job)`` — on the GUI thread: add the result group (or
   replace the re-run layer) in one undo step.

The command-line host and scripting entry points use ``run`` directly on their
own thread. Editor-safe: standard library, pyzmq, msgpack.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..protocol.client import DaemonClient
from ..protocol.curve import CurveClientKeys, keys_from_settings
from ..protocol.endpoints import configured_or_default, is_local_endpoint
from ..protocol.errors import CANCELLED, Cancelled, DaemonUnreachable
from ..protocol.messages import Pixels
from ..protocol.request import JobParams
from .core import (
    REGION_LAYERS,
    LayerPlan,
    OptionError,
    SourceLayer,
    StylizeOptions,
    notices,
    plan_layers,
)
from .document import Document
from .explain import explain
from .image_header import MAX_IMAGE_PIXELS, ImageTooLarge, check_size, header_size
from .pixels import drop_alpha
from .record import JobRecord, RecordError, file_sha256

__all__ = ["Connection", "Job", "JobEvent", "JobState", "StyleLoader", "apply",
           "prepare_rerun", "prepare_stylize", "result_anchor", "run_to_end", "stylize_source"]

#: a host's way to decode a style file into 8-bit RGB(A) pixels
StyleLoader = Callable[[Path], Pixels]


class JobState(str, Enum):  # noqa: UP042 - Krita embeds Python 3.10 (no StrEnum)
    """Where a job is; FINAL states end it."""

    READY = "ready"
    CONNECTING = "connecting"
    STARTING_DAEMON = "starting daemon"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobEvent:
    """One report from a running job.

    stage / fraction: the daemon's stage name and the whole job's progress
    (fraction < 0: unknown, e.g. while the daemon starts). position: place in
    the daemon's queue while QUEUED. message: the artist's sentence (FAILED,
    CANCELLED) or a notice.
    """

    state: JobState
    stage: str = ""
    fraction: float = -1.0
    position: int | None = None
    message: str = ""


@dataclass
class Connection:
    """How to reach the daemon: from the config file unless a host overrides it.

    endpoint: None = ``$PORTRAIT_STYLE_ENDPOINT``, the config's, or this user's
    local socket. start_daemon: start a local daemon when none answers.
    command: the ``serve`` argv to start it with (default: the config's).
    """

    endpoint: str | None = None
    token: str | None = None
    start_daemon: bool = True
    command: list[str] | None = None
    timeout_s: float = 30.0
    start_timeout_s: float = 300.0
    config: Config | None = None
    #: CURVE keys for a daemon reached without starting one (a remote one); None:
    #: the config's ``server_key``/``client_key``, plaintext when it has none
    curve: CurveClientKeys | None = None

    def settings(self) -> Config:
        if self.config is None:
            self.config = load_config()
        return self.config

    def curve_keys(self) -> CurveClientKeys | None:
        """The keys to use (ValueError naming the file when the config's are unusable)."""
        if self.curve is None:
            config = self.settings()
            self.curve = keys_from_settings(config.server_key, config.client_key)
        return self.curve


@dataclass
class Job:
    """A request for one layer, its state, and (when DONE) the plan to apply.

    kind: "stylize" (a new group above the source) or "rerun" (replace one
    region's layer in ``group``). ``mask``: the artist's mask sent with a re-run.
    """

    source: SourceLayer
    style: Pixels
    params: JobParams
    record: JobRecord
    connection: Connection = field(default_factory=Connection)
    kind: str = "stylize"
    region: str | None = None
    group: Any = None
    mask: Pixels | None = None
    state: JobState = JobState.READY
    plan: LayerPlan | None = None
    error: str = ""
    error_code: str = ""
    failure: BaseException | None = None
    notices: list[str] = field(default_factory=list)
    daemon: dict[str, Any] = field(default_factory=dict)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Ask the job to stop (any thread); it ends CANCELLED soon after."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self, on_event: Callable[[JobEvent], None] | None = None) -> JobState:
        """Do the job to its end on this (worker) thread; returns the final state."""
        emit = on_event or (lambda event: None)

        def move(state: JobState, **kw: Any) -> None:
            self.state = state
            emit(JobEvent(state, **kw))

        try:
            self._run(move, emit)
        except Cancelled:
            move(JobState.CANCELLED, message="cancelled")
        except Exception as exc:  # the promise: a sentence, never a traceback in the GUI
            self.failure = exc
            self.error = explain(exc, self.connection.endpoint)
            self.error_code = str(getattr(exc, "code", type(exc).__name__))
            move(JobState.FAILED, message=self.error)
        return self.state

    def _run(self, move: Callable[..., None], emit: Callable[[JobEvent], None]) -> None:
        from .launcher import ensure_daemon, probe

        if self.cancelled:
            raise Cancelled(CANCELLED, "cancelled before the job was sent")
        conn = self.connection
        config = conn.settings()
        move(JobState.CONNECTING)

        def starting(stage: str, fraction: float) -> None:
            if self.state is not JobState.STARTING_DAEMON:
                move(JobState.STARTING_DAEMON, stage=stage, fraction=fraction)

        # a remote daemon (the config's or the host's endpoint) is never started from
        # here and is reached with the config's CURVE keys, when it has some
        target = conn.endpoint or configured_or_default(config.endpoint)
        remote = not is_local_endpoint(target)
        curve = conn.curve_keys() if remote or not conn.start_daemon else None
        if conn.start_daemon and not remote:
            handle = ensure_daemon(conn.endpoint, command=conn.command, token=conn.token,
                                   on_progress=starting, cancel=self._cancel, config=config,
                                   start_timeout_s=conn.start_timeout_s)
            endpoint, self.daemon = handle.endpoint, handle.hello
        else:
            endpoint = target
            hello = probe(endpoint, token=conn.token, curve=curve)
            if hello is None:
                # a CURVE daemon that does not know our key looks exactly like this
                raise DaemonUnreachable(f"no daemon answered at {endpoint}" + (
                    " (with CURVE: is this machine's client key allowed there?)"
                    if curve is not None else ""))
            self.daemon = hello
        move(JobState.RUNNING, stage="sending", fraction=0.0)

        def progress(stage: str, fraction: float) -> None:
            move(JobState.RUNNING, stage=stage, fraction=fraction)

        def queued(position: int) -> None:
            move(JobState.QUEUED, stage="queued", position=position)

        with DaemonClient(endpoint, token=conn.token, timeout_s=conn.timeout_s,
                          as_arrays=False,
                          curve=curve) as client:
            reply = client.stylize(self.source.pixels, self.style, self.params, mask=self.mask,
                                   on_progress=progress, on_queued=queued,
                                   cancel=self._cancel)
        self.record.daemon_version = str(self.daemon.get("daemon_version", ""))
        self.record.device = str(self.daemon.get("device", ""))
        self.plan = plan_layers(reply, self.source, self.record.style_name,
                                whole_image=self.params.whole_image, record=self.record,
                                preview=self.params.preview)
        self.notices = notices(self.plan.info, self.source)
        move(JobState.DONE, stage="done", fraction=1.0,
             message="; ".join(self.notices))


def _record_for(source: SourceLayer, style_path: Path, style_name: str,
                params: JobParams) -> JobRecord:
    return JobRecord(style_path=str(style_path), style_sha256=file_sha256(style_path),
                     style_name=style_name, params=params.as_dict(),
                     source_id=source.layer_id, source_name=source.name)


def _load_style(style_path: Path | None, load_style: StyleLoader) -> tuple[Path, Pixels]:
    if style_path is None:
        raise OptionError("choose a style painting first")
    path = Path(style_path).expanduser()
    if not path.is_file():
        raise OptionError(f"the style painting {str(path)!r} does not exist (moved or deleted?)")
    size = header_size(path)  # before the editor's loader decodes a pixel of it
    if size is not None:
        try:
            check_size(path, *size, MAX_IMAGE_PIXELS, "style painting")
        except ImageTooLarge as exc:
            raise OptionError(str(exc)) from None
    return path, drop_alpha(load_style(path))  # a painting's transparency means nothing here


def stylize_source(document: Document, layer: Any) -> Any:
    """The layer a new stylize job reads: ``layer``, or the photo its result group came from.

    The one rule for a layer inside a result group (both editors, the scripts):
    it stands for the group's source layer — restyling a styled layer would
    paint over a painting and nest a group in a group. When that source is
    gone, the artist is told in words which layer to select instead.
    """
    group = document.result_group_of(layer)
    if group is None:
        return layer
    record = JobRecord.from_json(document.read_record(group))
    source = document.find_layer(record.source_id) if record.source_id else None
    if source is None:
        raise OptionError(f"this layer is part of a Portrait Style result, and the photo layer "
                          f"it was made from ({record.source_name!r}) is gone: select a photo "
                          "layer to stylize, or re-run this group's portrait or background")
    return source


def result_anchor(document: Document, source: Any, source_id: str) -> Any:
    """The layer a new result group goes directly above.

    The source layer itself, or — when earlier results of the same source
    sit right above it — the topmost of those, so the new group is what the
    artist sees on the canvas instead of landing hidden under an old one.
    """
    anchor = source
    while (above := document.layer_above(anchor)) is not None:
        group = document.result_group_of(above)
        if group is None or not source_id:
            break
        try:
            made_from = JobRecord.from_json(document.read_record(group)).source_id
        except RecordError:
            break
        if made_from != source_id:
            break
        anchor = above
    return anchor


def prepare_stylize(document: Document, layer: Any, options: StylizeOptions,
                    load_style: StyleLoader, connection: Connection | None = None) -> Job:
    """GUI thread: read ``layer`` and the style into a job for a new result group.

    A layer inside a result group stands for that group's source (``stylize_source``).
    """
    params = options.params()
    style_path, style = _load_style(options.style_path, load_style)
    layer = stylize_source(document, layer)
    source = document.read_layer(layer)
    record = _record_for(source, style_path, options.display_style_name(), params)
    return Job(source=source, style=style, params=params, record=record,
               connection=connection or Connection(), group=layer)


def prepare_rerun(document: Document, group: Any, region: str, load_style: StyleLoader,
                  connection: Connection | None = None) -> Job:
    """GUI thread: a job that recomputes one region of a result group.

    Everything comes from the group: its record (style, knobs), the source
    layer it was made from, and the artist's current mask on the Portrait
    layer, which is sent instead of segmenting again — so the edit is kept.
    """
    if region not in REGION_LAYERS:
        raise OptionError(f"re-run takes 'portrait' or 'background', not {region!r}")
    result_group = document.result_group_of(group)
    if result_group is None:
        raise OptionError("select a portrait-style result group (or a layer inside one)")
    record = JobRecord.from_json(document.read_record(result_group))
    source_ref = document.find_layer(record.source_id) if record.source_id else None
    if source_ref is None:
        raise RecordError(f"the layer this group was made from ({record.source_name!r}) is "
                          "gone; run Portrait Style on a layer again instead")
    style_path, style = _load_style(Path(record.style_path), load_style)
    changed = file_sha256(style_path) != record.style_sha256
    source = document.read_layer(source_ref)
    if changed:
        source.notes.append(f"the style file {style_path.name} changed since this group was "
                            "made: the re-run uses its current content")
    mask = document.read_mask(result_group)
    params = record.job_params().with_(outputs=(region,))
    return Job(source=source, style=style, params=params, record=record,
               connection=connection or Connection(), kind="rerun", region=region,
               group=result_group, mask=mask)


def apply(document: Document, job: Job) -> Any:
    """GUI thread: put a DONE job's result into the document (one undo step).

    Returns the result group. A re-run replaces only its region's layer; the
    mask the artist painted stays as it is.
    """
    if job.state is not JobState.DONE or job.plan is None:
        raise RuntimeError(f"the job is {job.state.value}, not done: nothing to apply")
    if job.params.preview is not None:
        raise RuntimeError("a preview is shown, not applied: run the job without preview")
    assert job.plan.record is not None
    if job.kind == "rerun":
        assert job.region is not None
        name = REGION_LAYERS[job.region]
        document.replace_layer(job.group, name, job.plan.layer(name).pixels,
                               job.plan.record.to_json())
        return job.group
    return document.add_result_group(job.plan,
                                     result_anchor(document, job.group, job.source.layer_id))


def run_to_end(document: Document, job: Job,
               on_event: Callable[[JobEvent], None] | None = None) -> Any:
    """Scripts and tests: run the job on this thread and apply it; raise on failure."""
    state = job.run(on_event)
    if state is JobState.CANCELLED:
        raise Cancelled(CANCELLED, "cancelled")
    if state is JobState.FAILED:
        raise RuntimeError(job.error)
    return apply(document, job)
