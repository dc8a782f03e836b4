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
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.constants import DEFAULT_ENDPOINT, LAYER_NAMES, TOKEN_ENV
from .core import (
    BACKGROUND_LAYER,
    PORTRAIT_LAYER,
    LayerPlan,
    OptionError,
    PlanError,
    SourceLayer,
    StylizeOptions,
    compose,
    parse_params,
    run_stylize,
)
from .imageio import ImageReadError, ImageWriteError, load_image, load_mask, save_png
from .progress import ProgressBar

__all__ = ["add_parser", "main", "FileDocument", "EXIT_CODES"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_UNREACHABLE = 4
EXIT_DAEMON = 5
EXIT_OUTPUT = 6
EXIT_CANCELLED = 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "unexpected internal error (a bug: please report it)",
    EXIT_USAGE: "invalid arguments (including --param)",
    EXIT_INPUT: "an input file (content, style, mask) is missing or unreadable",
    EXIT_UNREACHABLE: "no daemon answered, or one could not be started",
    EXIT_DAEMON: "the daemon refused or failed the job",
    EXIT_OUTPUT: "an output file could not be written",
    EXIT_CANCELLED: "cancelled with Ctrl-C (the job is cancelled on the daemon too)",
}

ENGINES = ("auto", "magenta", "sanet", "noop")
SAMPLE_PREFIX = "sample:"
#: the local endpoint to use (or start a daemon on) when --connect is not given
ENDPOINT_ENV = "PORTRAIT_STYLE_ENDPOINT"

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
    """A path, or ``sample:NAME`` for the bundled public-domain samples."""
    if text.startswith(SAMPLE_PREFIX):
        name = text[len(SAMPLE_PREFIX):]
        samples = _samples()
        if name not in samples:
            raise CliError(f"no bundled sample {name!r}; available: "
                           f"{', '.join(sorted(samples))}", EXIT_USAGE)
        return samples[name]
    return Path(text).expanduser()


class FileDocument:
    """A ``Document`` whose active layer is an image file and whose layers are files.

    ``add_layer_group`` writes background.png, portrait.png, mask.png,
    composite.png and layers.ora into ``out_dir`` (those the reply allows).
    """

    def __init__(self, content_path: Path, pixels: np.ndarray, out_dir: Path) -> None:
        self.content_path = content_path
        self.pixels = pixels
        self.out_dir = out_dir
        self.written: list[Path] = []

    def active_layer(self) -> SourceLayer:
        return SourceLayer(self.content_path.stem, self.pixels, (0, 0))

    def add_layer_group(self, plan: LayerPlan, above: SourceLayer) -> None:
        from .ora import write_plan_ora  # Pillow-backed; only this host needs it

        layers = {p.name: p for p in plan.layers}
        background = layers.get(BACKGROUND_LAYER)
        portrait = layers.get(PORTRAIT_LAYER)
        composite = plan.composite
        if composite is None and background and portrait and plan.mask is not None:
            composite = compose(background.pixels, portrait.pixels, plan.mask)
        files: list[tuple[str, np.ndarray | None]] = [
            ("background.png", background.pixels if background else None),
            ("portrait.png", portrait.pixels if portrait else None),
            ("mask.png", plan.mask),
            ("composite.png", composite),
        ]
        for name, pixels in files:
            if pixels is not None:
                self.written.append(save_png(self.out_dir / name, pixels))
        if background and portrait and plan.mask is not None:
            self.written.append(write_plan_ora(self.out_dir / "layers.ora", plan, above))


def output_names() -> tuple[str, ...]:
    return ("background.png", "portrait.png", "mask.png", "composite.png", "layers.ora")


def _check_outputs_spare(content: Path, out_dir: Path) -> None:
    """Refuse to run when an output would overwrite the content file."""
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
    return (
        "Without --connect, a daemon already running on this machine is used, or one\n"
        f"is started on {DEFAULT_ENDPOINT} (or ${ENDPOINT_ENV}) and left running\n"
        "for the next call; its log is in the user state folder\n"
        "($PORTRAIT_STYLE_HOME/state/logs when that is set).\n"
        f"CONTENT and STYLE may be '{SAMPLE_PREFIX}astronaut' and "
        f"'{SAMPLE_PREFIX}starry_night',\n"
        "the bundled public-domain samples.\n"
        f"For a daemon that requires a token, set ${TOKEN_ENV}.\n\n"
        f"exit status:\n{codes}"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``stylize`` on the ``portrait-style`` command."""
    p = subparsers.add_parser(
        "stylize", help="stylize an image file into background/portrait/mask layers",
        description="Stylize CONTENT with STYLE: writes background.png, portrait.png, "
                    "mask.png, composite.png and a layered layers.ora into DIR. "
                    "CONTENT is never modified.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="the photo (any format Pillow reads)")
    p.add_argument("--style", required=True, metavar="STYLE", help="the painting")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the results (created if missing)")
    p.add_argument("--connect", metavar="ENDPOINT",
                   help="use the daemon at ENDPOINT (e.g. tcp://host:5571); never start one")
    p.add_argument("--background-strength", type=float, metavar="F",
                   help="style strength of the background pass, 0..1")
    p.add_argument("--portrait-strength", type=float, metavar="F",
                   help="style strength of the portrait pass, 0..1")
    p.add_argument("--preserve-color", action="store_true",
                   help="keep the photo's colours, take only the style's texture")
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
    p.add_argument("--max-working-pixels", type=int, metavar="N",
                   help="cap on the pixels the style network sees at once")
    p.add_argument("--engine", choices=ENGINES,
                   help="style engine, only used when a daemon has to be started")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up when the daemon is silent for S seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=main)
    return p


@contextmanager
def _sigint_cancels(cancel: threading.Event, progress: ProgressBar | None) -> Iterator[None]:
    """First Ctrl-C asks the daemon to cancel; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        if progress is not None:
            progress.message("portrait-style: cancelling… (Ctrl-C again to quit at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _load_inputs(args: argparse.Namespace) -> tuple[Path, np.ndarray, StylizeOptions]:
    try:
        regions = parse_params(args.param)
        content_path = resolve_input(args.content)
        style_path = resolve_input(args.style)
        outputs = _outputs(args.outputs)
    except OptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    _check_outputs_spare(content_path, args.out)
    try:
        content = load_image(content_path)
        style = load_image(style_path)
        mask = (load_mask(resolve_input(args.mask), (content.shape[1], content.shape[0]))
                if args.mask else None)
    except ImageReadError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    options = StylizeOptions(
        style_path=style_path, style_pixels=style, background_strength=args.background_strength,
        portrait_strength=args.portrait_strength, preserve_color=args.preserve_color,
        region_overrides=regions, mask=mask, whole_image=args.whole_image, outputs=outputs,
        max_working_pixels=args.max_working_pixels, mask_feather=args.mask_feather)
    try:
        options.regions()  # check the strengths now, before a daemon is started
    except OptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    return content_path, content, options


def _run(args: argparse.Namespace, progress: ProgressBar | None,
         cancel: threading.Event) -> int:
    content_path, content, options = _load_inputs(args)  # file errors need no daemon

    from ..protocol.client import DaemonClient
    from ..protocol.errors import (
        Cancelled,
        DaemonError,
        DaemonUnreachable,
        MessageTooLarge,
        ProtocolError,
    )
    from .launcher import DaemonStartError, ensure_daemon

    token = os.environ.get(TOKEN_ENV) or None
    endpoint = args.connect or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT
    try:
        if args.connect is None:
            handle = ensure_daemon(endpoint, engine=args.engine, on_progress=progress,
                                   token=token, cancel=cancel)
            if handle.started and progress is not None:
                progress.message(f"portrait-style: started a daemon on {endpoint} "
                                 f"(pid {handle.pid}, log {handle.log_path}); "
                                 f"it keeps running for the next call")
        document = FileDocument(content_path, content, args.out)
        client_kwargs: dict[str, Any] = {"token": token}
        if args.timeout is not None:
            client_kwargs["timeout_s"] = args.timeout
        with DaemonClient(endpoint, **client_kwargs) as client:
            outcome = run_stylize(document, options, client, on_progress=progress,
                                  cancel=cancel, timeout_s=args.timeout)
    except Cancelled as exc:
        raise CliError("cancelled", EXIT_CANCELLED) from exc
    except DaemonStartError as exc:
        raise CliError(f"could not start a daemon on {endpoint}: {exc}",
                       EXIT_UNREACHABLE) from exc
    except DaemonUnreachable as exc:
        hint = ("" if args.connect is None else
                f" (is 'portrait-style serve --bind {endpoint}' running there?)")
        raise CliError(f"no daemon answered at {endpoint}: {exc.message}{hint}",
                       EXIT_UNREACHABLE) from exc
    except (DaemonError, MessageTooLarge) as exc:
        raise CliError(f"the daemon refused the job: {exc}", EXIT_DAEMON) from exc
    except ProtocolError as exc:
        raise CliError(f"protocol error talking to {endpoint}: {exc}", EXIT_DAEMON) from exc
    except PlanError as exc:
        raise CliError(f"bad reply from the daemon: {exc}", EXIT_DAEMON) from exc
    except OptionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except ImageWriteError as exc:
        raise CliError(str(exc), EXIT_OUTPUT) from exc
    if progress is not None:
        progress("done", 1.0)
        progress.close()
    for notice in outcome.notices:
        print(f"portrait-style: notice: {notice}", file=sys.stderr)
    for path in document.written:
        print(path)
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    """Run ``stylize``; every failure is one ``portrait-style: error:`` line + exit code."""
    cancel = threading.Event()
    progress = None if args.quiet else ProgressBar(sys.stderr)
    try:
        with _sigint_cancels(cancel, progress):
            return _run(args, progress, cancel)
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
    except Exception as exc:  # the promise is one clear line, even for our own bugs
        if progress is not None:
            progress.close()
        print(f"{_PROG_ERROR}internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("PORTRAIT_STYLE_DEBUG"):
            raise
        return EXIT_INTERNAL
