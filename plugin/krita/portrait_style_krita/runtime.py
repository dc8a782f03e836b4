"""Loading the bundled core and the wire libraries, lazily and without crashing Krita.

Why lazy: the installer puts the product's editor-safe modules in ``_core/``
and, when Krita's Python lacks them, pyzmq and msgpack in ``_wire/``. A broken
or missing wire library must not stop the plug-in from loading — the docker
then shows what is wrong instead of vanishing from the Settings ▸ Dockers
menu. So nothing here runs at import time; ``core()`` is called by the code
that actually talks to the daemon and raises ``CoreUnavailable`` with a
sentence an artist can act on.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

__all__ = ["CoreUnavailable", "core", "PACKAGE_DIR", "LAYER_OUTPUTS"]

#: what Krita asks the daemon for: the layers it builds (the composite is Krita's own)
LAYER_OUTPUTS = ("background", "portrait", "mask")

PACKAGE_DIR = Path(__file__).resolve().parent
_loaded: dict[str, ModuleType] = {}


class CoreUnavailable(RuntimeError):
    """The bundled core or the wire libraries cannot be imported (the message says why)."""


def core() -> dict[str, ModuleType]:
    """The core modules by short name: job, core, pixels, record, explain, launcher, stages…

    First call: put ``_wire`` on ``sys.path`` (through the core's own
    ``ensure_wire``, which knows how to do that safely for a shared Krita
    interpreter), then import. Later calls return the same modules.
    """
    if _loaded:
        return _loaded
    package = __package__ or "portrait_style_krita"
    if not (PACKAGE_DIR / "_core" / "plugin").is_dir():
        raise CoreUnavailable(
            f"the plug-in folder {PACKAGE_DIR} lacks its bundled core (_core): install it "
            "with `portrait-style install-plugin krita` instead of copying the source folder")
    try:
        wire = importlib.import_module(f"{package}._core.plugin.wire")
        wire.ensure_wire(PACKAGE_DIR / "_wire")
        modules = {name: importlib.import_module(f"{package}._core.plugin.{name}")
                   for name in ("pixels", "core", "record", "document", "explain", "job",
                                "launcher", "stages", "image_integrity")}
        modules["messages"] = importlib.import_module(f"{package}._core.protocol.messages")
        modules["errors"] = importlib.import_module(f"{package}._core.protocol.errors")
        modules["config"] = importlib.import_module(f"{package}._core.config")
    except ImportError as exc:
        if type(exc).__name__ == "WireMissing":  # the core's own sentence says it best
            raise CoreUnavailable(str(exc)) from exc
        missing = getattr(exc, "name", None) or str(exc)
        raise CoreUnavailable(
            f"Portrait Style cannot load {missing!r} in Krita's Python ({exc}). Re-run "
            "`portrait-style install-plugin krita`, which bundles pyzmq and msgpack for "
            "Krita's Python version.") from exc
    _loaded.update(modules)
    return _loaded
