"""Krita's side of the plug-in: the menu actions, wired to the one ``Controller``.

Why actions as well as buttons: artists bind shortcuts to actions and find
them with Krita's action search; the docker's buttons and these actions call
the same controller methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from krita import Extension  # type: ignore[import-not-found]

__all__ = ["PortraitStyleExtension", "ACTIONS", "MENU"]

MENU = "tools/scripts"
#: action id → (menu text, what it does)
ACTIONS: dict[str, tuple[str, str]] = {
    "portrait_style_apply": ("Portrait Style: Apply", "apply"),
    "portrait_style_rerun_portrait": ("Portrait Style: Re-run Portrait", "rerun_portrait"),
    "portrait_style_rerun_background": ("Portrait Style: Re-run Background",
                                        "rerun_background"),
    "portrait_style_mask_from_selection": ("Portrait Style: Mask from Selection",
                                           "mask_from_selection"),
    "portrait_style_selection_from_mask": ("Portrait Style: Selection from Mask",
                                           "selection_from_mask"),
    "portrait_style_cancel": ("Portrait Style: Cancel", "cancel"),
}


class PortraitStyleExtension(Extension):  # type: ignore[misc]
    """Creates the actions in every window; they act on the active document."""

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        pass

    def createActions(self, window: Any) -> None:  # noqa: N802 - Krita's API name
        for action_id, (text, what) in ACTIONS.items():
            action = window.createAction(action_id, text, MENU)
            action.triggered.connect(lambda _checked=False, w=what: _trigger(w))


def _trigger(what: str) -> None:
    from .controller import controller

    ctl = controller()
    if what == "apply":
        _apply_from_docker(ctl)
    elif what == "rerun_portrait":
        ctl.rerun("portrait")
    elif what == "rerun_background":
        ctl.rerun("background")
    else:
        getattr(ctl, what)()


def _apply_from_docker(ctl: Any) -> None:
    """Apply with the settings of the visible docker (or the most recent painting)."""
    from krita import Krita  # type: ignore[import-not-found]

    from .controller import DockerOptions
    from .docker import PortraitStyleDocker
    from .styles import recent_styles

    window = Krita.instance().activeWindow()
    for dock in (window.dockers() if window is not None else []):
        if isinstance(dock, PortraitStyleDocker):
            ctl.apply(dock.options())
            return
    recent = recent_styles()
    ctl.apply(DockerOptions(style_path=Path(recent[0]) if recent else None))
