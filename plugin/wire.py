"""Make the two wire libraries importable inside an editor's Python.

Why: the plug-in needs pyzmq and msgpack, and an editor's Python may lack them
(Debian's system Python without python3-zmq, Krita's and GIMP's own builds).
The installer then unpacks wheels matching that Python into the plug-in's own
``_wire`` folder. This module adds that folder to ``sys.path`` only when the
libraries are missing — at the end of the path, so an editor that has its own
copies (and other plug-ins sharing Krita's interpreter) keep using theirs.

Where pyzmq cannot load at all (GIMP's MSYS2 Python on Windows, GIMP's signed
Python on macOS arm64), that is not an error here: the client then talks to the
daemon through a helper process of the product's own environment
(``protocol/bridge.py``). msgpack always loads — its wheel carries a pure-Python
fallback. Import nothing from the protocol here: this runs before zmq can be
imported.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["WireMissing", "ensure_wire", "wire_status"]

_MODULES = ("zmq", "msgpack")


class WireMissing(ImportError):
    """pyzmq or msgpack cannot be imported, even from the plug-in's own folder."""


def _importable(name: str) -> str | None:
    """None when ``name`` imports, else the reason."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # ImportError, or a compiled module that fails to load
        return f"{type(exc).__name__}: {exc}"
    return None


def ensure_wire(vendor_dir: Path | None = None) -> None:
    """Import pyzmq and msgpack, from ``vendor_dir`` when the editor has none."""
    missing = {name: why for name in _MODULES if (why := _importable(name))}
    if not missing:
        return
    if vendor_dir is not None and vendor_dir.is_dir() and str(vendor_dir) not in sys.path:
        sys.path.append(str(vendor_dir))
        for name in list(missing):
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[loaded]  # a half-failed import must not shadow the vendored one
            why = _importable(name)
            if why is None:
                del missing[name]
            else:
                missing[name] = why
    missing.pop("zmq", None)  # no pyzmq: the client uses the bridge transport instead
    if missing:
        details = "; ".join(f"{name} ({why})" for name, why in missing.items())
        raise WireMissing(
            f"portrait-style needs msgpack in this editor's Python "
            f"({sys.version.split()[0]}), and could not import {details}. Re-run "
            "'portrait-style install-plugin' for this editor (it bundles them), or install "
            "python3-zmq and python3-msgpack")


def wire_status() -> dict[str, str]:
    """Module → version (or the import error), for ``doctor`` and the status line."""
    out: dict[str, str] = {}
    for name in _MODULES:
        why = _importable(name)
        if why:
            out[name] = why
        else:
            module = sys.modules[name]
            out[name] = str(getattr(module, "__version__", getattr(module, "version", "?")))
    return out
