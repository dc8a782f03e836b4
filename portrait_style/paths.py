"""Where portrait-style keeps its files on this machine.

One place decides, so the daemon's log, the weight cache and the plug-in's
launcher agree. ``PORTRAIT_STYLE_HOME`` moves everything under one folder
(tests use it to isolate runs); otherwise the platform's user folders are used.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "portrait-style"


def _home_override() -> Path | None:
    value = os.environ.get("PORTRAIT_STYLE_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Long-lived data: model files and their converted forms."""
    override = _home_override()
    if override is not None:
        return override / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def state_dir() -> Path:
    """Logs and the running daemon's ready file."""
    override = _home_override()
    if override is not None:
        return override / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def weights_cache_dir() -> Path:
    """Verified model files and their conversions.

    ``PORTRAIT_STYLE_WEIGHTS_CACHE`` points it elsewhere on its own, so test runs
    that isolate ``PORTRAIT_STYLE_HOME`` still share one cache of model files.
    """
    value = os.environ.get("PORTRAIT_STYLE_WEIGHTS_CACHE")
    return Path(value).expanduser() if value else data_dir() / "weights"


def log_dir() -> Path:
    return state_dir() / "logs"
