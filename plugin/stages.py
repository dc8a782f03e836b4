"""What a running job is doing, in the artist's words.

Why one module: the daemon reports stage ids (``segment``, ``transform``…,
SPEC.md "progress") and the core reports job states (connecting, queued…).
GIMP's status bar and Krita's docker show the same sentence for the same
moment — "painting… 40 %", never "transform — 40%".
Editor-safe: standard library only (vendored into the plug-ins).
"""

from __future__ import annotations

from typing import Any

__all__ = ["STAGE_WORDS", "describe", "stage_words"]

#: the daemon's stage ids (SPEC.md, "progress") and the core's, as an artist reads them
STAGE_WORDS: dict[str, str] = {
    "sending": "sending the layer",
    "queued": "waiting for the daemon",
    "started": "starting",
    "decode": "reading the layer",
    "segment": "finding the person",
    "encode": "studying the painting",
    "transform": "painting",
    "stylize": "painting",
    "upsample": "bringing it to full size",
    "compose": "putting the layers together",
    "encode_reply": "sending the layers back",
    "done": "adding the layers",
    "cancelling": "cancelling",
}

#: job states (``plugin.job.JobState`` values) that say more than their stage
_STATE_WORDS = {
    "connecting": "connecting to the daemon",
    "starting daemon": "starting the daemon (the first time takes a while)",
    "done": "adding the layers",
    "cancelled": "cancelled",
    "failed": "failed",
}
_FINAL = ("done", "cancelled", "failed")


def stage_words(stage: str) -> str:
    """``stage`` in words; an unknown id is shown with its underscores as spaces."""
    return STAGE_WORDS.get(stage, stage.replace("_", " "))


def describe(event: Any) -> str:
    """One line for a ``JobEvent``: what is happening, then the whole job's percentage.

    ``event`` needs ``state`` (a ``JobState`` or its value), ``stage``,
    ``fraction`` (< 0: unknown) and ``position`` (queue place or None).
    Example: ``"painting… 40 %"``, ``"waiting for the daemon (2 jobs ahead)"``.
    """
    state = getattr(event.state, "value", event.state)
    if state == "queued":
        position = event.position
        if position is None or position <= 1:
            return "waiting for the daemon (next in line)"
        ahead = position - 1
        return f"waiting for the daemon ({ahead} job{'s' if ahead != 1 else ''} ahead)"
    words = _STATE_WORDS.get(state) or (stage_words(event.stage) if event.stage else state)
    if state in _FINAL:
        return words
    if event.fraction is None or event.fraction < 0:
        return f"{words}…"
    percent = round(min(max(event.fraction, 0.0), 1.0) * 100)
    return f"{words}… {percent} %"
