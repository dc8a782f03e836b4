"""``portrait-style install-plugin gimp|krita``: put a self-contained plug-in in place.

Why self-contained: an editor runs the plug-in with its *own* Python, which
cannot see the product's virtual environment (and may sit in a Flatpak sandbox
or a chroot). So the installed folder carries (1) the host's plug-in code,
(2) ``_core/``: a copy of the product's editor-safe modules (protocol, core,
job, launcher… — standard library only), and (3) ``_wire/``: pyzmq and msgpack
unpacked from wheels for the editor's Python version and platform, when that
Python cannot import them already. Nothing else of the product is needed in
the editor; the daemon runs from the product's environment.

Every install writes ``INSTALLED.json`` in the plug-in folder listing what it
added (files, the kritarc flag), so ``--uninstall`` removes exactly that.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .. import paths
from .hosts import default_gimp_profiles, editor_python, krita_resource_dir, kritarc_path

__all__ = ["CORE_MODULES", "HOSTS", "HostLayout", "InstallError", "add_parser",
           "install_plugin", "uninstall_plugin", "vendor_core", "vendor_wire"]

#: the product's editor-safe modules, by package → file names (plugin/wire.py has the rule)
CORE_MODULES: dict[str, tuple[str, ...]] = {
    "portrait_style": ("__init__.py", "paths.py", "config.py", "sandbox.py"),
    "portrait_style.protocol": ("*",),  # the whole wire package is editor-safe by rule
    "portrait_style.plugin": ("__init__.py", "core.py", "pixels.py", "record.py", "document.py",
                              "job.py", "explain.py", "launcher.py", "contract.py", "wire.py",
                              "stages.py", "image_header.py", "image_integrity.py", "gallery.py",
                              "preview.py"),
}
#: data folders of the root package the editors read too (the gallery's paintings and thumbnails)
CORE_DATA: tuple[str, ...] = ("gallery",)
#: the wire libraries' requirements for vendoring (pyzmq 26 has cp310–cp313 wheels)
WIRE_REQUIREMENTS = ("pyzmq>=26,<28", "msgpack>=1.0")
MANIFEST = "INSTALLED.json"


class InstallError(Exception):
    """The plug-in could not be installed; the message says what to do."""


@dataclass(frozen=True)
class HostLayout:
    """Where one editor keeps user plug-ins, and the package the plug-in is."""

    name: str
    source: str  # folder under the product's plugin/ package
    package: str  # the Python package inside the installed folder

    def default_profiles(self) -> list[Path]:
        """Every folder the installed editor reads (GIMP: one per 3.x version, hosts.py)."""
        return [krita_resource_dir()] if self.name == "krita" else default_gimp_profiles()

    def default_profile(self) -> Path:
        return self.default_profiles()[-1]

    def plugin_dir(self, profile: Path) -> Path:
        """The folder the install owns (removed whole by ``--uninstall``)."""
        if self.name == "krita":
            return profile / "pykrita" / self.package
        return profile / "plug-ins" / "portrait-style"

    def package_dir(self, profile: Path) -> Path:
        base = self.plugin_dir(profile)
        return base if self.name == "krita" else base / self.package


HOSTS: dict[str, HostLayout] = {
    "krita": HostLayout("krita", "krita", "portrait_style_krita"),
    "gimp": HostLayout("gimp", "gimp", "portrait_style_gimp"),
}


# --------------------------------------------------------------------------- pieces


def _copy_tree(src: Any, dest: Path, written: list[str], root: Path) -> None:
    """Copy a resources folder (works for editable and wheel installs alike)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        target = dest / entry.name
        if entry.is_dir():
            _copy_tree(entry, target, written, root)
        else:
            target.write_bytes(entry.read_bytes())
            written.append(str(target.relative_to(root)))


def vendor_core(dest: Path, written: list[str] | None = None, root: Path | None = None) -> None:
    """Write ``dest`` as a package holding the product's editor-safe modules.

    The copy keeps their relative structure (``dest/protocol``, ``dest/plugin``),
    so their relative imports work under the plug-in's own package name and no
    generic module name reaches the editor's ``sys.path``.
    """
    written = written if written is not None else []
    root = root or dest
    for package, names in CORE_MODULES.items():
        folder = dest.joinpath(*package.split(".")[1:])
        folder.mkdir(parents=True, exist_ok=True)
        if names == ("*",):
            names = tuple(sorted(e.name for e in resources.files(package).iterdir()
                                 if e.name.endswith((".py", ".md"))))
        for name in names:
            source = resources.files(package) / name
            if not source.is_file():
                raise InstallError(f"the product is missing {package}/{name}: reinstall it")
            (folder / name).write_bytes(source.read_bytes())
            written.append(str((folder / name).relative_to(root)))
    for data in CORE_DATA:  # inside the plug-in folder, so a sandboxed editor can read it
        if not (resources.files("portrait_style") / data).is_dir():
            raise InstallError(f"the product is missing portrait_style/{data}: reinstall it")
        _copy_tree(resources.files("portrait_style") / data, dest / data, written, root)


def probe_python(python: str) -> dict[str, Any] | None:
    """Version, platform and wire-library availability of an interpreter (None: not runnable)."""
    code = ("import json,sys,sysconfig\nout={'version':'%d.%d'%sys.version_info[:2],"
            "'platform':sysconfig.get_platform(),'machine':__import__('platform').machine()}\n"
            "for m in ('zmq','msgpack'):\n try:\n  __import__(m); out[m]=True\n"
            " except Exception: out[m]=False\nprint(json.dumps(out))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _wheel_platforms(machine: str) -> list[str]:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    if sys.platform == "win32":
        return ["win_amd64"]
    if sys.platform == "darwin":
        return ["macosx_10_15_universal2", "macosx_11_0_arm64", "macosx_10_9_x86_64"]
    return [f"manylinux_2_28_{machine}", f"manylinux2014_{machine}",
            f"manylinux_2_17_{machine}", f"musllinux_1_1_{machine}"]


def download_wheels(version: str, machine: str, cache: Path,
                    log: Callable[[str], None]) -> list[Path]:
    """pyzmq and msgpack wheels for CPython ``version`` on ``machine`` (cached)."""
    abi = "cp" + version.replace(".", "")
    target = cache / f"{abi}-{machine}"
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-cache-dir",  # the wheels themselves are kept in ``cache``
           "--only-binary=:all:", "--no-deps", "--python-version", version,
           "--implementation", "cp", "-d", str(target)]
    for plat in _wheel_platforms(machine):
        cmd += ["--platform", plat]
    log(f"fetching pyzmq and msgpack wheels for Python {version} ({machine}) from PyPI")
    done = subprocess.run([*cmd, *WIRE_REQUIREMENTS], capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallError(f"could not download wheels for Python {version}: "
                           f"{done.stderr.strip().splitlines()[-1:] or done.returncode}")
    wheels: list[Path] = []
    for name in ("pyzmq", "msgpack"):
        found = sorted(target.glob(f"{name}-*.whl"))
        if not found:
            raise InstallError(f"no {name} wheel for Python {version} on {machine}")
        wheels.append(found[-1])
    return wheels


def vendor_wire(dest: Path, version: str, machine: str, log: Callable[[str], None],
                written: list[str], root: Path) -> None:
    """Unpack pyzmq and msgpack wheels into ``dest`` (the plug-in's ``_wire``)."""
    wheels = download_wheels(version, machine, paths.data_dir() / "wheels", log)
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.endswith("/"):
                    continue
                target = dest / member
                if not target.resolve().is_relative_to(dest.resolve()):
                    raise InstallError(f"{wheel.name} has an unsafe member {member!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
                written.append(str(target.relative_to(root)))
        log(f"bundled {wheel.name}")


def _set_kritarc_flag(path: Path, key: str, enabled: bool) -> bool:
    """Set ``[python] key=true`` (or remove it) in kritarc, edited as text.

    kritarc is not INI that configparser reads (Krita writes keys configparser
    rejects), so only the one line is touched. Returns whether the file changed.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "[python]"), None)
    pattern = re.compile(rf"^{re.escape(key)}\s*=")
    if start is None:
        if not enabled:
            return False
        lines += ([""] if lines and lines[-1].strip() else []) + ["[python]", f"{key}=true"]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
                   len(lines))
        index = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        if enabled:
            if index is not None and lines[index].strip() == f"{key}=true":
                return False
            if index is None:
                lines.insert(start + 1, f"{key}=true")
            else:
                lines[index] = f"{key}=true"
        elif index is None:
            return False
        else:
            del lines[index]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


# ------------------------------------------------------------------------- install


@dataclass
class InstallReport:
    """What an install did, for the user and for ``--uninstall``."""

    host: str
    plugin_dir: Path
    files: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    kritarc: str | None = None
    kritarc_added: bool = False
    created_dirs: list[str] = field(default_factory=list)
    python: dict[str, Any] = field(default_factory=dict)
    wire_bundled: bool = False


def _target_python(host: HostLayout, python: str | None) -> dict[str, Any]:
    """Which Python the editor runs plug-ins with, as far as it can be told.

    ``python`` is an interpreter path or a version ("3.13"); by default the one
    the installed editor names (``hosts.editor_python``: GIMP's interp files,
    Krita's libpython) — never the Python this command runs in.
    """
    python = python or editor_python(host.name)
    if python and re.fullmatch(r"3\.\d+", python):
        return {"version": python, "machine": platform.machine(), "zmq": False,
                "msgpack": False, "given": python}
    interpreter = python or shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    found = probe_python(interpreter)
    if found is None:
        raise InstallError(f"cannot run {interpreter!r} to learn which Python {host.name} uses; "
                           "pass --python PATH or --python 3.X")
    found["given"] = interpreter
    return found


def install_plugin(host_name: str, profile: Path | None = None, python: str | None = None, *,
                   log: Callable[[str], None] = print,
                   kritarc: Path | None = None) -> InstallReport:
    """Install (or repair/upgrade: it replaces its own folder) one editor's plug-in."""
    host = HOSTS[host_name]
    profile = Path(profile).expanduser() if profile else host.default_profile()
    target = host.plugin_dir(profile)
    report = InstallReport(host=host.name, plugin_dir=target)
    report.python = _target_python(host, python)
    previous = read_manifest(target)
    # every folder this install creates (a GIMP that never ran has no GIMP/3.N yet): deepest
    # first; they are removed again only when empty
    report.created_dirs = previous.get("created_dirs") or [
        str(d) for d in [target.parent, *target.parent.parents] if not d.exists()]
    staging = Path(tempfile.mkdtemp(prefix=".portrait-style-", dir=_mkdir(target.parent)))
    try:
        _copy_tree(resources.files("portrait_style.plugin") / host.source /
                   (host.package if host.name == "krita" else "portrait-style"),
                   staging, report.files, staging)
        package = staging if host.name == "krita" else staging / host.package
        vendor_core(package / "_core", report.files, staging)
        if not (report.python.get("zmq") and report.python.get("msgpack")):
            vendor_wire(package / "_wire", report.python["version"],
                        report.python.get("machine") or platform.machine(), log,
                        report.files, staging)
            report.wire_bundled = True
        if host.name == "gimp":
            entry = staging / "portrait-style.py"
            entry.chmod(entry.stat().st_mode | 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if host.name == "krita":
        desktop = profile / "pykrita" / f"{host.package}.desktop"
        source = resources.files("portrait_style.plugin") / host.source / desktop.name
        desktop.write_bytes(source.read_bytes())
        report.extra_files.append(str(desktop))
        rc = kritarc or kritarc_path()
        report.kritarc = str(rc)
        report.kritarc_added = _set_kritarc_flag(rc, f"enable_{host.package}", True) or bool(
            previous.get("kritarc_added"))
    _write_manifest(target, report)
    log(f"installed the {host.name} plug-in into {target}"
        + (f" (+ {report.extra_files[0]})" if report.extra_files else ""))
    log(f"  editor Python: {report.python.get('given')} "
        f"({report.python.get('version')}, {report.python.get('machine', '?')}); "
        + ("bundled pyzmq and msgpack for it" if report.wire_bundled
           else "it already has pyzmq and msgpack"))
    if report.kritarc:
        log(f"  enabled it in {report.kritarc}")
    return report


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_manifest(target: Path, report: InstallReport) -> None:
    data = {"host": report.host, "files": report.files, "extra_files": report.extra_files,
            "kritarc": report.kritarc, "kritarc_added": report.kritarc_added,
            "created_dirs": report.created_dirs,
            "python": report.python, "wire_bundled": report.wire_bundled}
    (target / MANIFEST).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_manifest(target: Path) -> dict[str, Any]:
    try:
        return json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def uninstall_plugin(host_name: str, profile: Path | None = None, *,
                     log: Callable[[str], None] = print) -> bool:
    """Remove what ``install_plugin`` added (and nothing else); False if not installed."""
    host = HOSTS[host_name]
    profile = Path(profile).expanduser() if profile else host.default_profile()
    target = host.plugin_dir(profile)
    manifest = read_manifest(target)
    if not target.exists():
        log(f"the {host.name} plug-in is not installed in {profile}")
        return False
    shutil.rmtree(target)
    for extra in manifest.get("extra_files", []):
        Path(extra).unlink(missing_ok=True)
    if manifest.get("kritarc") and manifest.get("kritarc_added"):
        _set_kritarc_flag(Path(manifest["kritarc"]), f"enable_{host.package}", False)
    for folder in manifest.get("created_dirs", []):  # deepest first, as recorded
        path = Path(folder)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    log(f"removed the {host.name} plug-in from {target}")
    return True


# ---------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``install-plugin``."""
    p = subparsers.add_parser(
        "install-plugin", help="install the GIMP 3 or Krita plug-in for this user",
        description="Copy the self-contained plug-in into the editor's user folder "
                    "(with pyzmq/msgpack for the editor's Python when it lacks them).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("host", choices=sorted(HOSTS), help="which editor")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="the editor's user folder (default: every folder the installed editor "
                        "reads — GIMP ~/.config/GIMP/3.N for each 3.N found, Krita "
                        "~/.local/share/krita)")
    p.add_argument("--python", default=None, metavar="PYTHON",
                   help="the editor's Python: an interpreter path, or a version such as 3.13 "
                        "when it cannot be run from here (default: the one the installed "
                        "editor names)")
    p.add_argument("--kritarc", type=Path, default=None, metavar="FILE",
                   help="Krita's kritarc to enable the plug-in in (default: ~/.config/kritarc)")
    p.add_argument("--uninstall", action="store_true", help="remove what an install added")
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    host = HOSTS[args.host]
    if args.profile is not None:
        profiles = [args.profile]
    elif args.uninstall:  # wherever an install put it, even a version no longer installed
        profiles = [p for p in _every_gimp_folder() if host.plugin_dir(p).exists()] \
            if host.name == "gimp" else host.default_profiles()
    else:
        profiles = host.default_profiles()
    try:
        for profile in profiles or host.default_profiles():
            if args.uninstall:
                uninstall_plugin(args.host, profile)
            else:
                install_plugin(args.host, profile, args.python, kritarc=args.kritarc)
    except InstallError as exc:
        print(f"portrait-style install-plugin: {exc}", file=sys.stderr)
        return 1
    return 0


def _every_gimp_folder() -> list[Path]:
    from .hosts import gimp_config_root, installed_gimp_folders

    return [*default_gimp_profiles(),
            *(gimp_config_root() / v for v in installed_gimp_folders(gimp_config_root()))]


def installed_files(host_name: str, profile: Path | None = None) -> Iterable[str]:
    """The files a previous install recorded (for ``doctor``)."""
    host = HOSTS[host_name]
    profile = Path(profile).expanduser() if profile else host.default_profile()
    return read_manifest(host.plugin_dir(profile)).get("files", [])
