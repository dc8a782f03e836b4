"""The warm daemon's ZeroMQ server: the socket loop (SPEC.md).

Why this shape: the loop only decodes, checks, routes and sends; it never
blocks on a job. The pieces it drives each live in their own module:

- ``security``: who may connect (bind policy, CURVE through ZAP) and the token;
- ``peer_limits``: what one connection may cost (ZeroMQ socket options);
- ``jobs``: accepted jobs, their FIFO queue and their typed events;
- ``intake``: from a stylize message to the pipeline's job (style cache, presets);
- ``worker``: the thread that runs jobs and posts their events back here.

Pixels stay where ZeroMQ received them: the job's arrays are read-only numpy
views of the received frames, and result arrays are handed to ZeroMQ without a
copy.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from .. import __version__
from ..paths import installation
from ..protocol import errors
from ..protocol.constants import PROTOCOL_VERSION
from ..protocol.endpoints import default_endpoint, ipc_path
from ..protocol.errors import WireError
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
)
from .intake import JobIntake
from .jobs import Job, JobDone, JobEvent, JobFailed, JobProgress, JobQueue, JobStarted, QueueFull
from .jobspec import StylizeResult
from .peer_limits import PeerLimits, apply_peer_limits
from .refusal_log import RefusalLog
from .security import CurveGate, ServerKeys, TokenGate, check_bind_allowed, is_loopback_endpoint
from .socket_lock import SocketLock
from .style_cache import StyleCache
from .worker import EventLine, Pipeline, Worker

__all__ = ["DaemonServer", "Pipeline", "check_bind_allowed", "is_loopback_endpoint"]

log = logging.getLogger(__name__)

#: how often the keys of peers with jobs are checked against the allowed folder (seconds)
KEY_CHECK_S = 1.0
STOPPING_MESSAGE = "the daemon is stopping (portrait-style stop, or its process was ended)"
REVOKED_MESSAGE = ("this client's key is no longer allowed by the daemon (revoked with "
                   "'portrait-style keys revoke'); ask the daemon's admin to allow it again")


class DaemonServer:
    """Serve ``pipeline`` on a ZeroMQ ROUTER socket until ``stop()`` or a signal.

    Use: ``server = DaemonServer(pipeline, endpoint=...); server.bind();
    server.serve_forever()``; ``stop()`` may be called from any thread or a
    signal handler. ``notes`` are shown to clients in ``hello`` (e.g. why the
    embedded engine is used). ``curve``: require CurveZMQ (daemon/security.py).
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
        self.pipeline = pipeline
        self.requested_endpoint = endpoint
        self.endpoint: str | None = None
        self.limits = limits or Limits()
        self.notes = list(notes)
        self.heartbeat_s = heartbeat_s
        self.max_queue = max_queue
        self.shutdown_grace_s = shutdown_grace_s
        self.curve = curve
        self.peer_limits = peer_limits or PeerLimits()
        self._tokens = TokenGate(token)
        self._refusals = RefusalLog(log)
        self._jobs = JobQueue(max_queue)
        self._intake = JobIntake(StyleCache(style_cache_bytes), self._describe)
        # results handed to ZeroMQ but not yet on the wire, per peer (SPEC.md §7)
        self._in_transit: dict[bytes, list[zmq.MessageTracker]] = {}
        self._started = time.monotonic()
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._router: zmq.Socket | None = None
        self._events: EventLine | None = None
        self._worker: Worker | None = None
        self._gate: CurveGate | None = None
        self._socket_lock: SocketLock | None = None
        self._stop = threading.Event()
        # CURVE: the key each peer's connection authenticated with (z85), for peers
        # seen since the last check, and peers shut out by a revoke (SPEC.md §9)
        self._peer_keys: dict[bytes, str] = {}
        self._shut_out: set[bytes] = set()
        self._next_key_check = 0.0
        # (peer, id) of jobs their own client cancelled: any other cancel of a running
        # job during shutdown is the daemon stopping (error code "stopping")
        self._client_cancels: set[tuple[bytes, str]] = set()
        self._told_stopping: set[tuple[bytes, str]] = set()

    # ------------------------------------------------------------------ lifecycle

    def bind(self) -> str:
        """Bind the socket, start the worker; return the real endpoint."""
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
        self._events = EventLine(self._ctx)
        self._worker = Worker(self._jobs, self.pipeline, self._intake.build, self._events,
                              self._stop)
        self._worker.start()
        return self.endpoint

    def stop(self) -> None:
        """Ask the loop to finish (thread- and signal-safe); it exits within ~0.2 s."""
        self._stop.set()

    def serve_forever(self) -> None:
        """Answer messages until ``stop()``, then shut down cleanly (SPEC.md §8)."""
        if self._router is None:
            self.bind()
        assert self._router is not None and self._events is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._events.receiver, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                try:
                    ready = dict(poller.poll(timeout=200))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.EINTR:
                        continue
                    raise
                try:
                    if self._events.receiver in ready:
                        self._deliver_events()
                    if self._router in ready:
                        self._drain_router()
                    self._check_peer_keys()
                    self._send_heartbeats()
                except Exception:  # never let one message or job take the daemon down
                    log.exception("internal error in the socket loop; still serving")
        finally:
            self._shutdown()

    def close(self) -> None:
        """Release sockets (after ``serve_forever`` returned, or if it never ran)."""
        if self._router is not None and not self._router.closed:
            self._router.close()
        self._router = None
        if self._events is not None:
            self._events.close()
            self._events = None
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

    # ------------------------------------------------------------------ receiving

    def _drain_router(self) -> None:
        """Handle every message already received (bounded, so heartbeats still go out)."""
        assert self._router is not None
        for _ in range(256):
            try:
                parts = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = parts[0].bytes
            if self._gate is not None and not self._key_still_allowed(peer, parts[-1]):
                continue
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

    def _key_still_allowed(self, peer: bytes, frame: zmq.Frame) -> bool:
        """CURVE: is the key this message's connection authenticated with still allowed?

        A revoked key is shut out at its next message: its jobs are cancelled and
        the message is answered with ``auth_failed`` (one short reply, never
        the message's content), whatever connection it comes on.
        """
        assert self._gate is not None
        try:
            key = frame.get("User-Id")
        except zmq.ZMQError:
            key = None
        if self._gate.allowed.allows(key):
            self._peer_keys[peer] = str(key)
            return True
        self._refusals.refused("refused a message from peer %s: its key is no longer allowed",
                               peer.hex()[:16])
        self._revoke_peer(peer)
        self._send(peer, Error(id=None, code=errors.AUTH_FAILED, message=REVOKED_MESSAGE))
        return False

    def _check_peer_keys(self) -> None:
        """Once a second: shut out peers whose key was revoked while their jobs wait or run."""
        now = time.monotonic()
        if self._gate is None or now < self._next_key_check:
            return
        self._next_key_check = now + KEY_CHECK_S
        busy = {job.peer for job in self._jobs.active()}
        for peer, key in list(self._peer_keys.items()):
            if peer not in busy:
                del self._peer_keys[peer]  # asked again at its next message
            elif not self._gate.allowed.allows(key):
                log.info("peer %s: its key was revoked; its jobs are cancelled",
                         peer.hex()[:16])
                self._revoke_peer(peer)

    def _revoke_peer(self, peer: bytes) -> None:
        """Cancel a shut-out peer's jobs and tell it once per job; its events are dropped."""
        self._peer_keys.pop(peer, None)
        removed, running = self._jobs.drop_peer(peer)
        if running is not None:
            self._shut_out.add(peer)  # until its running job's last event
        for job in [*removed, *([running] if running is not None else [])]:
            self._send(peer, Error(id=job.message.id, code=errors.AUTH_FAILED,
                                   message=REVOKED_MESSAGE))
        if removed:
            self._announce_positions()

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
            self._tokens.require(message.token)
            self._accept(peer, message)
        elif isinstance(message, Cancel):
            self._tokens.require(message.token)
            self._cancel(peer, message.target)
        else:
            raise WireError(f"{message.KIND!r} is sent by daemons, not to them",
                            code=errors.UNKNOWN_KIND, field="kind")

    def _hello_reply(self, message: Hello) -> HelloReply:
        described = _plain(self._describe())
        engine = described.get("engine")
        engine_name = engine.get("name") if isinstance(engine, dict) else engine
        segmenter = described.get("segmenter")
        segmenter_name = segmenter.get("name") if isinstance(segmenter, dict) else segmenter
        available = described.get("available_engines") or [engine_name]
        waiting, running = self._jobs.counts()
        return HelloReply(
            id=message.id, protocol=PROTOCOL_VERSION, daemon_version=__version__,
            engines={"active": engine_name or "unknown", "available": list(available),
                     "notes": list(self.notes)},
            segmenter=segmenter_name, device=str(described.get("device", "")),
            limits=self.limits.to_dict(), heartbeat_s=self.heartbeat_s,
            auth_required=self._tokens.required, auth_ok=self._tokens.accepts(message.token),
            pipeline=described, pid=os.getpid(), host=socket.gethostname(),
            installation=installation(), uptime_s=round(time.monotonic() - self._started, 3),
            queue=waiting, running=running,
        )

    def _describe(self) -> dict[str, Any]:
        try:
            return dict(self.pipeline.describe())
        except Exception:
            log.exception("pipeline.describe() failed")
            return {}

    def _accept(self, peer: bytes, message: Stylize) -> None:
        """Queue a checked stylize request, or refuse it at once."""
        if self._jobs.in_flight(peer, message.id):
            # SPEC.md §5 "Request ids": the first request keeps the id and its one
            # final message; a reply to the second would be a second final for it
            self._refusals.refused("dropped stylize %s from peer %s: id already in flight",
                                   message.id, peer.hex()[:16])
            return
        style, sent = self._intake.style_for(message)
        job = Job(peer=peer, message=message, style=style, verify_key=sent)
        try:
            position = self._jobs.push(job)
        except QueueFull:
            raise WireError(f"the daemon's queue is full ({self.max_queue} jobs); try "
                            "again shortly", code=errors.BUSY) from None
        log.info("job %s from %s queued: %dx%d, outputs %s", message.id, peer.hex()[:16],
                 message.content.width if message.content else 0,
                 message.content.height if message.content else 0,
                 ",".join(message.params.outputs))
        if position:
            self._send_progress(job, position=position)

    def _cancel(self, peer: bytes, target: str) -> None:
        removed, flagged = self._jobs.cancel(peer, target)
        if removed is not None:
            log.info("job %s cancelled while queued", target)
            self._send(peer, Error(id=target, code=errors.CANCELLED,
                                   message="cancelled before it started"))
            self._announce_positions()
        elif flagged is not None:
            log.info("job %s: cancel requested while running", target)
            self._client_cancels.add(flagged.key)

    def _forget_peer(self, peer: bytes) -> None:
        """The peer is gone: drop its queued jobs, stop its running one (no one to tell)."""
        self._in_transit.pop(peer, None)
        removed, running = self._jobs.drop_peer(peer)
        if removed or running is not None:
            log.info("peer %s disconnected: %d queued job(s) dropped%s", peer.hex()[:16],
                     len(removed), ", its running job cancelled" if running else "")
        if removed:
            self._announce_positions()

    # ------------------------------------------------------------------ job events

    def _deliver_events(self) -> None:
        assert self._events is not None
        for event in self._events.drain():
            self._deliver(event)

    def _deliver(self, event: JobEvent) -> None:
        """Send what the worker produced (runs on the loop thread)."""
        job = event.job
        if job.key in self._told_stopping:
            return  # its client was told the daemon is stopping; nothing follows that
        if job.peer in self._shut_out:
            if isinstance(event, JobDone | JobFailed):
                self._shut_out.discard(job.peer)
            return  # revoked: it was told, and gets nothing more of this job
        if isinstance(event, JobStarted):
            job.stage, job.fraction = "started", 0.0
            self._send_progress(job)
            self._announce_positions()
        elif isinstance(event, JobProgress):
            job.stage, job.fraction = event.stage, event.fraction
            self._send_progress(job)
        elif isinstance(event, JobDone):
            self._send_result(job, event.result)
        elif isinstance(event, JobFailed):
            code, message = event.code, event.message
            if (code == errors.CANCELLED and self._stop.is_set()
                    and job.key not in self._client_cancels):
                code, message = errors.STOPPING, STOPPING_MESSAGE  # not its client's cancel
            self._send(job.peer, Error(id=job.message.id, code=code, message=message,
                                       field=event.field))
        if isinstance(event, JobDone | JobFailed):
            self._client_cancels.discard(job.key)

    def _send_result(self, job: Job, result: StylizeResult) -> None:
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

    # ------------------------------------------------------------------ sending

    def _announce_positions(self) -> None:
        for position, job in enumerate(self._jobs.waiting(), start=1):
            self._send_progress(job, position=position)

    def _send_progress(self, job: Job, *, position: int | None = None,
                       heartbeat: bool = False) -> None:
        self._send(job.peer, Progress(id=job.message.id, stage=job.stage, fraction=job.fraction,
                                      position=position if job.stage == "queued" else None,
                                      heartbeat=heartbeat))
        job.last_sent = time.monotonic()

    def _send_heartbeats(self) -> None:
        now = time.monotonic()
        positions = {id(j): i for i, j in enumerate(self._jobs.waiting(), start=1)}
        for job in self._jobs.active():
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
            return False

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Cancel everything, tell the clients, and close (SPEC.md §8)."""
        self._stop.set()
        waiting, running = self._jobs.close()
        # the running job is told now too, not after it noticed the cancel: its client
        # hears no heartbeat while we wait for the worker, and must not take that silence
        # for a crash
        if running is not None and running.key not in self._client_cancels:
            waiting.append(running)
            self._told_stopping.add(running.key)
        for job in waiting:
            self._send(job.peer, Error(id=job.message.id, code=errors.STOPPING,
                                       message=STOPPING_MESSAGE))
        if self._worker is not None and not self._worker.join(self.shutdown_grace_s):
            log.warning("the running job did not stop within %.0f s; leaving it",
                        self.shutdown_grace_s)
        if self._events is not None:
            self._deliver_events()  # the running job's last word (usually "cancelled")
        stuck = self._jobs.running()
        if stuck is not None and stuck.key not in self._told_stopping:
            self._send(stuck.peer, Error(id=stuck.message.id, code=errors.STOPPING,
                                         message=STOPPING_MESSAGE))
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
