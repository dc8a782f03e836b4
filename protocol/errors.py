"""Typed errors of the wire protocol and the stable error codes (SPEC.md §6).

Why typed: a host must tell "the daemon is not running" (offer to start it)
from "the daemon refused this image" (show the message) from "you cancelled"
(say nothing). Every exception carries the stable ``code`` so a host can also
switch on strings it receives from a newer daemon.
"""

from __future__ import annotations

__all__ = [
    "ERROR_CODES",
    "AuthFailed",
    "Cancelled",
    "DaemonError",
    "DaemonGone",
    "DaemonStopped",
    "DaemonTimeout",
    "DaemonUnreachable",
    "MessageTooLarge",
    "ProtocolError",
    "UnknownStyle",
    "WireError",
    "daemon_error",
]

BAD_HEADER = "bad_header"
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_KIND = "unknown_kind"
BAD_FRAME = "bad_frame"
TOO_LARGE = "too_large"
UNKNOWN_STYLE = "unknown_style"
BAD_PARAMS = "bad_params"
AUTH_FAILED = "auth_failed"
CANCELLED = "cancelled"
BUSY = "busy"
INTERNAL = "internal"
#: the daemon is shutting down (``portrait-style stop``, SIGTERM): every job it holds
#: ends with this code, so a host can tell it from the artist's own cancel
STOPPING = "stopping"
#: client-side only: no answer in time (never sent on the wire)
UNREACHABLE = "unreachable"

#: every code a daemon may send in ``error.code``
ERROR_CODES: frozenset[str] = frozenset({
    BAD_HEADER, UNSUPPORTED_VERSION, UNKNOWN_KIND, BAD_FRAME, TOO_LARGE,
    UNKNOWN_STYLE, BAD_PARAMS, AUTH_FAILED, CANCELLED, BUSY, INTERNAL, STOPPING,
})


class ProtocolError(Exception):
    """Base of every error this package raises; ``code`` is a stable string."""

    code: str = INTERNAL

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        #: the header field or knob at fault, when known
        self.field = field

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class WireError(ProtocolError):
    """A message that breaks the spec, found while decoding it locally.

    The daemon turns these into ``error`` replies with the same code; the
    client raises them when a daemon's reply is malformed.
    """

    code = BAD_HEADER
    #: the ``id`` of the offending message when it could be read, so the
    #: daemon's error reply reaches the request that caused it
    request_id: str | None = None

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        # a refusal may quote what the sender sent (a knob name, a value): clip it,
        # so neither the reply nor the daemon's log grows at the sender's pace
        super().__init__(_clip(message, MAX_REFUSAL_CHARS), code=code,
                         field=None if field is None else _clip(field, MAX_FIELD_CHARS))


#: longest ``message`` and ``field`` of a refusal (characters)
MAX_REFUSAL_CHARS = 300
MAX_FIELD_CHARS = 120


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class MessageTooLarge(WireError):
    """A frame or image over the limits: refused before sending or reading it."""

    code = TOO_LARGE


class DaemonError(ProtocolError):
    """The daemon answered with ``error{code, message}``."""

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(message, code=code, field=field)


class Cancelled(DaemonError):
    """The job ended because we cancelled it (a daemon shutdown is ``DaemonStopped``)."""


class DaemonStopped(DaemonError):
    """The daemon was asked to stop while it held our job, and said so before it exited."""


class AuthFailed(DaemonError):
    """The daemon requires a token and ours is missing or wrong."""


class UnknownStyle(DaemonError):
    """The daemon does not have the style we referred to by key only."""


class DaemonUnreachable(ProtocolError):
    """No daemon answered: not running, wrong endpoint, or it went away."""

    code = UNREACHABLE


class DaemonTimeout(DaemonUnreachable):
    """A daemon was talking to us and then went silent for longer than the timeout."""


class DaemonGone(DaemonUnreachable):
    """The local daemon's process ended while it had our job without a word (a crash, kill -9).

    A daemon that is stopped properly says so first (``DaemonStopped``).
    """


_BY_CODE: dict[str, type[DaemonError]] = {
    CANCELLED: Cancelled,
    STOPPING: DaemonStopped,
    AUTH_FAILED: AuthFailed,
    UNKNOWN_STYLE: UnknownStyle,
}


def daemon_error(code: str, message: str, *, field: str | None = None) -> DaemonError:
    """Build the most specific exception for an ``error`` reply."""
    return _BY_CODE.get(code, DaemonError)(code, message, field=field)
