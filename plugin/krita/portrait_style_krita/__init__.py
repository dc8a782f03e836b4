"""Portrait Style for Krita: a docker that restyles a photo after a painting.

The heavy lifting happens in the portrait-style daemon (PyTorch, its own
environment); this package is the editor side: Krita widgets and layers over
the product's editor-safe core, bundled in ``_core/`` by
``portrait-style install-plugin krita``. Importing the package registers the
docker and the actions when Krita runs it as a plug-in; scripts use::

    import portrait_style_krita
    group = portrait_style_krita.apply(document, node, "starry_night.jpg")
    portrait_style_krita.rerun(document, group, "portrait")

Only Krita and Qt are imported here (the core and the wire libraries load on
first use), so a broken install still shows the docker with its error.

Krita 5.2 is the target; 5.1 works too (transparency masks come from a
template file there, see ``masks51.py``; its first result takes ~0.4 s longer).
Qt is reached only through ``qt.py`` (PyQt5, or PyQt6 for Krita 6).
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply", "rerun", "cancel", "register"]

_registered = False


def apply(document: Any, node: Any, style_path: Any, **kwargs: Any) -> Any:
    """Run one job on ``node`` and return the new result group (see ``api.apply``)."""
    from .api import apply as _apply

    return _apply(document, node, style_path, **kwargs)


def rerun(document: Any, group: Any, region: str, endpoint: str | None = None,
          **kwargs: Any) -> Any:
    """Re-run "portrait" or "background" of a result group (see ``api.rerun``)."""
    from .api import rerun as _rerun

    return _rerun(document, group, region, endpoint, **kwargs)


def cancel() -> bool:
    """Cancel the scripted job in flight, e.g. from an ``on_event`` handler."""
    from .api import cancel as _cancel

    return _cancel()


def register() -> bool:
    """Add the extension and the docker to the running Krita (once); False outside Krita."""
    try:
        from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
    except ImportError:
        return False
    global _registered
    app = Krita.instance()
    if app is None or _registered:
        return False
    from .docker import DOCKER_ID, PortraitStyleDocker
    from .extension import PortraitStyleExtension

    app.addExtension(PortraitStyleExtension(app))
    app.addDockWidgetFactory(DockWidgetFactory(
        DOCKER_ID, DockWidgetFactoryBase.DockRight, PortraitStyleDocker))
    _registered = True
    return True


register()
