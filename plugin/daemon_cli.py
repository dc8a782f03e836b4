"""``portrait-style status``, ``stop`` and ``config``: the local daemon, from a terminal.

Why: an artist (or a support answer) needs one command to see whether a
daemon runs, which one, on what device, and how busy it is — and one to stop
it so the next job starts a fresh one. ``config --init`` writes the file the
editor plug-ins read to start the daemon from this installation.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import ConfigError, config_path, load_config, save_config, this_installation_config

__all__ = ["add_status_parser", "add_stop_parser", "add_config_parser"]


def _endpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", metavar="ENDPOINT", default=None,
                   help="the daemon's endpoint (default: $PORTRAIT_STYLE_ENDPOINT, the config "
                        "file's, or this user's local socket)")


def add_status_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("status", help="show the running daemon (exit 1 when none)",
                              description="Endpoint, pid, version, device, engine, queue and "
                                          "uptime of the daemon; exit status 1 when none runs.")
    _endpoint_arg(p)
    p.add_argument("--json", action="store_true", help="print the daemon's hello as JSON")
    p.set_defaults(func=_status)
    return p


def add_stop_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("stop", help="stop this user's local daemon",
                              description="Stop the local daemon (the next job starts a "
                                          "fresh one); exit status 1 when none ran.")
    _endpoint_arg(p)
    p.set_defaults(func=_stop)
    return p


def add_config_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("config", help="show or write the plug-ins' config file",
                              description="The config file tells the editor plug-ins how to "
                                          "start the daemon and where it listens.")
    p.add_argument("--init", action="store_true",
                   help="make the daemon command this installation's (keeps other settings)")
    p.add_argument("--endpoint", default=None, metavar="ENDPOINT",
                   help="store an endpoint (an empty string resets to the local default)")
    p.set_defaults(func=_config)
    return p


def _status(args: argparse.Namespace) -> int:
    from ..protocol.endpoints import configured_or_default
    from .launcher import DaemonHandle, probe

    try:
        endpoint = args.connect or configured_or_default(load_config().endpoint)
    except ConfigError as exc:
        print(f"portrait-style status: {exc}", file=sys.stderr)
        return 2
    hello = probe(endpoint)
    if hello is None:
        print(f"no daemon is running at {endpoint}")
        return 1
    if args.json:
        print(json.dumps(hello, indent=2, default=str))
        return 0
    handle = DaemonHandle(endpoint, started=False, hello=hello, pid=hello.get("pid"))
    engines = hello.get("engines", {})
    print(f"endpoint      {endpoint}\n"
          f"pid           {hello.get('pid') or '?'}\n"
          f"version       {hello.get('daemon_version', '?')} (protocol {hello.get('protocol')})\n"
          f"device        {hello.get('device', '?')}\n"
          f"engine        {engines.get('active', '?')}  segmenter {hello.get('segmenter')}\n"
          f"queue         {hello.get('running', 0)} running, {hello.get('queue', 0)} waiting\n"
          f"uptime        {_duration(float(hello.get('uptime_s', 0.0)))}\n"
          f"installation  {hello.get('installation') or '?'}")
    for note in engines.get("notes", []):
        print(f"note          {note}")
    notice = handle.installation_notice(load_config().installation or None)
    if notice:
        print(f"notice        {notice}")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _stop(args: argparse.Namespace) -> int:
    from .launcher import DaemonStartError, stop_daemon

    try:
        handle = stop_daemon(args.connect)
    except DaemonStartError as exc:
        print(f"portrait-style stop: {exc}", file=sys.stderr)
        return 2
    if handle is None:
        print("no daemon was running")
        return 1
    print(f"stopped the daemon (pid {handle.pid}) on {handle.endpoint}")
    return 0


def _config(args: argparse.Namespace) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"portrait-style config: {exc}", file=sys.stderr)
        return 2
    changed = False
    if args.init:
        config = this_installation_config(config)
        changed = True
    if args.endpoint is not None:
        config.endpoint = args.endpoint or None
        changed = True
    if changed:
        path = save_config(config)
        print(f"wrote {path}")
    else:
        print(f"# {config_path()}")
    print(json.dumps({k: v for k, v in vars(config).items() if v not in (None, {}, "")},
                     indent=2))
    return 0
