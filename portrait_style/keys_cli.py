"""``portrait-style keys``: CurveZMQ key pairs for a daemon used over a network.

Why a command: CURVE needs files in the right places on two machines — the
daemon's pair and its allowed folder on the GPU box, a pair per artist and the
daemon's public key on each editor's machine (layout: ``protocol/curve.py``).
The studio's admin runs ``create server`` and ``allow``; an artist runs
``create client``, sends ``client.key`` (public) to the admin and installs the
daemon's ``server.key`` with ``trust-server``. Secret files never travel.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``keys`` and its actions."""
    parser = subparsers.add_parser(
        "keys", help="CurveZMQ keys for a daemon on the network (create, list, allow, revoke)",
        description="Manage the CurveZMQ keys a remote daemon and its clients use "
                    "(ZeroMQ certificate files).")
    parser.add_argument("--dir", type=Path, default=None, metavar="DIR",
                        help="keys folder (default: keys/ in the config folder)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key pair: 'server' (the daemon's) "
                                               "or 'client' (this user's)")
    create.add_argument("role", choices=("server", "client"))
    actions.add_parser("list", help="this machine's keys and the allowed clients")
    allow = actions.add_parser("allow", help="let a client in: copy its public key file")
    allow.add_argument("file", type=Path, help="the client's public key (NAME.key)")
    allow.add_argument("--name", default=None, help="name to file it under (default: the "
                                                    "file's name)")
    revoke = actions.add_parser("revoke", help="shut a client out: new connections at once, "
                                               "open ones within a second")
    revoke.add_argument("who", help="its name (as in 'list') or its public key")
    trust = actions.add_parser("trust-server", help="install the daemon's public key for "
                                                    "this user's client")
    trust.add_argument("file", type=Path, help="the daemon's server.key")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """0 on success, 1 when a file is missing, unreadable or would be overwritten."""
    from .protocol.curve import KeyFolders

    folders = KeyFolders(args.dir) if args.dir else KeyFolders.default()
    try:
        return _ACTIONS[args.action](args, folders)
    except (OSError, ValueError) as exc:
        print(f"portrait-style keys: {exc}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace, folders: Any) -> int:
    from .protocol.curve import create_key_pair

    folder = folders.server if args.role == "server" else folders.client
    public, secret = create_key_pair(folder, args.role)
    print(f"public key: {public}\nsecret key: {secret} (keep it here; never send it)")
    if args.role == "server":
        folders.allowed.mkdir(parents=True, exist_ok=True, mode=0o700)
        print(f"give {public} to each client (portrait-style keys trust-server FILE); "
              "start the daemon with --curve")
    else:
        print(f"send {public} to the daemon's owner (portrait-style keys allow FILE)")
    return 0


def _list(args: argparse.Namespace, folders: Any) -> int:
    for label, path in (("server", folders.server / "server.key"),
                        ("client", folders.client / "client.key"),
                        ("trusted server", folders.trusted_server)):
        print(f"{label}: {_public_key(path) if path.exists() else '-'}  ({path})")
    allowed = sorted(folders.allowed.glob("*.key")) if folders.allowed.is_dir() else []
    print(f"allowed clients ({len(allowed)}, {folders.allowed}):")
    for path in allowed:
        print(f"  {path.stem}  {_public_key(path)}")
    return 0


def _allow(args: argparse.Namespace, folders: Any) -> int:
    import zmq.auth

    public, secret = zmq.auth.load_certificate(args.file)
    if secret:
        raise ValueError(f"{args.file} holds a secret key: allow the public file (.key) only")
    name = args.name or args.file.stem
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r}: use letters, digits, '.', '_' or '-'")
    known = {_public_key(p): p for p in folders.allowed.glob("*.key")} \
        if folders.allowed.is_dir() else {}
    if public.decode() in known:
        print(f"already allowed as {known[public.decode()].stem}")
        return 0
    target = folders.allowed / f"{name}.key"
    if target.exists():
        raise FileExistsError(f"{target} exists with another key; choose --name")
    folders.allowed.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(args.file, target)
    print(f"allowed {name}: {public.decode()}")
    return 0


def _revoke(args: argparse.Namespace, folders: Any) -> int:
    matches = [p for p in (folders.allowed.glob("*.key") if folders.allowed.is_dir() else [])
               if args.who in (p.stem, _public_key(p))]
    if not matches:
        raise ValueError(f"no allowed client {args.who!r} (see 'portrait-style keys list')")
    for path in matches:
        path.unlink()
        print(f"revoked {path.stem}: a running daemon refuses it from now on, on connections "
              "already open too (its jobs end with 'auth_failed')")
    return 0


def _trust_server(args: argparse.Namespace, folders: Any) -> int:
    import zmq.auth

    public, secret = zmq.auth.load_certificate(args.file)
    if secret:
        raise ValueError(f"{args.file} holds the daemon's secret key: ask for server.key")
    folders.client.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(args.file, folders.trusted_server)
    print(f"trusting daemon key {public.decode()} ({folders.trusted_server})")
    return 0


def _public_key(path: Path) -> str:
    import zmq.auth

    try:
        return zmq.auth.load_certificate(path)[0].decode()
    except (OSError, ValueError):
        return "(unreadable)"


_ACTIONS = {"create": _create, "list": _list, "allow": _allow, "revoke": _revoke,
            "trust-server": _trust_server}
