"""``portrait-style doctor``: what is wrong with this installation, and how to fix it.

Why: the anchors' users mostly report plug-ins that do not show up, editor
Pythons that cannot import what the plug-in needs, missing model files and a
daemon that does not start. Each of those is a check here, run the way the
editors would run it (the editor's own Python imports the installed plug-in's
wire libraries; the daemon is started on demand as the hosts do), and every
failure comes with the command that fixes it. Exit status 1 when anything is
broken, 0 otherwise (warnings do not fail).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, paths
from ..config import ConfigError, config_path, load_config
from .hosts import (
    GIMP_FLATPAK,
    EditorInstall,
    find_editors,
    gimp_config_root,
    installed_gimp_folders,
)
from .plugins import HOSTS, read_manifest

__all__ = ["Check", "add_parser", "run_checks"]

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    """One line of the report: what was checked, how it went, and the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _environment() -> list[Check]:
    checks = [Check("environment", OK, f"portrait-style {__version__}, Python "
                    f"{sys.version.split()[0]} at {sys.executable}")]
    try:
        config = load_config()
    except ConfigError as exc:
        return [*checks, Check("config file", FAIL, str(exc),
                               f"delete {config_path()} and run 'portrait-style config --init'")]
    if not config.daemon_command:
        what = "has no daemon command" if config_path().exists() else "does not exist"
        checks.append(Check("config file", FAIL, f"{config_path()} {what}: the editors cannot "
                            "start the daemon",
                            "portrait-style config --init (or re-run the installer)"))
    elif not Path(config.daemon_command[0]).exists():
        checks.append(Check("config file", FAIL, f"the daemon command's interpreter "
                            f"{config.daemon_command[0]} does not exist",
                            "re-run the installer, or 'portrait-style config --init'"))
    else:
        checks.append(Check("config file", OK, f"{config_path()}: the daemon starts with "
                            f"{' '.join(config.daemon_command)}"))
    return checks


def _torch() -> list[Check]:
    try:
        import torch
    except Exception as exc:
        return [Check("torch", FAIL, f"PyTorch does not import: {exc}",
                      "re-run the installer (it installs the right PyTorch)")]
    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return [Check("torch", OK, f"PyTorch {torch.__version__}, device {device}")]


def _weights() -> list[Check]:
    from ..weights.fetch import VerifyState, verify
    from ..weights.registry import load_registry

    checks = []
    for entry in load_registry().values():
        if not entry.embedded:
            continue
        report = verify(entry.name)
        if report.state is VerifyState.VERIFIED:
            checks.append(Check(f"model {entry.name}", OK, f"{report.path} (sha256 "
                                f"{report.detail[:12]}…)"))
        else:
            checks.append(Check(f"model {entry.name}", FAIL, f"{report.state.value}: "
                                f"{report.detail}", f"portrait-style weights fetch {entry.name}"))
    return checks


def _daemon() -> list[Check]:
    from ..plugin.explain import explain
    from ..plugin.launcher import ensure_daemon
    from ..protocol.client import DaemonClient

    try:
        started = time.perf_counter()
        handle = ensure_daemon()
        ready = time.perf_counter() - started
        with DaemonClient(handle.endpoint) as client:
            rtt = min(client.ping() for _ in range(3))
    except Exception as exc:
        return [Check("daemon", FAIL, explain(exc),
                      "see the daemon log in " + str(paths.log_dir()))]
    how = f"started in {ready:.1f} s" if handle.started else "already running"
    return [Check("daemon", OK, f"{handle.describe()} ({how}); ping {rtt * 1000:.1f} ms")]


_IMPORT_PROBE = """
import sys
from pathlib import Path
package = Path(sys.argv[1])
sys.path.insert(0, str(package.parent))
core = __import__(package.name + "._core.plugin.wire", fromlist=["ensure_wire"])
core.ensure_wire(package / "_wire")
import msgpack
try:
    import zmq
    print("pyzmq", zmq.zmq_version())
except ImportError:
    print("the-bridge", "(no pyzmq)")
"""


def _editor(editor: EditorInstall) -> list[Check]:
    host = HOSTS[editor.host]
    target = host.plugin_dir(editor.profile)
    name = f"{editor.host} ({editor.kind})"
    manifest = read_manifest(target)
    if not manifest:
        return [Check(name, FAIL, f"the plug-in is not installed in {target}",
                      f"portrait-style install-plugin {editor.host} --profile {editor.profile} "
                      f"--python {editor.python}")]
    checks = [Check(name, OK, f"installed in {target} ({len(manifest.get('files', []))} files)")]
    if editor.host == "gimp":
        entry = target / "portrait-style.py"
        if not entry.exists() or not entry.stat().st_mode & 0o111:
            checks.append(Check(name, FAIL, f"{entry} is missing or not executable: GIMP will "
                                "not list the plug-in", f"chmod +x {entry}"))
    if editor.kritarc is not None:
        flag = f"enable_{host.package}=true"
        text = editor.kritarc.read_text() if editor.kritarc.exists() else ""
        if flag not in text:
            checks.append(Check(name, FAIL, f"not enabled in {editor.kritarc}",
                                f"portrait-style install-plugin krita --profile {editor.profile}"))
    checks.append(_editor_python(name, editor, host.package_dir(editor.profile), manifest))
    if editor.app_id:
        checks.append(_flatpak_access(name, editor.app_id))
    return checks


def _flatpak_access(name: str, app: str) -> Check:
    """A Flatpak editor reaches the daemon only through the exposed socket folder."""
    from ..sandbox import SERVICE_NAME, override_command
    from .flatpak_access import flatpak_override_granted, service_unit_path

    if not flatpak_override_granted(app):
        return Check(name, FAIL, f"the Flatpak {app} may not see the daemon's socket folder",
                     override_command(app))
    if not service_unit_path().exists():
        return Check(name, WARN, f"the Flatpak {app} cannot start the daemon, and no "
                     f"{SERVICE_NAME} runs it on the host",
                     "re-run the installer (it adds the unit), or 'portrait-style serve'")
    return Check(name, OK, f"the Flatpak {app} may see the daemon's socket folder; "
                 f"{SERVICE_NAME} runs the daemon on the host")


def _editor_python(name: str, editor: EditorInstall, package: Path,
                   manifest: dict[str, Any]) -> Check:
    """Run the editor's own Python on the installed plug-in's wire import, if it can be run."""
    if not Path(editor.python).is_absolute():
        python = manifest.get("python") or {}
        fix = (f"portrait-style install-plugin {editor.host} --profile {editor.profile} "
               f"--python {editor.python}")
        if not manifest.get("wire_bundled"):
            return Check(name, WARN, f"cannot run this editor's Python {editor.python} from "
                         "here, and no pyzmq/msgpack is bundled for it", fix)
        if python.get("version") != editor.python:
            return Check(name, FAIL, f"pyzmq is bundled for Python {python.get('version')}, but "
                         f"this editor runs Python {editor.python}: it cannot load it", fix)
        return Check(name, OK, f"pyzmq and msgpack for Python {editor.python} are bundled (that "
                     "Python cannot be run from here to try them)")
    try:
        done = subprocess.run([editor.python, "-c", _IMPORT_PROBE, str(package)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, FAIL, f"cannot run {editor.python}: {exc}",
                     f"portrait-style install-plugin {editor.host} --python PATH")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return Check(name, FAIL, f"{editor.python} cannot import the wire libraries: {last}",
                     f"portrait-style install-plugin {editor.host} --profile {editor.profile} "
                     f"--python {editor.python}")
    how = " ".join(done.stdout.split()[-2:])
    return Check(name, OK, f"{editor.python} reaches the daemon through {how}")


def run_checks(*, daemon: bool = True,
               editors: Callable[[], list[EditorInstall]] = find_editors) -> list[Check]:
    checks = [*_environment(), *_torch(), *_weights()]
    if daemon:
        checks += _daemon()
    found = editors()
    if not found:
        checks.append(Check("editors", WARN, "no GIMP 3 or Krita found for this user",
                            "install one, then 'portrait-style install-plugin gimp|krita'"))
    for editor in found:
        checks += _editor(editor)
    checks += _unread_gimp_folders(found)
    return checks


def _unread_gimp_folders(found: list[EditorInstall]) -> list[Check]:
    """A GIMP plug-in in a version folder no installed GIMP reads (3.0's, under GIMP 3.2)."""
    read = {e.profile for e in found if e.host == "gimp" and e.kind != "profile"}
    if not read:
        return []
    versions = sorted({e.version or "?" for e in found if e.profile in read})
    roots = {gimp_config_root(), Path.home() / ".var" / "app" / GIMP_FLATPAK / "config" / "GIMP"}
    checks = []
    for root in sorted(roots):
        for version in installed_gimp_folders(root):
            folder = root / version
            if folder in read or not read_manifest(HOSTS["gimp"].plugin_dir(folder)):
                continue
            missing = [p for p in sorted(read) if not read_manifest(HOSTS["gimp"].plugin_dir(p))]
            status = FAIL if missing else WARN
            checks.append(Check(
                "gimp", status, f"a copy of the plug-in sits in {folder}, which the installed "
                f"GIMP ({', '.join(versions)}) does not read"
                + (f"; it is missing from {', '.join(map(str, missing))}" if missing else ""),
                "portrait-style install-plugin gimp (puts it in every folder GIMP reads)"))
    return checks


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("doctor", help="check the installation and say how to fix it",
                              description="Check the environment, PyTorch, the model files, "
                                          "the daemon and every editor's plug-in.")
    p.add_argument("--no-daemon", action="store_true", help="do not start or ping the daemon")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    checks = run_checks(daemon=not args.no_daemon)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            print(f"[{check.status:>4}] {check.name.ljust(width)}  {check.detail}")
            if check.fix and check.status != OK:
                print(f"       {' ' * width}  fix: {check.fix}")
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        print(f"{len(failed)} problem(s) found", file=sys.stderr)
    return 1 if failed else 0

