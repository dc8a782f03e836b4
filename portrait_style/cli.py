"""The ``portrait-style`` console command: one entry point, one subcommand per job.

Each subcommand lives next to the code it drives and exposes
``add_parser(subparsers)``, which registers its arguments and sets
``func=<callable(args) -> int>``. Modules are imported lazily by name so that
``portrait-style stylize`` (the light command-line host) never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

#: subcommand → module (relative to this package) that registers it
SUBCOMMANDS: dict[str, str] = {
    "serve": ".daemon.server_cli",
    "stylize": ".plugin.cli_host",
    "styles": ".styles_cli",
    "weights": ".weights.cli",
    "train": ".weights.train",
    "keys": ".keys_cli",
    "install-plugin": ".installer.plugins",
    "doctor": ".installer.doctor",
    "bridge": ".protocol.bridge",
    "status": ".plugin.daemon_cli",
    "stop": ".plugin.daemon_cli",
    "config": ".plugin.daemon_cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; with ``only`` set, import just that subcommand's module."""
    parser = argparse.ArgumentParser(
        prog="portrait-style",
        description="Portrait-aware style transfer: background, portrait and mask layers.",
    )
    parser.add_argument("--version", action="version", version=f"portrait-style {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is not None and name != only:
            subparsers.add_parser(name, help=f"(run 'portrait-style {name} --help')")
            continue
        registered = importlib.import_module(module, __package__)
        adder = getattr(registered, f"add_{name.replace('-', '_')}_parser", None)
        (adder or registered.add_parser)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before torch is imported anywhere: OpenMP threads that spin while waiting
    # collapse on a busy 2-core CPU (measured 5-10x slower with an editor open);
    # passive waiting costs little when the machine is idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    only = command if command in SUBCOMMANDS else None
    if only is None and not any(a in {"-h", "--help", "--version"} for a in argv):
        build_parser(only="").print_help()
        return 2
    parser = build_parser(only=only if only else None)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from .paths import UnsafeFolderError

    try:
        return int(func(args) or 0)
    except UnsafeFolderError as exc:  # serve, status, stop, …: one sentence, not a traceback
        print(f"portrait-style {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
