"""A transport with no compiled code on the editor's side: ZeroMQ through a helper process.

Why: some editors' Pythons cannot load any compiled extension from PyPI —
GIMP for Windows runs MSYS2's Python (PyPI's win_amd64 wheels do not load in
it), and GIMP for macOS on arm64 signs its Python so that other developers'
libraries are refused (NOTES-hosts). msgpack falls back to pure Python by
itself; pyzmq cannot. So when ``zmq`` does not import, the client starts
``portrait-style bridge ENDPOINT`` with the *product's* interpreter (the
config file's daemon command), which does speak ZeroMQ, and exchanges the very
same multipart messages with it over its stdin/stdout pipes.

Pipe format, both directions: a message is ``>I`` frame count, then per frame
``>Q`` length and the bytes. ``BridgeSocket`` offers the four socket methods
the client uses (send_multipart, recv_multipart, poll, close); the helper side
is ``serve_bridge``. Standard library only on the editor's side.
"""

from __future__ import annotations

import os
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from .errors import DaemonUnreachable

__all__ = ["BridgeSocket", "TRANSPORT_ENV", "bridge_unavailable", "serve_bridge",
           "wants_bridge"]

#: "bridge" forces this transport (tests on Linux, or a user whose pyzmq misbehaves)
TRANSPORT_ENV = "PORTRAIT_STYLE_TRANSPORT"
MAX_FRAMES = 16
MAX_FRAME_BYTES = 1 << 34  # far above any layer; guards against a corrupt length
_COUNT = struct.Struct(">I")
_LENGTH = struct.Struct(">Q")


def wants_bridge(zmq_available: bool) -> bool:
    """Use the bridge when pyzmq is missing, or when the environment asks for it."""
    return os.environ.get(TRANSPORT_ENV, "").lower() == "bridge" or not zmq_available


def bridge_unavailable(python: str, exc: OSError) -> str:
    """Why neither pyzmq nor the bridge works in this editor, and the one fix."""
    from .. import sandbox

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    app = sandbox.flatpak_app()
    where = (f"{sandbox.app_name(app)} runs in a Flatpak sandbox ({app}), which cannot run "
             if app else "this editor cannot run ")
    return (f"pyzmq does not load in this editor's Python {version}, and {where}"
            f"portrait-style's bridge helper {python} ({exc.strerror or exc}). Install the "
            f"plug-in for this Python (on the host): portrait-style install-plugin gimp|krita "
            f"--python {version}")


def write_message(stream: IO[bytes], frames: Sequence[Any]) -> None:
    stream.write(_COUNT.pack(len(frames)))
    for frame in frames:
        view = memoryview(getattr(frame, "buffer", frame)).cast("B")
        stream.write(_LENGTH.pack(len(view)))
        stream.write(view)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the bridge closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> list[bytes]:
    (count,) = _COUNT.unpack(_read_exact(stream, _COUNT.size))
    if not 1 <= count <= MAX_FRAMES:
        raise ValueError(f"bridge message with {count} frames")
    frames = []
    for _ in range(count):
        (length,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
        if length > MAX_FRAME_BYTES:
            raise ValueError(f"bridge frame of {length} bytes")
        frames.append(_read_exact(stream, length))
    return frames


class BridgeSocket:
    """A DEALER-like socket whose ZeroMQ end lives in a helper process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._inbox: queue.Queue[list[bytes] | BaseException] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, name="portrait-style-bridge", daemon=True).start()

    @classmethod
    def open(cls, endpoint: str, python: str) -> BridgeSocket:
        """Start the helper with the product's interpreter ``python``.

        When that interpreter cannot be run from here (the editor sits in a
        sandbox, container or chroot that does not see the product's
        environment) the artist is told so in words, with the fix.
        """
        try:
            proc = subprocess.Popen([python, "-m", "portrait_style", "bridge", endpoint],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, close_fds=True)
        except OSError as exc:
            raise DaemonUnreachable(bridge_unavailable(python, exc)) from None
        return cls(proc)

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                self._inbox.put(read_message(self._proc.stdout))
        except (EOFError, OSError, ValueError) as exc:
            self._inbox.put(exc)

    def send_multipart(self, frames: Sequence[Any], copy: bool = False) -> None:
        assert self._proc.stdin is not None
        with self._lock:
            try:
                write_message(self._proc.stdin, frames)
            except (BrokenPipeError, OSError) as exc:
                raise ConnectionError(f"the portrait-style bridge process ended: {exc}") from None

    def poll(self, timeout_ms: int, flags: int = 1) -> int:
        """1 when a message is waiting (within ``timeout_ms``), else 0."""
        if not self._inbox.empty():
            return 1
        try:
            item = self._inbox.get(timeout=max(0.0, timeout_ms / 1000))
        except queue.Empty:
            return 0
        self._inbox.queue.appendleft(item)  # peeked: put it back at the front
        return 1

    def recv_multipart(self, copy: bool = False) -> list[bytes]:
        item = self._inbox.get()
        if isinstance(item, BaseException):
            self._inbox.put(item)  # every later receive fails the same way
            raise ConnectionError(f"the portrait-style bridge process ended ({item})")
        return item

    def close(self, linger: int = 0) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                self._proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()


def serve_bridge(endpoint: str) -> int:
    """The helper: relay pipe messages to a DEALER on ``endpoint`` and back (product env).

    ZeroMQ sockets are not thread-safe, so one thread owns the socket: it sends
    what the stdin reader queued and writes every reply to stdout.
    """
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    outgoing: queue.Queue[list[bytes]] = queue.Queue()
    done = threading.Event()

    def relay() -> None:
        while not done.is_set() or not outgoing.empty():
            while not outgoing.empty():
                sock.send_multipart(outgoing.get(), copy=False)
            if sock.poll(10):
                write_message(sys.stdout.buffer, sock.recv_multipart(copy=False))

    worker = threading.Thread(target=relay, daemon=True)
    worker.start()
    try:
        while True:
            outgoing.put(read_message(sys.stdin.buffer))
    except (EOFError, ValueError):
        pass
    finally:
        done.set()
        worker.join(timeout=1)
        sock.close(0)
    return 0


def add_parser(subparsers: Any) -> Any:
    """``portrait-style bridge ENDPOINT`` (started by plug-ins that cannot load pyzmq)."""
    import argparse

    p = subparsers.add_parser("bridge", help=argparse.SUPPRESS,
                              description="Relay a plug-in's messages between stdin/stdout "
                                          "and the daemon (for editors without pyzmq).")
    p.add_argument("endpoint")
    p.set_defaults(func=lambda args: serve_bridge(args.endpoint))
    return p
