"""What one connection may cost the daemon: ZeroMQ socket options (SPEC.md §4, §7).

Why socket options and not code in the loop: ZeroMQ buffers a peer's frames and
our replies in its own I/O threads, out of the loop's sight. Only its options
bound them:

- ``MAXMSGSIZE``: no single incoming frame over ``max_message_bytes`` is
  allocated (the connection is dropped instead).
- ``RCVHWM``: complete messages waiting to be read, per peer.
- ``SNDHWM``: replies waiting to go out, per peer. With ``ROUTER_MANDATORY``
  a full queue makes ``send`` fail at once (the loop drops that message:
  see ``DaemonServer._send``) and a vanished peer is reported as unreachable
  (the loop cancels its jobs) instead of both being silently discarded. The
  queue counts messages, not bytes, so it is sized for bursts of small ones
  (progress, queue positions); big results are bounded separately by
  ``unread_results``, counted with ZeroMQ's message trackers.
- ZMTP heartbeats and TCP keepalive: a peer that goes silent (stalled in the
  middle of a frame, or its machine gone) is dropped, and with it whatever
  ZeroMQ had reserved for its unfinished frame.
- ``HANDSHAKE_IVL``: a connection that never finishes its handshake (CURVE
  included) is dropped.

What ZeroMQ does not bound: the number of frames of an unfinished multipart
message (it counts messages, not frames). Only authenticated peers can send
frames on a CURVE daemon, so that cost is bounded for strangers there; SPEC.md §9
says what each kind of endpoint promises.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq

from ..protocol.framing import Limits

__all__ = ["PeerLimits", "apply_peer_limits"]


@dataclass(frozen=True)
class PeerLimits:
    """Per-connection bounds; the defaults are what SPEC.md §4 states."""

    #: replies (progress, results, errors) queued for one peer
    send_queue: int = 64
    #: results to one peer that ZeroMQ has not yet written out; a further one is
    #: answered ``busy`` instead (its pixels would pile up behind a peer that does
    #: not read)
    unread_results: int = 2
    #: complete requests queued from one peer before the loop reads them
    receive_queue: int = 4
    #: ZMTP PING interval, and how long without any traffic drops the peer
    heartbeat_ivl_s: float = 5.0
    heartbeat_timeout_s: float = 20.0
    #: longest handshake (CURVE included)
    handshake_s: float = 10.0
    #: TCP keepalive: idle seconds before probing, probe interval, probes
    keepalive_idle_s: int = 60
    keepalive_intvl_s: int = 10
    keepalive_cnt: int = 3


def apply_peer_limits(socket: zmq.Socket, limits: Limits,
                      peer: PeerLimits | None = None) -> None:
    """Set every per-peer bound on the ROUTER socket (before bind)."""
    peer = peer or PeerLimits()
    socket.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
    socket.setsockopt(zmq.SNDHWM, peer.send_queue)
    socket.setsockopt(zmq.RCVHWM, peer.receive_queue)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    socket.setsockopt(zmq.HEARTBEAT_IVL, int(peer.heartbeat_ivl_s * 1000))
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(peer.heartbeat_timeout_s * 1000))
    # TTL travels in our PINGs: the peer drops us too when we go silent
    socket.setsockopt(zmq.HEARTBEAT_TTL, int(peer.heartbeat_timeout_s * 1000))
    socket.setsockopt(zmq.HANDSHAKE_IVL, int(peer.handshake_s * 1000))
    socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
    socket.setsockopt(zmq.TCP_KEEPALIVE_IDLE, peer.keepalive_idle_s)
    socket.setsockopt(zmq.TCP_KEEPALIVE_INTVL, peer.keepalive_intvl_s)
    socket.setsockopt(zmq.TCP_KEEPALIVE_CNT, peer.keepalive_cnt)
