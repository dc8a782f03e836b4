"""The config file the set-up writes and the plug-ins and the launcher read.

Why a file: an editor's plug-in runs in the editor's Python, which knows
nothing about the product's virtual environment. The file says how to start
the daemon (the exact command of the installation that wrote it), which
endpoint to use, and where the CurveZMQ keys are for a remote daemon. The
developer set-up (``installer/setup-dev.sh``) and the installer write it with
``portrait-style config --init``; ``$PORTRAIT_STYLE_HOME`` moves it with
everything else. Inside a Flatpak sandbox the app's own config folder is read
first (the installer writes a copy there), then the host's (``sandbox.py``).
Standard library only (copied into the plug-ins).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import paths, sandbox

__all__ = ["Config", "ConfigError", "config_path", "load_config", "readable_config_path",
           "save_config", "this_installation_config"]

CONFIG_NAME = "config.json"


class ConfigError(ValueError):
    """The config file exists but cannot be used; the message names it."""


@dataclass
class Config:
    """What hosts need to find and start the daemon.

    daemon_command: argv that starts ``serve`` (``--bind`` and ``--ready-file``
        are appended); None: this installation is not set up on this machine.
    installation: the environment the command runs from (compared with a
        running daemon's ``hello``).
    endpoint: None = this user's local socket; otherwise any ZeroMQ endpoint.
    engine / device: used when the daemon is started.
    server_key / client_key: CurveZMQ key files for a remote daemon.
    """

    daemon_command: list[str] | None = None
    installation: str = ""
    endpoint: str | None = None
    engine: str | None = None
    device: str | None = None
    server_key: str | None = None
    client_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def config_path() -> Path:
    return paths.config_dir() / CONFIG_NAME


def readable_config_path() -> Path:
    """The config file to read: this user's, or the host's from inside a Flatpak sandbox.

    Inside a sandbox ``config_path()`` is under ``~/.var/app/<app-id>/config``; the
    installer writes a copy there, but when there is none the host's own file
    (``$HOST_XDG_CONFIG_HOME`` or ``~/.config``) is read, so a plug-in in a
    Flatpak editor finds the installation even when the copy is missing.
    """
    own = config_path()
    if own.exists() or paths.HOME_ENV in os.environ or sandbox.flatpak_app() is None:
        return own
    host = sandbox.host_config_dir() / CONFIG_NAME
    return host if host.exists() else own


def load_config(path: Path | None = None) -> Config:
    """The config file's settings; an empty ``Config`` when there is none."""
    path = path or readable_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    known = {f.name for f in fields(Config)}
    config = Config(**{k: v for k, v in data.items() if k in known})
    if config.daemon_command is not None and not (
            isinstance(config.daemon_command, list)
            and all(isinstance(a, str) for a in config.daemon_command)):
        raise ConfigError(f"{path}: daemon_command must be a list of strings")
    return config


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write the file atomically (a plug-in reading it never sees half of it)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def this_installation_config(previous: Config | None = None) -> Config:
    """A config that starts the daemon from the running interpreter's installation."""
    base = previous or Config()
    base.daemon_command = [sys.executable, "-m", "portrait_style", "serve"]
    base.installation = paths.installation()
    return base
