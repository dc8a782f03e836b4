"""The command-line host: ``portrait-style stylize CONTENT --style STYLE --out DIR``.

Why a host like the editors: it drives the same core (``run_stylize``) through
the same ``Document`` interface, only its "document" is a folder of files. That
keeps the layer contract identical everywhere and gives the project an
end-to-end check that needs no editor. It imports no torch: without
``--connect`` it finds (or starts) the local daemon through the launcher.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths
from ..config import ConfigError, load_config, this_installation_config
from ..protocol import knobs
from ..protocol.constants import LAYER_NAMES, TOKEN_ENV
from ..protocol.endpoints import ENDPOINT_ENV, configured_or_default
from ..protocol.messages import Pixels
from .core import (
    BACKGROUND_LAYER,
    PORTRAIT_LAYER,
    LayerPlan,
    OptionError,
    SourceLayer,
    StylizeOptions,
    parse_params,
)
from .document import LayerInfo
from .gallery import GALLERY_PREFIX, GalleryError, is_gallery_ref
from .gallery import resolve as resolve_gallery
from .image_header import MAX_STYLE_PIXELS
from .imageio import ImageReadError, ImageWriteError, load_image, load_mask
from .job import Connection, Job, JobEvent, JobState
from .progress import ProgressBar
from .record import JobRecord, file_sha256

__all__ = ["add_parser", "main", "FileDocument", "EXIT_CODES"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_UNREACHABLE = 4
EXIT_DAEMON = 5
EXIT_OUTPUT = 6
EXIT_UNSAFE_FOLDER = paths.UNSAFE_FOLDER_EXIT
EXIT_CANCELLED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "unexpected internal error (a bug: please report it)",
    EXIT_USAGE: "invalid arguments (including --param)",
    EXIT_INPUT: "an input file (content, style, mask) is missing or unreadable",
    EXIT_UNREACHABLE: "no daemon answered or one could not be started, or it was stopped "
                      "or crashed during the job",
    EXIT_DAEMON: "the daemon refused or failed the job",
    EXIT_OUTPUT: "an output file could not be written",
    EXIT_UNSAFE_FOLDER: "this user's private folder for the daemon's socket is a link, another "
                        "user's, or open to others (the message says how to fix it)",
    EXIT_CANCELLED: "cancelled with Ctrl-C (the job is cancelled on the daemon too)",
    129: "stopped by SIGHUP (the terminal closed); no output file left half-written",
    143: "stopped by SIGTERM; no output file left half-written",
}

ENGINES = ("auto", "magenta", "sanet", "noop")
SAMPLE_PREFIX = "sample:"

_PROG_ERROR = "portrait-style: error: "


class CliError(Exception):
    """An error to report as one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _samples() -> dict[str, Path]:
    folder = resources.files("portrait_style") / "samples"
    out: dict[str, Path] = {}
    for entry in folder.iterdir():
        if entry.name.lower().endswith((".jpg", ".jpeg", ".png")):
            out[Path(entry.name).stem] = Path(str(entry))
    return out


def resolve_input(text: str) -> Path:
    """A path, ``sample:NAME`` (bundled samples) or ``gallery:NAME`` (the gallery)."""
    if is_gallery_ref(text):
        try:
            return resolve_gallery(text)
        except GalleryError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    if text.startswith(SAMPLE_PREFIX):
        name = text[len(SAMPLE_PREFIX):]
        samples = _samples()
        if name not in samples:
            raise CliError(f"no bundled sample {name!r}; available: "
                           f"{', '.join(sorted(samples))}", EXIT_USAGE)
        return samples[name]
    return Path(text).expanduser()


class FileDocument:
    """A ``Document`` whose one layer is an image file and whose result group is files.

    ``add_result_group`` writes background.png, portrait.png, mask.png,
    composite.png and layers.ora into ``out_dir`` (those the reply holds),
    through ``plugin/outputs.py``. The editor-only operations (masks, records,
    re-runs) do not apply to files: a re-run is ``--mask`` + ``--outputs``.
    """

    def __init__(self, content_path: Path, pixels: np.ndarray, out_dir: Path) -> None:
        self.content_path = content_path
        self.pixels = pixels
        self.out_dir = out_dir
        self.written: list[Path] = []
        self.timings: dict[str, float] = {}

    def active_layers(self) -> list[LayerInfo]:
        height, width = self.pixels.shape[:2]
        return [LayerInfo(ref=self.content_path, name=self.content_path.stem,
                          bounds=(0, 0, width, height), layer_id=str(self.content_path))]

    def read_layer(self, ref: Any) -> SourceLayer:
        return SourceLayer(self.content_path.stem, Pixels.from_array(self.pixels), (0, 0),
                           layer_id=str(self.content_path))

    def add_result_group(self, plan: LayerPlan, above: Any) -> Path:
        from .outputs import write_outputs  # Pillow-backed; only this host needs it

        layers: dict[str, np.ndarray] = {}
        for name, key in ((BACKGROUND_LAYER, "background"), (PORTRAIT_LAYER, "portrait")):
            if plan.has(name):
                layers[key] = plan.layer(name).pixels.to_array()
        if plan.mask is not None:
            layers["mask"] = plan.mask.to_array()
        if plan.composite is not None:
            layers["composite"] = plan.composite.to_array()
        self.written = write_outputs(self.out_dir, layers, source_name=plan.source_name,
                                     group_name=plan.group_name, source=self.pixels,
                                     timings=self.timings)
        return self.out_dir


    def add_preview(self, plan: LayerPlan) -> Path:
        """``--preview N``: the preview's composite as composite.png (nothing else)."""
        import time

        from .imageio import save_png

        if plan.composite is None:
            raise ImageWriteError("the daemon's preview holds no composite")
        started = time.perf_counter()
        self.written = [save_png(self.out_dir / "composite.png", plan.composite.to_array())]
        self.timings["write_s"] = time.perf_counter() - started
        return self.out_dir


def output_names() -> tuple[str, ...]:
    return ("background.png", "portrait.png", "mask.png", "composite.png", "layers.ora")


def _check_out_dir(out_dir: Path) -> None:
    """Refuse --out that is a file or cannot be written to, before any work is done."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {str(out_dir)!r} is a file, not a folder: choose a folder "
                       "for the results", EXIT_OUTPUT)
    existing = next((p for p in [out_dir, *out_dir.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CliError(f"--out {str(out_dir)!r} is inside {str(existing)!r}, which is a file",
                       EXIT_OUTPUT)
    if existing is not None and _read_only_file_system(existing):
        raise CliError(f"--out {str(out_dir)!r}: {str(existing)!r} is on a read-only file "
                       "system; choose a folder on a writable disk", EXIT_OUTPUT)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--out {str(out_dir)!r}: no permission to write in {str(existing)!r}",
                       EXIT_OUTPUT)


def _read_only_file_system(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (not a permission matter)."""
    try:
        return bool(os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 0))
    except (OSError, AttributeError):
        return False


def _check_outputs_spare(content: Path, out_dir: Path) -> None:
    """Refuse to run when an output would overwrite the content file."""
    _check_out_dir(out_dir)
    for name in output_names():
        target = out_dir / name
        same = target.resolve() == content.resolve()
        if not same and target.exists():
            try:
                same = os.path.samefile(target, content)
            except OSError:
                same = False
        if same:
            raise CliError(f"the output {str(target)!r} would overwrite the content file; "
                           f"choose another --out folder", EXIT_OUTPUT)


def _outputs(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return LAYER_NAMES
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    bad = [n for n in names if n not in LAYER_NAMES]
    if bad or not names:
        raise CliError(f"--outputs: unknown layer {', '.join(bad) or '(none)'}; "
                       f"choose from {', '.join(LAYER_NAMES)}", EXIT_USAGE)
    return tuple(dict.fromkeys(names))


def _epilog() -> str:
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())
    knob_lines = "\n".join(f"  {k.name:<15}{k.range_text():<10}"
                           f"{k.tooltip.format(region='region')}" for k in knobs.TABLE)
    return (
        "Without --connect, this user's daemon is used (a Unix socket in the user's runtime\n"
        f"folder, or ${ENDPOINT_ENV}, or the config file's endpoint), or one is started\n"
        "there and left running for the next call ('portrait-style status' shows it,\n"
        "'portrait-style stop' stops it); its log is in the user state folder\n"
        "($PORTRAIT_STYLE_HOME/state/logs when that is set).\n"
        f"CONTENT and STYLE may be '{SAMPLE_PREFIX}astronaut' and "
        f"'{SAMPLE_PREFIX}starry_night',\n"
        "the bundled public-domain samples; STYLE may be "
        f"'{GALLERY_PREFIX}NAME', a painting of the\n"
        "bundled gallery ('portrait-style styles' lists them).\n"
        f"For a daemon that requires a token, set ${TOKEN_ENV}.\n\n"
        "region knobs for --param REGION.KNOB=VALUE (REGION: background or portrait):\n"
        f"{knob_lines}\n"
        "  unset knobs keep the daemon's defaults for the engine it runs.\n\n"
        f"exit status:\n{codes}"
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """Keep the epilog's layout and show each option's default."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``stylize`` on the ``portrait-style`` command."""
    p = subparsers.add_parser(
        "stylize", help="stylize an image file into background/portrait/mask layers",
        description="Stylize CONTENT with STYLE: writes background.png, portrait.png, "
                    "mask.png, composite.png and a layered layers.ora into DIR. "
                    "CONTENT is never modified.",
        epilog=_epilog(), formatter_class=_HelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="the photo (any format Pillow reads)")
    p.add_argument("--style", required=True, metavar="STYLE",
                   help=f"the painting: a file, or {GALLERY_PREFIX}NAME from the bundled "
                        "gallery ('portrait-style styles' lists them)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the results (created if missing)")
    p.add_argument("--connect", metavar="ENDPOINT",
                   help="use the daemon at ENDPOINT (e.g. tcp://host:5571); never start one")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="with --connect: the daemon's CurveZMQ public key (server.key); "
                        "our own pair is keys/client/client.key_secret in the config "
                        "folder, or the config's client_key (see 'portrait-style keys')")
    _add_knob_flags(p)
    p.add_argument("--whole-image", action="store_true",
                   help="plain transfer of the whole frame (for comparison)")
    p.add_argument("--param", action="append", default=[], metavar="REGION.KNOB=VALUE",
                   help="set one region knob, e.g. portrait.strength=0.4 or "
                        "background.w_high=1.5 (repeatable; wins over the flags above)")
    p.add_argument("--mask", metavar="MASK.png",
                   help="your own person mask (white = person), same size as CONTENT")
    p.add_argument("--outputs", nargs="+", metavar="LAYER",
                   help=f"layers to compute, from {', '.join(LAYER_NAMES)} (default: all)")
    p.add_argument("--feather", type=float, metavar="PX", dest="mask_feather",
                   help="soften the person mask's edge by PX pixels (Gaussian sigma; "
                        "default: the daemon's, 0); an artist's --mask is never changed")
    p.add_argument("--preview", type=int, metavar="N",
                   help="write only a preview: composite.png with long side N, the full "
                        "result scaled down, computed at a fraction of the cost")
    p.add_argument("--max-working-pixels", type=int, metavar="N",
                   help="cap on the pixels the style network sees at once")
    p.add_argument("--engine", choices=ENGINES,
                   help="style engine, only used when a daemon has to be started")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up when the daemon is silent for S seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say which daemon was used and print job_s= (the daemon's time) and "
                        "write_s= (writing the files)")
    p.set_defaults(func=main)
    return p


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (every ``finally`` removes its temporary files).

    A ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` on
    the way (the job's own) mistakes it for a failure of the job.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: signals that stop the command like Ctrl-C twice: at once, leaving no partial file
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                      if hasattr(signal, name))


def _add_knob_flags(p: argparse.ArgumentParser) -> None:
    """A flag per knob-table control (``--portrait-strength F``, ``--preserve-color``…)."""
    for control in knobs.controls(advanced=False):
        text = control.tooltip.replace("%", "%%")
        if control.kind is bool:
            p.add_argument(f"--{control.name}", action="store_true", default=argparse.SUPPRESS,
                           dest=f"knob_{control.attr}", help=text)
        else:
            p.add_argument(f"--{control.name}", type=float, metavar="F",
                           default=argparse.SUPPRESS, dest=f"knob_{control.attr}",
                           help=f"{text} (default: {control.default:g}, the daemon's)")


def _knob_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The knob flags given, by control name."""
    return {c.name: getattr(args, f"knob_{c.attr}", None)
            for c in knobs.controls(advanced=False)}


@contextmanager
def _signals_handled(cancel: threading.Event, writing: threading.Event,
                     progress: ProgressBar | None) -> Iterator[None]:
    """First Ctrl-C asks the daemon to cancel; a second one, or one while the files are
    written, interrupts at once; SIGTERM and SIGHUP interrupt at once. Interrupting
    unwinds through ``write_outputs``, which removes its temporary files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.is_set() or writing.is_set():
            raise KeyboardInterrupt
        cancel.set()
        if progress is not None:
            progress.message("portrait-style: cancelling… (Ctrl-C again to quit at once)")

    def on_stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}
    for signum in _STOP_SIGNALS:
        previous[signum] = signal.signal(signum, on_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class _Inputs:
    content_path: Path
    content: np.ndarray
    style_path: Path
    style: np.ndarray
    mask: np.ndarray | None
    options: StylizeOptions


def _load_inputs(args: argparse.Namespace) -> _Inputs:
    """Every check that needs no daemon: arguments, --out, then the files themselves."""
    try:
        regions = parse_params(args.param)
        content_path = resolve_input(args.content)
        style_path = resolve_input(args.style)
        outputs = _outputs(args.outputs)
        options = StylizeOptions(
            style_path=style_path, controls=_knob_flags(args), region_overrides=regions,
            whole_image=args.whole_image, outputs=("composite",) if args.preview else outputs,
            max_working_pixels=args.max_working_pixels, mask_feather=args.mask_feather,
            preview=args.preview)
        options.params()  # every knob checked now, before a daemon is started
    except OptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    _check_outputs_spare(content_path, args.out)
    try:
        content = load_image(content_path, what="photo")
        style = load_image(style_path, max_pixels=MAX_STYLE_PIXELS, what="style painting")
        mask = (load_mask(resolve_input(args.mask), (content.shape[1], content.shape[0]))
                if args.mask else None)
    except ImageReadError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    return _Inputs(content_path, content, style_path, style, mask, options)


def _connection(args: argparse.Namespace) -> Connection:
    """Reach the daemon the user named, or this user's local one (started from here)."""
    try:
        config = load_config()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    # the command line is the product itself: a daemon it starts runs from this installation
    config = this_installation_config(config)
    if args.engine:
        config.engine = args.engine
    kwargs: dict[str, Any] = {}
    if args.timeout is not None:
        kwargs["timeout_s"] = args.timeout
    if args.server_key is not None:
        config.server_key = str(args.server_key)
    if args.connect is not None:
        from ..protocol.curve import keys_from_settings

        try:
            kwargs["curve"] = keys_from_settings(config.server_key, config.client_key)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    return Connection(endpoint=args.connect or configured_or_default(config.endpoint),
                      token=os.environ.get(TOKEN_ENV) or None,
                      start_daemon=args.connect is None, config=config, **kwargs)


def _exit_code(exc: BaseException | None) -> int:
    from ..protocol.errors import DaemonError, DaemonStopped, DaemonUnreachable, ProtocolError
    from .core import PlanError
    from .launcher import DaemonStartError

    if isinstance(exc, paths.UnsafeFolderError):
        return EXIT_UNSAFE_FOLDER
    if isinstance(exc, DaemonUnreachable | DaemonStartError | DaemonStopped):
        return EXIT_UNREACHABLE
    if isinstance(exc, DaemonError | ProtocolError | PlanError):
        return EXIT_DAEMON
    if isinstance(exc, OptionError):
        return EXIT_USAGE
    if isinstance(exc, ImageWriteError | OSError):
        return EXIT_OUTPUT
    return EXIT_INTERNAL


def _run(args: argparse.Namespace, progress: ProgressBar | None,
         cancel: threading.Event, writing: threading.Event) -> int:
    inputs = _load_inputs(args)  # file errors need no daemon
    connection = _connection(args)
    params = inputs.options.params()
    source = SourceLayer(inputs.content_path.stem, Pixels.from_array(inputs.content),
                         layer_id=str(inputs.content_path))
    record = JobRecord(style_path=str(inputs.style_path),
                       style_sha256=file_sha256(inputs.style_path),
                       style_name=inputs.options.display_style_name(), params=params.as_dict(),
                       source_id=source.layer_id, source_name=source.name)
    job = Job(source=source, style=Pixels.from_array(inputs.style[..., :3]), params=params,
              record=record, connection=connection,
              mask=None if inputs.mask is None else Pixels.from_array(inputs.mask))
    started_daemon: list[bool] = []

    def on_event(event: JobEvent) -> None:
        if cancel.is_set() and not job.cancelled:
            job.cancel()
        if event.state is JobState.STARTING_DAEMON:
            started_daemon.append(True)
        if progress is None:
            return
        if event.state is JobState.QUEUED:
            progress(f"queued (position {event.position})", -1.0)
        elif event.state in (JobState.STARTING_DAEMON, JobState.RUNNING) and event.stage:
            progress(event.stage, event.fraction)

    watcher = threading.Thread(target=_forward_cancel, args=(cancel, job), daemon=True)
    watcher.start()
    state = job.run(on_event)
    if state is JobState.CANCELLED:
        raise CliError("cancelled", EXIT_CANCELLED)
    if state is JobState.FAILED:
        raise CliError(job.error, _exit_code(job.failure))
    assert job.plan is not None
    if started_daemon and progress is not None:
        progress.message(f"portrait-style: started a daemon on {connection.endpoint} "
                         f"(pid {job.daemon.get('pid')}); it keeps running for the next call")
    theirs = str(job.daemon.get("installation") or "")
    if theirs and theirs != paths.installation():
        print(f"portrait-style: notice: the daemon (pid {job.daemon.get('pid')}) runs from "
              f"another installation ({theirs}); 'portrait-style stop' replaces it with this "
              "one's", file=sys.stderr)
    document = FileDocument(inputs.content_path, inputs.content, args.out)
    writing.set()  # from here Ctrl-C stops at once: there is no job left to cancel
    try:
        if args.preview:
            document.add_preview(job.plan)
        else:
            document.add_result_group(job.plan, inputs.content_path)
    except ImageWriteError as exc:
        raise CliError(str(exc), EXIT_OUTPUT) from exc
    if progress is not None:
        progress("done", 1.0)
        progress.close()
    for notice in job.notices:
        print(f"portrait-style: notice: {notice}", file=sys.stderr)
    if args.verbose:
        _report(job, document, connection)
    for path in document.written:
        print(path)
    return EXIT_OK


def _forward_cancel(cancel: threading.Event, job: Job) -> None:
    """Ctrl-C sets ``cancel`` in the signal handler; pass it on to the job."""
    while not job.state.final:
        if cancel.wait(0.05):
            job.cancel()
            return


def _report(job: Job, document: FileDocument, connection: Connection) -> None:
    hello = job.daemon
    assert job.plan is not None
    timings = job.plan.info.get("timings") or {}
    job_s = sum(float(v) for v in timings.values() if isinstance(v, int | float))
    engine = hello.get("engines", {}).get("active", "?")
    print(f"portrait-style: daemon pid {hello.get('pid')} on {connection.endpoint}: "
          f"portrait-style {hello.get('daemon_version', '?')}, engine {engine}, device "
          f"{hello.get('device', '?')}, installation {hello.get('installation', '?')}",
          file=sys.stderr)
    print(f"portrait-style: job_s={job_s:.3f} write_s={document.timings.get('write_s', 0.0):.3f}",
          file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run ``stylize``; every failure is one ``portrait-style: error:`` line + exit code."""
    cancel, writing = threading.Event(), threading.Event()
    progress = None if args.quiet else ProgressBar(sys.stderr)
    try:
        with _signals_handled(cancel, writing, progress):
            return _run(args, progress, cancel, writing)
    except CliError as exc:
        if progress is not None:
            progress.close()
        message = str(exc)
        if exc.code == EXIT_CANCELLED:
            print("portrait-style: cancelled", file=sys.stderr)
        else:
            print(_PROG_ERROR + message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print("portrait-style: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except _Stopped as stopped:
        if progress is not None:
            progress.close()
        name = signal.Signals(stopped.signum).name
        print(f"portrait-style: stopped by {name}; no output file was written or left "
              "half-written", file=sys.stderr)
        return 128 + stopped.signum
    except paths.UnsafeFolderError as exc:
        if progress is not None:
            progress.close()
        print(_PROG_ERROR + str(exc), file=sys.stderr)
        return EXIT_UNSAFE_FOLDER
    except Exception as exc:  # the promise is one clear line, even for our own bugs
        if progress is not None:
            progress.close()
        print(f"{_PROG_ERROR}internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("PORTRAIT_STYLE_DEBUG"):
            raise
        return EXIT_INTERNAL
