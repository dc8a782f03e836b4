"""``portrait-style serve``: load the models once and serve jobs until stopped.

Why a separate module from the server: argument parsing, logging set-up,
signals and the ready file are process concerns; ``DaemonServer`` stays usable
in-process (tests) without any of them. The model runtime is imported only
when a real engine is asked for, so ``--engine noop`` starts without models.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..protocol.constants import PROTOCOL_VERSION, TOKEN_ENV
from ..protocol.framing import Limits

__all__ = ["add_parser", "run"]

log = logging.getLogger("portrait_style.daemon")

ENGINES = ("auto", "magenta", "sanet", "noop")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` and its options."""
    parser = subparsers.add_parser(
        "serve", help="run the warm daemon the plug-ins talk to",
        description="Load the segmenter and style engine once and serve stylize jobs over "
                    "ZeroMQ (protocol: protocol/SPEC.md).")
    parser.add_argument("--bind", default=None, metavar="ENDPOINT",
                        help="ZeroMQ endpoint to listen on (default: this user's local "
                             "socket, ipc://<runtime dir>/portrait-style/daemon.sock; "
                             "tcp://127.0.0.1:* picks a free port, see --ready-file)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")
    parser.add_argument("--engine", default="auto", choices=ENGINES,
                        help="style engine; noop returns the content unchanged (tests, "
                             "wire benchmark)")
    parser.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                        help="folder with SANet weights (vgg_normalised.pth, decoder.pth, "
                             "transformer.pth)")
    parser.add_argument("--segmenter", default="selfie", metavar="NAME",
                        help="person segmenter (default selfie)")
    parser.add_argument("--token", default=None,
                        help=f"shared secret clients must send (default ${TOKEN_ENV}, "
                             "preferred: a command line is visible to other local users); "
                             "for a loopback daemon shared by several users of one machine")
    parser.add_argument("--curve", action="store_true",
                        help="require CurveZMQ (encryption and client keys): only clients "
                             "whose public keys are in the allowed folder get in; required "
                             "to bind a non-loopback address (see 'portrait-style keys')")
    parser.add_argument("--server-keys", type=Path, default=None, metavar="FILE",
                        help="the daemon's key pair (default: keys/server/server.key_secret "
                             "in the config folder); implies --curve")
    parser.add_argument("--allowed-keys", type=Path, default=None, metavar="DIR",
                        help="folder of allowed client public keys (default: keys/allowed "
                             "in the config folder); implies --curve")
    parser.add_argument("--stderr-level", default="info", choices=("info", "warning"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, default=None, metavar="FILE",
                        help="write this JSON file (endpoint, pid) once bound and warm; "
                             "removed on exit")
    parser.add_argument("--max-pixels", type=int, default=Limits().max_pixels, metavar="N",
                        help="largest layer accepted, in pixels (default %(default)s)")
    parser.add_argument("--max-working-pixels", type=int, default=None, metavar="N",
                        help="default cap on the pixels the style network sees at once "
                             "(default: by device); a request may set its own")
    parser.add_argument("--max-queue", type=int, default=8, metavar="N",
                        help="jobs that may wait behind the running one (default 8)")
    parser.add_argument("--log-file", type=Path, default=None, metavar="FILE",
                        help="log file (default: serve.log in the user log folder)")
    parser.add_argument("--noop-delay", type=float, default=0.0, metavar="SECONDS",
                        help="with --engine noop: how long each job takes (tests)")
    parser.add_argument("--heartbeat", type=float, default=2.0, metavar="SECONDS",
                        help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 when start-up fails, 2 on bad usage."""
    from ..protocol.endpoints import default_endpoint, default_token
    from .server import DaemonServer, check_bind_allowed

    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        args.bind = args.bind or default_endpoint()
        token = token or default_token(args.bind)  # Windows' per-user loopback secret
        curve = _curve_keys(args)
        check_bind_allowed(args.bind, curve)
        limits = Limits.for_pixels(args.max_pixels)
    except (ValueError, TypeError) as exc:
        print(f"portrait-style serve: {exc}", file=sys.stderr)
        return 2
    log_file = _configure_logging(args.log_file, stderr_level=args.stderr_level)
    log.info("portrait-style daemon starting (pid %d, log %s)", os.getpid(), log_file)
    try:
        pipeline, notes = _load_pipeline(args)
    except (OSError, RuntimeError, ValueError) as exc:
        # expected set-up problems (missing weight files, no CUDA, bad checkpoint):
        # the message names the file or setting; a traceback would only bury it
        log.error("cannot start: %s", exc)
        return 1
    except Exception:
        log.exception("could not load the pipeline")
        return 1
    for note in notes:
        log.info("note: %s", note)
    try:
        server = DaemonServer(pipeline, endpoint=args.bind, token=token, limits=limits,
                              notes=notes, max_queue=args.max_queue,
                              heartbeat_s=args.heartbeat, curve=curve)
        endpoint = server.bind()
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.stop())
    log.info("ready on %s", endpoint)
    if args.ready_file is not None:
        _write_ready_file(args.ready_file, endpoint, pipeline)
    try:
        server.serve_forever()
    finally:
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


def _curve_keys(args: argparse.Namespace) -> Any:
    """The daemon's ``ServerKeys`` when CURVE is asked for, else None (ValueError: unusable)."""
    if not (args.curve or args.server_keys or args.allowed_keys):
        return None
    from ..protocol.curve import KeyFolders
    from .security import ServerKeys

    folders = KeyFolders.default()
    return ServerKeys.load(args.server_keys or folders.server_secret,
                           args.allowed_keys or folders.allowed)


def _load_pipeline(args: argparse.Namespace) -> tuple[Any, list[str]]:
    if args.engine == "noop":
        from .noop import NoopPipeline

        return NoopPipeline(delay_s=args.noop_delay), [
            "noop engine: every layer is the content unchanged (tests and benchmarks only)"]
    from .runtime import load_pipeline  # imports torch and the models: only when needed

    pipeline, notes = load_pipeline(engine=args.engine, device=args.device,
                                    sanet_weights_dir=args.weights_dir,
                                    segmenter=args.segmenter,
                                    max_working_pixels=args.max_working_pixels)
    warmup = getattr(pipeline, "warmup", None)
    if callable(warmup):
        warmup()
    from .oom_fallback import OomFallback

    device = str(pipeline.describe().get("device", "cpu"))
    cpu = None if device.startswith("cpu") else (lambda: load_pipeline(
        engine=args.engine, device="cpu", sanet_weights_dir=args.weights_dir,
        segmenter=args.segmenter, max_working_pixels=args.max_working_pixels)[0])
    return OomFallback(pipeline, cpu_pipeline=cpu), list(notes)


def _configure_logging(log_file: Path | None, stderr_level: str = "info") -> Path | None:
    """Log to stderr and to a rotating file under the user log folder.

    ``stderr_level="warning"`` is for a daemon whose stderr is a file nobody
    rotates (the launcher's ``daemon.log``): the full log is in the rotating
    file, stderr keeps only what a user must see.
    """
    from .. import paths

    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("portrait_style")
    root.setLevel(logging.INFO)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    stream.setLevel(logging.WARNING if stderr_level == "warning" else logging.INFO)
    root.addHandler(stream)
    path = log_file or paths.log_dir() / "serve.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2 << 20, backupCount=3,
                                                       encoding="utf-8")
    except OSError as exc:
        root.warning("no log file (%s): logging to stderr only", exc)
        return None
    handler.setFormatter(formatter)
    root.addHandler(handler)
    return path


def _write_ready_file(path: Path, endpoint: str, pipeline: Any) -> None:
    """Atomically, so a watcher never reads half a file."""
    describe = getattr(pipeline, "describe", dict)()
    engine = describe.get("engine")
    payload = {"endpoint": endpoint, "pid": os.getpid(), "protocol": PROTOCOL_VERSION,
               "engine": engine.get("name") if isinstance(engine, dict) else engine}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
