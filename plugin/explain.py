"""Every error a job can end with, as one short sentence for the artist.

Why one place: GIMP shows it in a message box, Krita in its docker, the command
line on stderr — and all three must say the same thing in the same words. The
sentences say what happened and what to do; the technical detail the daemon
gave follows after a colon, cut short.
"""

from __future__ import annotations

from ..config import ConfigError
from ..paths import UnsafeFolderError
from ..protocol import errors
from ..protocol.endpoints import describe_endpoint
from .core import OptionError, PlanError
from .record import RecordError

__all__ = ["explain", "CANCELLED_SENTENCE", "CODE_SENTENCES"]

#: the daemon's error codes (SPEC.md §6) in the artist's words
CODE_SENTENCES: dict[str, str] = {
    errors.TOO_LARGE: "This layer or style image is larger than the daemon accepts",
    errors.BAD_PARAMS: "A setting was not accepted",
    errors.UNKNOWN_STYLE: "The daemon lost the style image; try again",
    errors.BUSY: "The daemon is busy with other jobs (its queue is full); try again in a moment",
    errors.AUTH_FAILED: "The daemon refused this plug-in's credentials (token or keys)",
    errors.UNSUPPORTED_VERSION: "The plug-in and the daemon are different versions; "
                                "re-run the installer so they match",
    errors.INTERNAL: "The daemon failed on this job (its log has the details)",
    errors.BAD_HEADER: "The daemon could not read the plug-in's request (a bug, please report it)",
    errors.BAD_FRAME: "The daemon could not read the plug-in's pixels (a bug, please report it)",
    errors.UNKNOWN_KIND: "The daemon does not know this request (update portrait-style)",
    errors.CANCELLED: "Cancelled",
    errors.STOPPING: "The portrait-style daemon was stopped while it worked on this layer",
}

_MAX_DETAIL = 300
#: the artist cancelled (hosts show it for a job that ended CANCELLED)
CANCELLED_SENTENCE = "Cancelled; the image is unchanged."


def _detail(text: str) -> str:
    """The technical detail, on one line, cut short, without a closing full stop."""
    text = " ".join(str(text).split()).rstrip(" .;:")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL - 1] + "…"


def _ended(text: str) -> str:
    """``text`` as a finished sentence (a detail may already end with "?" or "!")."""
    return text if text.endswith(("?", "!", "…")) else text + "."


def explain(exc: BaseException, endpoint: str | None = None) -> str:
    """The sentence for ``exc``; ``endpoint`` names the daemon in reachability errors."""
    from .launcher import DaemonStartError  # launcher imports the client; keep this light

    where = describe_endpoint(endpoint) if endpoint else "the portrait-style daemon"
    if isinstance(exc, UnsafeFolderError):
        return _ended(str(exc)[0].upper() + str(exc)[1:])
    if isinstance(exc, errors.Cancelled):
        return CANCELLED_SENTENCE
    if isinstance(exc, errors.DaemonStopped):
        return ("The portrait-style daemon was stopped while it worked on this layer "
                "('portrait-style stop', a shutdown, or another program ended it). Your image "
                "is unchanged; try again to start a fresh one.")
    if isinstance(exc, errors.DaemonGone):
        return ("The portrait-style daemon crashed: it stopped while working on this layer "
                "without a word (killed, or out of memory; its log may say why). Your image "
                "is unchanged; try again to start a fresh one.")
    if isinstance(exc, errors.DaemonTimeout):
        return (f"{where[0].upper()}{where[1:]} stopped answering in the middle of the job "
                "(no heartbeat: it crashed or hangs). Your image is unchanged; try again.")
    if isinstance(exc, errors.DaemonUnreachable):
        return (f"Could not reach {where}: {_ended(_detail(exc.message))} Check that it is "
                "running (portrait-style status) or that the plug-in's endpoint setting is "
                "right.")
    if isinstance(exc, DaemonStartError):
        return f"The portrait-style daemon could not start: {_detail(str(exc))}"
    if isinstance(exc, errors.MessageTooLarge):
        return f"{CODE_SENTENCES[errors.TOO_LARGE]}: {_detail(exc.message)}"
    if isinstance(exc, errors.ProtocolError):
        sentence = CODE_SENTENCES.get(exc.code, "The daemon refused the job")
        if exc.code == errors.CANCELLED:
            return sentence
        return f"{sentence}: {_detail(exc.message)}"
    if isinstance(exc, OptionError | RecordError | ConfigError):
        return _detail(str(exc))
    if isinstance(exc, PlanError):
        return f"The daemon's result did not fit the layer: {_detail(str(exc))}"
    if isinstance(exc, OSError):
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"Could not use the file{name}: {exc.strerror or _detail(str(exc))}"
    return (f"Unexpected error ({type(exc).__name__}: {_detail(str(exc))}); "
            "this is a bug in portrait-style, please report it")
