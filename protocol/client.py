"""The client every host uses to talk to the daemon (SPEC.md).

Why here and this small: GIMP, Krita and the command-line host all run it,
inside interpreters that may have only pyzmq and msgpack. It imports nothing
else from the project but the protocol, and numpy only when present (without
numpy, pass ``(bytes, (h, w, c))`` or ``Pixels`` and get ``Pixels`` back).

Behaviour a host can rely on:
- ``stylize`` blocks until the result, calling ``on_progress(stage, fraction)``
  as the daemon reports; it polls ``cancel`` (a ``threading.Event``) while
  waiting and, once set, asks the daemon to stop and raises ``Cancelled``.
- No message for ``timeout_s`` seconds (the daemon sends heartbeats while it
  works, so a slow job is fine) raises ``DaemonUnreachable`` (``DaemonTimeout``
  when the daemon had answered before). Once a job is sent, three missed
  heartbeats are enough; a daemon on this machine is also watched by its pid,
  so one that dies mid-job is reported within a second (``DaemonGone``). A
  daemon that is stopped (``portrait-style stop``, SIGTERM) says so first:
  ``DaemonStopped``; the artist's own cancel is ``Cancelled``.
- Images over the daemon's limits are refused before a byte is sent.
- A style already sent to this daemon is referred to by its key only; if the
  daemon forgot it, the request is resent with the pixels automatically.

A client is meant for one thread at a time.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

try:  # an editor's Python may be unable to load pyzmq: then the bridge transport is used
    import zmq
except ImportError:  # pragma: no cover - exercised by forcing the bridge in the tests
    zmq = None  # type: ignore[assignment]

from .bridge import BridgeSocket, wants_bridge
from .constants import PROTOCOL_VERSION, TOKEN_ENV

if TYPE_CHECKING:
    from .curve import CurveClientKeys
from .endpoints import configured_or_default, default_token, is_local_endpoint
from .errors import (
    BAD_FRAME,
    UNSUPPORTED_VERSION,
    AuthFailed,
    Cancelled,
    DaemonError,
    DaemonGone,
    DaemonTimeout,
    DaemonUnreachable,
    MessageTooLarge,
    UnknownStyle,
    WireError,
    daemon_error,
)
from .framing import CLIENT_LIMITS, Limits
from .messages import (
    Cancel,
    Error,
    Hello,
    HelloReply,
    Message,
    Ping,
    Pixels,
    Pong,
    Progress,
    Result,
    Stylize,
    decode,
    encode,
    style_key,
)
from .request import JobParams

__all__ = ["DaemonClient", "StylizeReply", "ProgressFn", "QueuedFn", "process_alive"]

ProgressFn = Callable[[str, float], None]
#: called with the job's place in the daemon's queue (1 = next)
QueuedFn = Callable[[int], None]

#: after a cancel, how long to wait for the daemon to confirm before giving up on it
CANCEL_GRACE_S = 2.0
#: how often the cancel event and a local daemon's pid are checked while waiting
CANCEL_POLL_S = 0.05
#: a job's silence is an error after this many missed heartbeats
MISSED_HEARTBEATS = 3
#: when a local daemon's pid is gone, how long to wait for its last word (its
#: "stopping" may still be on the way) before calling it a crash (ms granularity)
LAST_WORD_S = 0.2


#: zmq.POLLIN, also understood by BridgeSocket.poll
_POLLIN = 1


def _bridge_python() -> str:
    """The product's interpreter (from the config file) runs the bridge helper."""
    from ..config import load_config

    command = load_config().daemon_command
    if not command:
        raise DaemonUnreachable("pyzmq cannot load in this editor's Python, and the config file "
                                "names no portrait-style installation to bridge through: run "
                                "the installer")
    return command[0]


def _numpy_available() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (signal 0 probes, sends nothing).

    A process that died but was not yet reaped by its parent (a daemon the
    editor itself started) still answers signal 0: on Linux its state in
    ``/proc`` tells the truth ("Z", a zombie, is dead for us).
    """
    if os.name != "posix":
        return True  # no cheap probe: rely on heartbeats
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc (macOS): signal 0 below
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


@dataclass
class StylizeReply:
    """The layers (numpy arrays, or ``Pixels`` without numpy) and the job's info.

    Arrays are H×W×C uint8 for images and H×W for the mask; they view the
    received message in place (no copy was made; older pyzmq makes them
    read-only, so ``.copy()`` one before writing into it).
    """

    layers: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


class DaemonClient:
    """A connection to one daemon; use as a context manager or call ``close()``.

    endpoint: where the daemon listens (default: ``$PORTRAIT_STYLE_ENDPOINT``,
        else this user's local daemon, ``endpoints.default_endpoint``).
    token: the shared secret (default: ``$PORTRAIT_STYLE_TOKEN`` when set).
    timeout_s: inactivity timeout of every call (no message for that long).
    as_arrays: return numpy arrays (default: when numpy is installed).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 10.0,
        token: str | None = None,
        as_arrays: bool | None = None,
        context: Any = None,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint or configured_or_default()
        self.timeout_s = float(timeout_s)
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV)
                                                      or default_token(self.endpoint))
        self.as_arrays = _numpy_available() if as_arrays is None else as_arrays
        self._bridge = wants_bridge(zmq is not None)
        self._ctx = None if self._bridge else (context or zmq.Context.instance())
        #: CURVE keys for a daemon that requires them (protocol/curve.py); None: plaintext
        self.curve = curve
        self._socket: Any = None  # a zmq DEALER, or a BridgeSocket
        self._hello: HelloReply | None = None
        self._known_styles: set[str] = set()
        self._prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)
        self._connect()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection; anything unsent is discarded."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _connect(self) -> None:
        if self._bridge:
            self._socket = BridgeSocket.open(self.endpoint, _bridge_python())
            return
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(sock)  # before connect: the handshake authenticates us
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise DaemonUnreachable(f"cannot connect to {self.endpoint!r}: {exc}") from exc
        self._socket = sock

    def _reset(self) -> None:
        """A fresh socket after a timeout, so stale queued messages are dropped."""
        self.close()
        self._hello = None
        self._connect()

    # ------------------------------------------------------------------ requests

    def hello(self, *, refresh: bool = False) -> dict[str, Any]:
        """The daemon's ``hello_reply`` as a dict (engines, device, limits, auth…)."""
        return self._hello_reply(refresh=refresh).as_dict()

    def ping(self) -> float:
        """Round-trip time of a ``ping`` in seconds."""
        start = time.perf_counter()
        request_id = self._new_id()
        self._send(Ping(id=request_id))
        self._wait(request_id, Pong)
        return time.perf_counter() - start

    def cancel(self, request_id: str) -> None:
        """Ask the daemon to cancel one of our requests (no reply; SPEC.md §5 cancel)."""
        self._send(Cancel(id=self._new_id(), target=request_id, token=self.token))

    def stylize(
        self,
        content: Any,
        style: Any,
        params: JobParams | None = None,
        *,
        mask: Any = None,
        on_progress: ProgressFn | None = None,
        on_queued: QueuedFn | None = None,
        cancel: threading.Event | None = None,
        timeout_s: float | None = None,
        **fields: Any,
    ) -> StylizeReply:
        """Stylize ``content`` with ``style``; see the module docstring for behaviour.

        content / style / mask: numpy uint8 arrays (H×W×3/4; mask H×W), ``Pixels``
        or ``(buffer, shape)``. ``style`` may also be a style key (str) of a style
        this daemon already has. ``params`` (or, for short, its fields as
        keywords: ``outputs=["mask"]``) says what to compute; it is checked here
        by the same function the daemon uses.
        """
        if params is None:
            params = JobParams(**{k: tuple(v) if k == "outputs" else v
                                  for k, v in fields.items()})
        elif fields:
            raise TypeError("pass either params or its fields as keywords, not both")
        content_px = Pixels.coerce(content)
        mask_px = None if mask is None else Pixels.coerce(mask)
        if isinstance(style, str):
            style_px, key = None, style
        else:
            style_px = Pixels.coerce(style)
            key = style_key(style_px)
        request = Stylize(id="", token=self.token, content=content_px, style=style_px,
                          style_key=key, mask=mask_px, params=params.check())
        hello = self._hello_reply(timeout_s=timeout_s)
        self._check_request(request, hello)
        send_style = style_px is not None and key not in self._known_styles
        callbacks = (on_progress, on_queued)
        try:
            result = self._run_stylize(request, send_style, callbacks, cancel, timeout_s)
        except UnknownStyle:
            self._known_styles.discard(key)
            if style_px is None or send_style:
                raise
            result = self._run_stylize(request, True, callbacks, cancel, timeout_s)
        self._known_styles.add(key)
        layers: dict[str, Any] = {
            name: pixels.to_array() if self.as_arrays else pixels
            for name, pixels in result.layers.items()}
        return StylizeReply(layers=layers, info=result.info, request_id=result.id)

    # ------------------------------------------------------------------ internals

    def _run_stylize(self, request: Stylize, send_style: bool,
                     callbacks: tuple[ProgressFn | None, QueuedFn | None],
                     cancel: threading.Event | None, timeout_s: float | None) -> Result:
        request.id = self._new_id()
        style = request.style
        if not send_style:
            request.style = None
        try:
            self._send(request)
        finally:
            request.style = style
        reply = self._wait(request.id, Result, on_progress=callbacks[0],
                           on_queued=callbacks[1], cancel=cancel, timeout_s=timeout_s,
                           job=True)
        assert isinstance(reply, Result)
        return reply

    def _hello_reply(self, *, refresh: bool = False,
                     timeout_s: float | None = None) -> HelloReply:
        if self._hello is None or refresh:
            request_id = self._new_id()
            self._send(Hello(id=request_id, token=self.token))
            reply = self._wait(request_id, HelloReply, timeout_s=timeout_s)
            assert isinstance(reply, HelloReply)
            if reply.protocol != PROTOCOL_VERSION:
                raise DaemonError(UNSUPPORTED_VERSION,
                                  f"the daemon speaks protocol {reply.protocol}, this plug-in "
                                  f"{PROTOCOL_VERSION}: update one of them")
            self._hello = reply
        return self._hello

    def _check_request(self, request: Stylize, hello: HelloReply) -> None:
        """Refuse locally what the daemon would refuse (or drop, when over MAXMSGSIZE)."""
        if hello.auth_required and not hello.auth_ok:
            raise AuthFailed("auth_failed", (
                "this daemon requires a token" if not self.token else
                "the daemon did not accept our token") + f": set {TOKEN_ENV} or the plug-in's "
                "token setting to the daemon's")
        limits = Limits.from_dict(hello.limits)
        content = request.content
        assert content is not None
        if content.channels not in (3, 4):
            raise WireError(f"content must be RGB or RGBA, got {content.channels} channel(s)",
                            code=BAD_FRAME, field="content")
        if request.style is not None and request.style.channels not in (3, 4):
            raise WireError(f"style must be RGB or RGBA, got {request.style.channels} "
                            "channel(s)", code=BAD_FRAME, field="style")
        if request.mask is not None and (request.mask.channels != 1 or request.mask.shape[:2]
                                         != content.shape[:2]):
            raise WireError(f"mask must be one channel {content.width}×{content.height}, got "
                            f"{request.mask.shape}", code=BAD_FRAME, field="mask")
        checks = [("layer", content, limits.max_pixels), ("mask", request.mask,
                                                           limits.max_pixels),
                  ("style", request.style, limits.max_style_pixels)]
        for what, pixels, max_pixels in checks:
            if pixels is None:
                continue
            count = pixels.width * pixels.height
            if count > max_pixels:
                raise MessageTooLarge(
                    f"the {what} is {pixels.width}×{pixels.height} = {count / 1e6:.1f} MP; "
                    f"this daemon accepts at most {max_pixels / 1e6:.1f} MP (its --max-pixels)",
                    field=what)
            if pixels.nbytes > limits.max_message_bytes:
                raise MessageTooLarge(
                    f"the {what} is {pixels.nbytes} bytes; this daemon accepts frames of at "
                    f"most {limits.max_message_bytes} bytes", field=what)
        frames = len(request.frames())
        if frames > limits.max_frames:
            raise MessageTooLarge(f"{frames} frames, the daemon accepts {limits.max_frames}")

    def _new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def _send(self, message: Message) -> None:
        if self._socket is None:
            raise DaemonUnreachable("the client is closed")
        # copy=False: the pixels go to ZeroMQ in place (buffers below pyzmq's
        # copy threshold are copied anyway, which is cheaper for them)
        self._socket.send_multipart(encode(message), copy=False)

    def _wait(self, request_id: str, expected: type[Message], *,
              on_progress: ProgressFn | None = None, on_queued: QueuedFn | None = None,
              cancel: threading.Event | None = None, timeout_s: float | None = None,
              job: bool = False) -> Message:
        """Receive until the reply to ``request_id``; raise its error, or on silence.

        ``job``: the request is a job the daemon heartbeats for, so a silence of
        ``MISSED_HEARTBEATS`` heartbeats is already an error, and a local
        daemon's process is watched.
        """
        assert self._socket is not None
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        if job and self._hello is not None and self._hello.heartbeat_s > 0:
            timeout = min(timeout, MISSED_HEARTBEATS * self._hello.heartbeat_s + 0.5)
        watch_pid = self._local_pid() if job else None
        deadline = time.monotonic() + timeout
        heard = self._hello is not None
        cancel_sent = False
        while True:
            if cancel is not None and cancel.is_set() and not cancel_sent:
                self.cancel(request_id)
                cancel_sent = True
                deadline = min(deadline, time.monotonic() + CANCEL_GRACE_S)
            if (watch_pid is not None and not process_alive(watch_pid)
                    and not self._socket.poll(int(LAST_WORD_S * 1000), _POLLIN)):
                # gone, and nothing it sent is still on the way: it died without a word
                # (a daemon that is stopped says so first: DaemonStopped)
                self._reset()
                raise DaemonGone(f"the daemon (pid {watch_pid}) stopped while working on "
                                 "this job without a word (crashed or killed); the next try "
                                 "starts a fresh one")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reset()
                if cancel_sent:
                    raise Cancelled("cancelled", "cancelled (the daemon did not confirm in "
                                    f"{CANCEL_GRACE_S:.0f} s)")
                if heard:
                    raise DaemonTimeout(f"the daemon at {self.endpoint} went silent for "
                                        f"{timeout:.1f} s")
                raise DaemonUnreachable(f"no daemon answered at {self.endpoint} within "
                                        f"{timeout:.1f} s: is it running?")
            polling = (cancel is not None and not cancel_sent) or watch_pid is not None
            wait_s = min(remaining, CANCEL_POLL_S) if polling else remaining
            if not self._socket.poll(max(1, int(wait_s * 1000)), _POLLIN):
                continue
            message = decode(self._socket.recv_multipart(copy=False), CLIENT_LIMITS)
            if message.id is not None and message.id != request_id:
                continue  # a late reply to an earlier request (timed out or cancelled)
            heard = True
            if not cancel_sent:
                deadline = time.monotonic() + timeout
            if isinstance(message, Progress):
                if message.heartbeat:
                    continue
                if message.position is not None and on_queued is not None:
                    on_queued(message.position)
                elif on_progress is not None:
                    on_progress(message.stage, message.fraction)
            elif isinstance(message, Error):
                raise daemon_error(message.code, message.message, field=message.field)
            elif cancel_sent:
                raise Cancelled("cancelled", "cancelled (the job had already finished)")
            elif isinstance(message, expected):
                return message
            else:
                raise WireError(f"expected {expected.KIND}, the daemon sent {message.KIND}",
                                code=BAD_FRAME)

    def _local_pid(self) -> int | None:
        """The daemon's pid when it runs on this machine and said so in ``hello``."""
        hello = self._hello
        if hello is None or not hello.pid or not is_local_endpoint(self.endpoint):
            return None
        if hello.host and hello.host != socket.gethostname():
            return None  # loopback into a container or VM: not our process table
        if not process_alive(hello.pid):
            return None  # it just answered, so it runs in another PID namespace (chroot, Flatpak)
        return hello.pid
