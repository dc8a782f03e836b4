"""The warm daemon's ZeroMQ server: one socket loop, one job worker (SPEC.md).

Why this shape: the socket loop must never block on a job, or ``ping`` and
``cancel`` would wait behind a 10-second stylize. So the loop only decodes,
checks and routes; jobs run one at a time (one GPU) on a worker thread fed by a
FIFO queue. ZeroMQ sockets are not thread-safe, so the worker never touches the
ROUTER socket: it puts progress and results on a plain queue and rings an
inproc socket to wake the loop, which does all the sending.

Pixels stay where ZeroMQ received them: the job's arrays are read-only numpy
views of the received frames, and result arrays are handed to ZeroMQ without a
copy.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from .. import __version__
from ..paths import installation
from ..protocol import errors
from ..protocol.constants import PROTOCOL_VERSION, REGION_NAMES
from ..protocol.endpoints import default_endpoint, ipc_path
from ..protocol.errors import ProtocolError, WireError
from ..protocol.framing import Limits
from ..protocol.messages import (
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
from .jobspec import JobCancelled, JobContext, RegionSettings, StylizeJob, StylizeResult
from .peer_limits import PeerLimits, apply_peer_limits
from .refusal_log import RefusalLog
from .regions import resolve_regions
from .security import CurveGate, ServerKeys
from .socket_lock import SocketLock

__all__ = ["DaemonServer", "Pipeline", "check_bind_allowed", "is_loopback_endpoint"]

log = logging.getLogger(__name__)


class Pipeline(Protocol):
    """What the server needs from the models (daemon/pipeline.py, daemon/noop.py)."""

    def run(self, job: StylizeJob, ctx: JobContext) -> StylizeResult: ...

    def describe(self) -> dict[str, Any]: ...


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and TCP on a loopback address."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0].strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: may be reachable from outside


def check_bind_allowed(endpoint: str, curve: ServerKeys | None = None) -> None:
    """Refuse to expose the daemon beyond this machine without CURVE (daemon/security.py)."""
    from .security import check_bind_allowed as check

    check(endpoint, curve)


@dataclass
class _Job:
    """A stylize request between acceptance and its final reply."""

    peer: bytes
    message: Stylize
    style: np.ndarray
    verify_key: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "queued"
    fraction: float = 0.0
    last_sent: float = field(default_factory=time.monotonic)
    accepted: float = field(default_factory=time.monotonic)
    started: float = 0.0

    @property
    def key(self) -> tuple[bytes, str]:
        return (self.peer, self.message.id)


class _StyleCache:
    """Recently used style pixels by style_key, within a byte budget.

    The pipeline caches the style *encodings*; this keeps the pixels so a
    request that sends only the key still yields a complete ``StylizeJob``.
    """

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            style = self._items.get(key)
            if style is not None:
                self._items.move_to_end(key)
            return style

    def put(self, key: str, style: np.ndarray) -> None:
        # a compact copy: the array may be a view into a received frame (4 channels
        # of which we use 3, rows padded to any stride), which would otherwise stay
        # alive uncounted behind a few counted bytes
        style = np.array(style, order="C", copy=True)
        with self._lock:
            self._items[key] = style
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(
                    a.nbytes for a in self._items.values()) > self._max_bytes:
                self._items.popitem(last=False)


class DaemonServer:
    """Serve ``pipeline`` on a ZeroMQ ROUTER socket until ``stop()`` or a signal.

    Use: ``server = DaemonServer(pipeline, endpoint=...); server.bind();
    server.serve_forever()``; ``stop()`` may be called from any thread or a
    signal handler. ``notes`` are shown to clients in ``hello`` (e.g. why the
    embedded engine is used).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        limits: Limits | None = None,
        notes: Sequence[str] = (),
        heartbeat_s: float = 2.0,
        max_queue: int = 8,
        style_cache_bytes: int = 256 << 20,
        shutdown_grace_s: float = 10.0,
        context: zmq.Context | None = None,
        curve: ServerKeys | None = None,
        peer_limits: PeerLimits | None = None,
    ) -> None:
        endpoint = endpoint or default_endpoint()
        check_bind_allowed(endpoint, curve)
        self.curve = curve
        self.peer_limits = peer_limits or PeerLimits()
        self._gate: CurveGate | None = None
        self._refusals = RefusalLog(log)
        # results handed to ZeroMQ but not yet on the wire, per peer (SPEC.md §7)
        self._in_transit: dict[bytes, list[zmq.MessageTracker]] = {}
        self.pipeline = pipeline
        self._started = time.monotonic()
        self._socket_lock: SocketLock | None = None
        self.requested_endpoint = endpoint
        self.endpoint: str | None = None
        self.limits = limits or Limits()
        self.notes = list(notes)
        self.heartbeat_s = heartbeat_s
        self.max_queue = max_queue
        self.shutdown_grace_s = shutdown_grace_s
        self._token = token.encode() if token else None
        self._styles = _StyleCache(style_cache_bytes)
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._router: zmq.Socket | None = None
        self._wake_pull: zmq.Socket | None = None
        self._wake_address = f"inproc://portrait-style-wake-{id(self):x}"
        self._stop = threading.Event()
        # job state shared with the worker; the lock guards _waiting and _running
        self._lock = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._running: _Job | None = None
        self._outbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._wake_lock = threading.Lock()
        self._wake_push: zmq.Socket | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    def bind(self) -> str:
        """Bind the socket (and the worker's wake-up line); return the real endpoint."""
        path = ipc_path(self.requested_endpoint)
        if path is not None and self._socket_lock is None:
            # ZeroMQ replaces an existing socket file when binding: without this
            # lock a second daemon would silently take the first one's clients
            self._socket_lock = SocketLock.acquire(path)
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 1000)
        apply_peer_limits(router, self.limits, self.peer_limits)
        if self.curve is not None:
            self._gate = CurveGate(self._ctx, self.curve)
            self._gate.start()  # before bind: no handshake may pass unauthenticated
            self.curve.apply(router)
        try:
            router.bind(self.requested_endpoint)
        except zmq.ZMQError as exc:
            router.close(linger=0)
            if self._gate is not None:
                self._gate.stop()
                self._gate = None
            hint = (" (is a daemon already running there?)"
                    if exc.errno == zmq.EADDRINUSE else "")
            raise OSError(f"cannot bind {self.requested_endpoint}: {exc}{hint}") from exc
        self._router = router
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        _restrict_ipc_file(self.endpoint)
        self._wake_pull = self._ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_address)
        self._worker = threading.Thread(target=self._work, name="portrait-style-worker",
                                        daemon=True)
        self._worker.start()
        return self.endpoint

    def stop(self) -> None:
        """Ask the loop to finish (thread- and signal-safe); it exits within ~0.2 s."""
        self._stop.set()

    def serve_forever(self) -> None:
        """Answer messages until ``stop()``, then shut down cleanly (SPEC.md §8)."""
        if self._router is None:
            self.bind()
        assert self._router is not None and self._wake_pull is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                try:
                    events = dict(poller.poll(timeout=200))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EINTR:
                        continue
                    raise
                try:
                    if self._wake_pull in events:
                        self._drain_wake()
                    if self._router in events:
                        self._drain_router()
                    self._send_heartbeats()
                except Exception:  # never let one message or job take the daemon down
                    log.exception("internal error in the socket loop; still serving")
        finally:
            self._shutdown()

    def close(self) -> None:
        """Release sockets (after ``serve_forever`` returned, or if it never ran)."""
        for sock in (self._router, self._wake_pull):
            if sock is not None and not sock.closed:
                sock.close()
        self._router = self._wake_pull = None
        if self._gate is not None:
            self._gate.stop()
            self._gate = None
        worker_stuck = self._worker is not None and self._worker.is_alive()
        if self._own_context and not worker_stuck:
            self._ctx.term()  # would wait forever on a stuck worker's socket
        if self._socket_lock is not None:
            _remove_ipc_file(self.endpoint or self.requested_endpoint)
            self._socket_lock.release()
            self._socket_lock = None

    # ------------------------------------------------------------------ socket loop

    def _drain_router(self) -> None:
        """Handle every message already received (bounded, so heartbeats still go out)."""
        assert self._router is not None
        for _ in range(256):
            try:
                parts = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = parts[0].bytes
            try:
                self._handle(peer, parts[1:])
            except WireError as err:
                self._refusals.refused("refused message from peer %s: %s", peer.hex()[:16], err)
                self._send(peer, Error(id=err.request_id, code=err.code, message=err.message,
                                       field=err.field))
            except Exception:
                log.exception("internal error while handling a message")
                self._send(peer, Error(id=None, code=errors.INTERNAL,
                                       message="internal error in the daemon; see its log"))

    def _handle(self, peer: bytes, frames: list[zmq.Frame]) -> None:
        message = decode(frames, self.limits)
        try:
            self._dispatch(peer, message)
        except WireError as err:
            if err.request_id is None:
                err.request_id = message.id
            raise

    def _dispatch(self, peer: bytes, message: Message) -> None:
        if isinstance(message, Hello):
            self._send(peer, self._hello_reply(message))
        elif isinstance(message, Ping):
            self._send(peer, Pong(id=message.id))
        elif isinstance(message, Stylize):
            self._require_token(message)
            if self._in_flight(peer, message.id):
                # SPEC.md §5 "Request ids": the first request keeps the id and its one
                # final message; a reply to the second would be a second final for it
                self._refusals.refused("dropped stylize %s from peer %s: id already in "
                                       "flight", message.id, peer.hex()[:16])
                return
            self._accept(peer, message)
        elif isinstance(message, Cancel):
            self._require_token(message)
            self._cancel(peer, message.target)
        else:
            raise WireError(f"{message.KIND!r} is sent by daemons, not to them",
                            code=errors.UNKNOWN_KIND, field="kind")

    def _in_flight(self, peer: bytes, request_id: str) -> bool:
        with self._lock:
            jobs = [*self._waiting, *([self._running] if self._running else [])]
        return any(job.key == (peer, request_id) for job in jobs)

    def _forget_peer(self, peer: bytes) -> None:
        """The peer is gone: drop its queued jobs, stop its running one (no one to tell)."""
        with self._lock:
            dropped = [job for job in self._waiting if job.peer == peer]
            for job in dropped:
                self._waiting.remove(job)
            running = self._running if (self._running is not None
                                        and self._running.peer == peer) else None
            if running is not None:
                running.cancel.set()
        if dropped or running is not None:
            log.info("peer %s disconnected: %d queued job(s) dropped%s", peer.hex()[:16],
                     len(dropped), ", its running job cancelled" if running else "")
        if dropped:
            self._announce_positions()

    def _require_token(self, message: Message) -> None:
        if not self._authorized(message):
            raise WireError("this daemon requires a token: set PORTRAIT_STYLE_TOKEN or the "
                            "plug-in's token setting to the daemon's", code=errors.AUTH_FAILED,
                            field="token")

    def _authorized(self, message: Message) -> bool:
        if self._token is None:
            return True
        offered = (message.token or "").encode()
        return hmac.compare_digest(offered, self._token)

    def _hello_reply(self, message: Hello) -> HelloReply:
        described = _plain(self._describe())
        engine = described.get("engine")
        engine_name = engine.get("name") if isinstance(engine, dict) else engine
        segmenter = described.get("segmenter")
        segmenter_name = segmenter.get("name") if isinstance(segmenter, dict) else segmenter
        available = described.get("available_engines") or [engine_name]
        return HelloReply(
            id=message.id, protocol=PROTOCOL_VERSION, daemon_version=__version__,
            engines={"active": engine_name or "unknown", "available": list(available),
                     "notes": list(self.notes)},
            segmenter=segmenter_name, device=str(described.get("device", "")),
            limits=self.limits.to_dict(), heartbeat_s=self.heartbeat_s,
            auth_required=self._token is not None, auth_ok=self._authorized(message),
            pipeline=described, pid=os.getpid(), host=socket.gethostname(),
            installation=installation(), uptime_s=round(time.monotonic() - self._started, 3),
            queue=len(self._waiting), running=int(self._running is not None),
        )

    def _describe(self) -> dict[str, Any]:
        try:
            return dict(self.pipeline.describe())
        except Exception:
            log.exception("pipeline.describe() failed")
            return {}

    def _accept(self, peer: bytes, message: Stylize) -> None:
        """Queue a checked stylize request, or refuse it at once."""
        with self._lock:
            in_flight = [*self._waiting, *([self._running] if self._running else [])]
            if any(job.key == (peer, message.id) for job in in_flight):
                raise WireError(f"request id {message.id!r} is already in flight",
                                code=errors.BAD_HEADER, field="id")
            if len(self._waiting) >= self.max_queue:
                raise WireError(f"the daemon's queue is full ({self.max_queue} jobs); try "
                                "again shortly", code=errors.BUSY)
        if message.style is not None:
            assert message.style is not None
            style = message.style.to_array()[:, :, :3]
        else:
            cached = self._styles.get(message.style_key or "")
            if cached is None:
                raise WireError("the daemon does not have this style; send its pixels",
                                code=errors.UNKNOWN_STYLE, field="style_key")
            style = cached
        job = _Job(peer=peer, message=message, style=style,
                   verify_key=message.style is not None)
        with self._lock:
            self._waiting.append(job)
            position = len(self._waiting) if self._running is not None else 0
            self._lock.notify_all()
        log.info("job %s from %s queued: %dx%d, outputs %s", message.id, peer.hex(),
                 message.content.width if message.content else 0,
                 message.content.height if message.content else 0,
                 ",".join(message.params.outputs))
        if position:
            self._send_progress(job, position=position)

    def _cancel(self, peer: bytes, target: str) -> None:
        with self._lock:
            waiting = next((j for j in self._waiting if j.key == (peer, target)), None)
            if waiting is not None:
                self._waiting.remove(waiting)
            running = self._running if (self._running is not None
                                        and self._running.key == (peer, target)) else None
            if running is not None:
                running.cancel.set()
        if waiting is not None:
            log.info("job %s cancelled while queued", target)
            self._send(peer, Error(id=target, code=errors.CANCELLED,
                                   message="cancelled before it started"))
            self._announce_positions()
        elif running is not None:
            log.info("job %s: cancel requested while running", target)

    def _announce_positions(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for position, job in enumerate(waiting, start=1):
            self._send_progress(job, position=position)

    def _send_progress(self, job: _Job, *, position: int | None = None,
                       heartbeat: bool = False) -> None:
        self._send(job.peer, Progress(id=job.message.id, stage=job.stage, fraction=job.fraction,
                                      position=position if job.stage == "queued" else None,
                                      heartbeat=heartbeat))
        job.last_sent = time.monotonic()

    def _send_heartbeats(self) -> None:
        now = time.monotonic()
        with self._lock:
            jobs = [*([self._running] if self._running else []), *self._waiting]
            positions = {id(j): i for i, j in enumerate(self._waiting, start=1)}
        for job in jobs:
            if now - job.last_sent >= self.heartbeat_s:
                self._send_progress(job, position=positions.get(id(job)), heartbeat=True)

    def _results_in_transit(self, peer: bytes) -> int:
        pending = [t for t in self._in_transit.get(peer, []) if not t.done]
        if pending:
            self._in_transit[peer] = pending
        else:
            self._in_transit.pop(peer, None)
        return len(pending)

    def _send(self, peer: bytes, message: Message, *, track: bool = False) -> bool:
        """Queue ``message`` for ``peer``; False when it was dropped (SPEC.md §7).

        Never blocks: a peer whose send queue (``PeerLimits.send_queue``) is full
        does not read, so the message is dropped rather than held; a peer that
        has gone away gets its jobs cancelled.
        """
        assert self._router is not None
        frames = encode(message)
        try:
            # copy=False: result layers go to ZeroMQ as they are; the tracker says
            # when ZeroMQ has written them out and let go of the arrays
            tracker = self._router.send_multipart([peer, *frames], flags=zmq.NOBLOCK,
                                                  copy=False, track=track)
            if track and tracker is not None and not tracker.done:
                self._in_transit.setdefault(peer, []).append(tracker)
            return True
        except zmq.Again:
            if not isinstance(message, Progress):
                self._refusals.refused("peer %s does not read: its %s for %s was dropped",
                                       peer.hex()[:16], message.KIND, message.id)
            return False
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self._forget_peer(peer)
            self._in_transit.pop(peer, None)
            return False

    # ------------------------------------------------------------------ worker side

    def _drain_wake(self) -> None:
        assert self._wake_pull is not None
        while True:
            try:
                self._wake_pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        while True:
            try:
                event = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._deliver(event)

    def _deliver(self, event: tuple[Any, ...]) -> None:
        """Send what the worker produced (runs on the loop thread)."""
        kind, job = event[0], event[1]
        if kind == "started":
            job.stage, job.fraction = "started", 0.0
            self._send_progress(job)
            self._announce_positions()
        elif kind == "progress":
            job.stage, job.fraction = event[2], event[3]
            self._send_progress(job)
        elif kind == "result":
            self._send_result(job, event[2])
        elif kind == "error":
            code, text, where = event[2], event[3], event[4]
            self._send(job.peer, Error(id=job.message.id, code=code, message=text, field=where))

    def _send_result(self, job: _Job, result: StylizeResult) -> None:
        try:
            layers = {}
            for name in job.message.params.outputs:
                array = result.layers.get(name)
                if array is None:
                    raise RuntimeError(f"the pipeline did not return the {name!r} layer")
                layers[name] = Pixels.from_array(array)
            info = _plain(result.info)
            info.setdefault("queue_s", round(job.started - job.accepted, 6))
            if self._results_in_transit(job.peer) >= self.peer_limits.unread_results:
                # the peer does not read: its earlier results are still in our memory
                self._send(job.peer, Error(
                    id=job.message.id, code=errors.BUSY,
                    message=f"result dropped: {self.peer_limits.unread_results} earlier "
                            "results to this client are still unread"))
                return
            self._send(job.peer, Result(id=job.message.id, layers=layers, info=info),
                       track=True)
        except Exception as exc:
            log.exception("job %s: could not send its result", job.message.id)
            self._send(job.peer, Error(id=job.message.id, code=errors.INTERNAL,
                                       message=f"could not send the result: {exc}"))

    def _post(self, *event: Any) -> None:
        """Hand an event to the loop (worker thread, or a thread the pipeline made)."""
        self._outbox.put(event)
        with self._wake_lock:
            if self._wake_push is None:
                self._wake_push = self._ctx.socket(zmq.PUSH)
                self._wake_push.setsockopt(zmq.LINGER, 0)
                self._wake_push.connect(self._wake_address)
            self._wake_push.send(b"", zmq.NOBLOCK)

    def _work(self) -> None:
        """The worker thread: run queued jobs one at a time, until stopped."""
        try:
            while True:
                with self._lock:
                    while not self._waiting and not self._stop.is_set():
                        self._lock.wait(0.5)
                    if self._stop.is_set():
                        return
                    job = self._waiting.popleft()
                    self._running = job
                self._post("started", job)
                try:
                    self._run(job)
                finally:
                    with self._lock:
                        self._running = None
        finally:
            with self._wake_lock:
                if self._wake_push is not None:
                    self._wake_push.close()
                    self._wake_push = None

    def _run(self, job: _Job) -> None:
        job.started = time.monotonic()
        request = job.message
        try:
            key = self._style_key(job)
            stylize_job = StylizeJob.from_request(
                content=request.content.to_array() if request.content else np.empty(0),
                style=job.style, style_key=key, params=request.params,
                regions=self._regions(request.params.regions),
                mask=request.mask.to_array() if request.mask is not None else None)
            ctx = JobContext(on_progress=lambda stage, fraction: self._post(
                "progress", job, stage, fraction), cancel=job.cancel)
            result = self.pipeline.run(stylize_job, ctx)
            result.info.setdefault("timings", ctx.finish())
            self._post("result", job, result)
            log.info("job %s done in %.3f s", request.id, time.monotonic() - job.started)
        except JobCancelled:
            log.info("job %s cancelled", request.id)
            self._post("error", job, errors.CANCELLED, "cancelled", None)
        except ProtocolError as err:
            log.info("job %s refused: %s", request.id, err)
            self._post("error", job, err.code, err.message, err.field)
        except Exception as exc:
            log.exception("job %s failed", request.id)
            self._post("error", job, errors.INTERNAL,
                       f"the job failed: {type(exc).__name__}: {str(exc)[:300]}", None)

    def _style_key(self, job: _Job) -> str:
        """The verified key of the job's style; caches the pixels it came with."""
        request = job.message
        if not job.verify_key or request.style is None:
            return request.style_key or ""
        key = style_key(request.style)
        if request.style_key is not None and not hmac.compare_digest(key, request.style_key):
            raise WireError("style_key does not match the style pixels", code=errors.BAD_PARAMS,
                            field="style_key")
        self._styles.put(key, job.style)
        return key

    def _regions(self, knobs: Mapping[str, Mapping[str, float | bool]]) -> dict[
            str, RegionSettings]:
        """Requested knobs over the engine's presets, for the regions the request names.

        Regions the request leaves out are left to the pipeline's own defaults.
        """
        if not knobs:
            return {}
        described = self._describe()
        engine = described.get("engine")
        engine_name = str(engine.get("name") if isinstance(engine, dict) else engine)
        try:
            resolved = resolve_regions(engine_name, knobs)
        except ValueError as exc:
            raise WireError(str(exc), code=errors.BAD_PARAMS, field="regions") from exc
        return {name: resolved[name] for name in knobs if name in REGION_NAMES}

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Cancel everything, tell the clients, and close (SPEC.md §8)."""
        self._stop.set()
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
            running = self._running
            if running is not None:
                running.cancel.set()
            self._lock.notify_all()
        for job in waiting:
            self._send(job.peer, Error(id=job.message.id, code=errors.CANCELLED,
                                       message="the daemon is shutting down"))
        if self._worker is not None:
            self._worker.join(self.shutdown_grace_s)
            if self._worker.is_alive():
                log.warning("the running job did not stop within %.0f s; leaving it",
                            self.shutdown_grace_s)
        if self._wake_pull is not None:
            self._drain_wake()
        with self._lock:
            if self._running is not None:
                self._send(self._running.peer, Error(
                    id=self._running.message.id, code=errors.CANCELLED,
                    message="the daemon is shutting down"))
        log.info("stopped serving on %s", self.endpoint)
        self.close()


def _plain(value: Any) -> Any:
    """Make pipeline-provided info msgpack-safe (numpy scalars, tuples, paths…)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _restrict_ipc_file(endpoint: str) -> None:
    """Only this user may connect to an ipc socket (other local users get no handshake)."""
    if endpoint.startswith("ipc://") and not endpoint.startswith("ipc://@"):
        try:
            os.chmod(endpoint[len("ipc://"):], 0o600)
        except OSError as exc:
            log.warning("could not restrict %s to this user: %s", endpoint, exc)


def _remove_ipc_file(endpoint: str | None) -> None:
    if endpoint and endpoint.startswith("ipc://") and not endpoint.startswith("ipc://@"):
        Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)
