"""The daemon under hostile or careless clients: every cost bounded, every id answered once.

Each attack is one from the reliability review (issue 13), run against a real
``serve --engine noop`` subprocess on loopback, with the bound asserted on the
daemon's resident memory (``/proc/PID/status``) where memory is the point.
Margins are generous (other processes share the machine) but each sits well
below what the attack cost before the fix, noted next to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest
import zmq
from daemon_harness import Daemon, running
from hostile import RawPeer, rss_bytes, settled_rss

from portrait_style.daemon.noop import NoopPipeline
from portrait_style.daemon.peer_limits import PeerLimits
from portrait_style.daemon.server import DaemonServer
from portrait_style.protocol import errors
from portrait_style.protocol.client import DaemonClient
from portrait_style.protocol.constants import PROTOCOL_VERSION
from portrait_style.protocol.errors import MAX_REFUSAL_CHARS
from portrait_style.protocol.framing import CLIENT_LIMITS
from portrait_style.protocol.messages import decode

pytestmark = pytest.mark.slow

MIB = 1 << 20
FINAL = ("result", "error")


@pytest.fixture(scope="module")
def fast(tmp_path_factory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("fast"), "--engine", "noop") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def slow(tmp_path_factory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("slow"), "--engine", "noop",
                 "--noop-delay", "1.0") as daemon:
        yield daemon


def _dealer(endpoint: str, **options: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(endpoint)
    return sock


def _stylize(request_id: str, content: bytes, shape: tuple[int, int, int], *,
             style_stride: int | None = None, style: bytes | None = None,
             **fields: object) -> list[bytes]:
    """A hand-made ``stylize`` (SPEC.md §5): content, and a 1×1 style unless given."""
    height, width, channels = shape
    if style is None:
        style_stride = style_stride or 3
        style = bytes([request_id.__hash__() & 0xFF, 1, 2]).ljust(style_stride, b"\0")
    frames = [{"name": "content", "width": width, "height": height, "channels": channels,
               "dtype": "uint8", "stride": width * channels},
              {"name": "style", "width": 1, "height": 1, "channels": 3, "dtype": "uint8",
               "stride": len(style)}]
    header = {"v": PROTOCOL_VERSION, "kind": "stylize", "id": request_id, "frames": frames,
              "outputs": ["background"], **fields}
    return [msgpack.packb(header), content, style]


def _until(sock: zmq.Socket, done, timeout_s: float = 20.0) -> list:
    """Replies until ``done(reply)`` is true (inclusive)."""
    replies = []
    while sock.poll(int(timeout_s * 1000)):
        reply = decode(sock.recv_multipart(), CLIENT_LIMITS)
        replies.append(reply)
        if done(reply):
            return replies
    raise AssertionError(f"no final reply; got {[r.KIND for r in replies]}")


# --------------------------------------------------------------------- refusals


def test_deep_nesting_is_bad_params_with_the_request_id(fast):
    nested: object = 1
    for _ in range(1000):
        nested = [nested]
    sock = _dealer(fast.endpoint)
    try:
        frames = _stylize("deep1", bytes(12), (2, 2, 3))
        header = msgpack.unpackb(frames[0])
        header["frames"][0]["width"] = nested
        sock.send_multipart([msgpack.packb(header), *frames[1:]])
        reply = _until(sock, lambda r: r.KIND in FINAL)[-1]
    finally:
        sock.close()
    assert (reply.KIND, reply.code, reply.id) == ("error", errors.BAD_PARAMS, "deep1")


def test_refusals_are_clipped_and_their_logging_rate_limited(fast):
    """400 refusals quoting a 60 kB value: before, 60 kB per reply and 23 MiB of log."""
    log_path = fast.home / "state" / "logs" / "serve.log"
    before = log_path.stat().st_size
    sock = _dealer(fast.endpoint)
    try:
        for index in range(400):
            frames = _stylize(f"long{index}", bytes(12), (2, 2, 3),
                              regions={"portrait": {"strength": "x" * 60_000}})
            sock.send_multipart(frames)
            reply = _until(sock, lambda r: r.KIND in FINAL)[-1]
            assert reply.code == errors.BAD_PARAMS
            assert len(reply.message) <= MAX_REFUSAL_CHARS
    finally:
        sock.close()
    grown = log_path.stat().st_size - before
    assert grown < 64 * 1024, f"log grew {grown} bytes"
    assert "refusals were not logged" in log_path.read_text() or grown < 16 * 1024


# ------------------------------------------------------------------ request ids


def test_duplicate_in_flight_id_gets_exactly_one_final_message(slow):
    sock = _dealer(slow.endpoint)
    try:
        sock.send_multipart(_stylize("dup1", bytes(12), (2, 2, 3)))
        time.sleep(0.2)  # the first is running when the second arrives
        sock.send_multipart(_stylize("dup1", bytes(12), (2, 2, 3)))
        replies = _until(sock, lambda r: r.KIND in FINAL and r.id == "dup1")
        # whatever the daemon sent before a pong is on the wire before it
        sock.send_multipart([msgpack.packb({"v": PROTOCOL_VERSION, "kind": "ping",
                                            "id": "after"})])
        replies += _until(sock, lambda r: r.KIND == "pong")
    finally:
        sock.close()
    finals = [r for r in replies if r.id == "dup1" and r.KIND in FINAL]
    assert [r.KIND for r in finals] == ["result"]


# ----------------------------------------------------------------------- memory


def test_style_cache_is_charged_for_the_frames_it_keeps(fast):
    """24 1×1 styles on a 16 MiB stride each: before, +385 MiB held for good."""
    pid = fast.proc.pid
    sock = _dealer(fast.endpoint)
    try:
        base = settled_rss(pid, 0.3)
        for index in range(24):
            style = bytes([index, 7, 9]) + bytes(16 * MIB - 3)
            sock.send_multipart(_stylize(f"st{index}", bytes(12), (2, 2, 3), style=style))
            reply = _until(sock, lambda r: r.KIND in FINAL)[-1]
            assert reply.KIND == "result", reply
        grown = settled_rss(pid, 0.5) - base
    finally:
        sock.close()
    assert grown < 64 * MIB, f"daemon grew {grown / MIB:.0f} MiB"


def test_results_nobody_reads_do_not_pile_up(fast):
    """24 results of 16 MiB to a peer that never reads: before, +389 MiB until it left."""
    pid = fast.proc.pid
    base = settled_rss(pid, 0.3)
    content = bytes(16 * MIB)
    sock = _dealer(fast.endpoint, RCVHWM=1, RCVBUF=4096)
    try:
        for index in range(24):
            sock.send_multipart(_stylize(f"nr{index}", content, (2048, 2048, 4)))
            time.sleep(0.1)  # one at a time: never "busy", every job runs
        peak = max(rss_bytes(pid), settled_rss(pid, 1.0))
    finally:
        sock.close()
    grown = peak - base
    assert grown < 128 * MIB, f"daemon grew {grown / MIB:.0f} MiB"
    with DaemonClient(fast.endpoint, timeout_s=10) as client:  # and it still serves
        assert client.ping() < 5


def test_stalled_peer_is_dropped():
    """A peer that declares a 16 MiB frame and goes quiet is disconnected by heartbeats."""
    server = DaemonServer(NoopPipeline(), endpoint="tcp://127.0.0.1:*",
                          peer_limits=PeerLimits(heartbeat_ivl_s=0.2, heartbeat_timeout_s=1.0))
    endpoint = server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    peer = RawPeer(endpoint)
    try:
        peer.declare_frame(16 * MIB, b"x" * 1000)
        assert peer.closed_by_peer(within_s=15)
    finally:
        peer.close()
        server.stop()
        thread.join(10)


# ------------------------------------------------------------- disconnects, load


def test_jobs_of_a_disconnected_client_are_cancelled(tmp_path):
    with running(tmp_path / "d", "--engine", "noop", "--noop-delay", "60",
                 "--heartbeat", "0.3") as daemon:
        sock = _dealer(daemon.endpoint)
        sock.send_multipart(_stylize("gone1", bytes(12), (2, 2, 3)))
        _until(sock, lambda r: r.KIND == "progress" and r.stage != "queued")
        sock.send_multipart(_stylize("gone2", bytes(12), (2, 2, 3)))
        _until(sock, lambda r: r.id == "gone2")
        sock.close()
        deadline = time.monotonic() + 30
        while "job gone1 cancelled" not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = daemon.log()
    assert "1 queued job(s) dropped, its running job cancelled" in log
    assert "job gone1 cancelled" in log


def test_eight_clients_fifty_requests_each_none_lost_doubled_or_crossed(fast):
    failures: list[str] = []

    def client_run(number: int) -> None:
        with DaemonClient(fast.endpoint, timeout_s=30) as client:
            for request in range(50):
                content = np.full((4, 4, 3), (number, request, 7), np.uint8)
                try:
                    reply = client.stylize(content, content, outputs=["background"])
                except errors.ProtocolError as exc:
                    failures.append(f"client {number} request {request}: {exc}")
                    continue
                if not np.array_equal(reply.layers["background"], content):
                    failures.append(f"client {number} request {request}: wrong layer")

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures and not any(t.is_alive() for t in threads)


def test_cancel_storm_ends_every_request_exactly_once(tmp_path):
    with running(tmp_path / "d", "--engine", "noop", "--noop-delay", "0.3") as daemon:
        sock = _dealer(daemon.endpoint)
        ids = [f"cs{n}" for n in range(40)]
        for request_id in ids:
            sock.send_multipart(_stylize(request_id, bytes(12), (2, 2, 3)))
            sock.send_multipart([msgpack.packb({"v": PROTOCOL_VERSION, "kind": "cancel",
                                                "id": "c" + request_id,
                                                "target": request_id})])
        finals: dict[str, list[str]] = {}
        while len(finals) < len(ids) and sock.poll(20_000):
            reply = decode(sock.recv_multipart(), CLIENT_LIMITS)
            if reply.KIND in FINAL:
                finals.setdefault(reply.id, []).append(getattr(reply, "code", "result"))
        sock.send_multipart([msgpack.packb({"v": PROTOCOL_VERSION, "kind": "ping",
                                            "id": "after"})])
        for reply in _until(sock, lambda r: r.KIND == "pong"):
            if reply.KIND in FINAL:
                finals.setdefault(reply.id, []).append("late")
        sock.close()
    assert sorted(finals) == sorted(ids)
    assert all(len(codes) == 1 for codes in finals.values()), finals
    assert {c for codes in finals.values() for c in codes} <= {"result", errors.CANCELLED,
                                                               errors.BUSY}


def test_launched_daemon_writes_only_warnings_to_its_unrotated_stderr(tmp_path):
    """The launcher's daemon.log is stderr; the full log rotates in serve.log."""
    home = tmp_path / "d"
    with running(home, "--engine", "noop", "--stderr-level", "warning") as daemon:
        sock = _dealer(daemon.endpoint)
        sock.send_multipart([b"not msgpack"])
        _until(sock, lambda r: r.KIND == "error")
        sock.close()
        served = daemon.log()
    stderr = (home / "stderr.txt").read_text()
    assert "ready on" in served and "refused message" in served
    assert "INFO" not in stderr


def test_launcher_asks_for_warnings_only(tmp_path):
    import sys

    from portrait_style.plugin.launcher import start_daemon

    log_path = tmp_path / "daemon.log"
    proc = start_daemon("tcp://127.0.0.1:5999", [sys.executable, "-c",
                                                 "import sys; print(sys.argv[1:])"],
                        log_path=log_path, ready_file=tmp_path / "ready")
    assert proc.wait(30) == 0
    argv = log_path.read_text().splitlines()[-1]
    assert "'--stderr-level', 'warning'" in argv


def test_an_unfinished_multipart_message_costs_what_the_spec_says(tmp_path):
    """SPEC.md §4 (issue 23 case 6): frames of a message that never ends are held at the
    peer's pace — one frame each, no more — and all freed once the peer is gone."""
    with running(tmp_path / "d", "--engine", "noop") as daemon:
        pid = daemon.proc.pid
        before = settled_rss(pid, 0.5)
        peer = RawPeer(daemon.endpoint)
        for _ in range(64):
            peer.send_frame(b"\0" * (1 << 20), more=True)
        time.sleep(0.5)
        held = settled_rss(pid, 0.5) - before
        peer.close()
        deadline = time.monotonic() + 10
        left = held
        while time.monotonic() < deadline and left > 8 << 20:
            time.sleep(0.5)
            left = settled_rss(pid, 0.2) - before
        print(f"64 unfinished 1 MiB frames: held {held / 2**20:.0f} MiB, "
              f"{left / 2**20:.1f} MiB after the peer left")
        assert held < 72 << 20, f"held {held / 2**20:.0f} MiB for 64 MiB of frames"
        assert left < 8 << 20, f"{left / 2**20:.0f} MiB still held after the peer left"
