"""The daemon over real sockets: a real ``portrait-style serve`` subprocess.

Most tests talk to ``serve --engine noop`` (no models: every layer is the
content), so they test the server, the protocol and the client, not a network.
A few run ``DaemonServer`` in-process where the pipeline itself must misbehave.
The real-pipeline round trip at the end skips until ``daemon/runtime.py`` lands.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest
import zmq
from daemon_harness import Daemon, isolated_env, running, start_daemon, stop_daemon
from shared_data import SHARED_DATA

from portrait_style.protocol import errors
from portrait_style.protocol.client import DaemonClient
from portrait_style.protocol.constants import PROTOCOL_VERSION
from portrait_style.protocol.framing import CLIENT_LIMITS
from portrait_style.protocol.messages import Pixels, Stylize, decode, encode, style_key
from portrait_style.protocol.request import JobParams

DATA = SHARED_DATA
RNG = np.random.default_rng(11)


def _image(h: int, w: int, c: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)


STYLE = _image(16, 16, 3)


@pytest.fixture(scope="module")
def fast(tmp_path_factory) -> Iterator[Daemon]:
    """No delay; 1-megapixel limit so oversize tests stay cheap."""
    with running(tmp_path_factory.mktemp("fast"), "--engine", "noop",
                 "--max-pixels", "1000000") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def slow(tmp_path_factory) -> Iterator[Daemon]:
    """Each job takes 1.5 s over three stages: progress, queue and cancel are visible."""
    with running(tmp_path_factory.mktemp("slow"), "--engine", "noop",
                 "--noop-delay", "1.5") as daemon:
        yield daemon


@pytest.fixture
def raw(fast) -> Iterator:
    """Send hand-made frames to the fast daemon; returns the decoded reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fast.endpoint)

    def exchange(frames: list, timeout_s: float = 5.0):
        """The first reply that is not progress (None when nothing comes)."""
        sock.send_multipart(frames)
        while sock.poll(int(timeout_s * 1000)):
            reply = decode(sock.recv_multipart(), CLIENT_LIMITS)
            if reply.KIND != "progress":
                return reply
        return None

    yield exchange
    sock.close(linger=0)


def _header(**fields) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "kind": "ping", "id": "x", **fields})


pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------- basics


def test_handshake_ping_and_ready_signals(fast):
    with DaemonClient(fast.endpoint, timeout_s=5) as client:
        hello = client.hello()
        assert hello["protocol"] == PROTOCOL_VERSION
        assert hello["engines"]["active"] == "noop"
        assert any("noop" in note for note in hello["engines"]["notes"])
        assert hello["limits"]["max_pixels"] == 1_000_000
        assert hello["auth_required"] is False and hello["auth_ok"] is True
        assert 0 < client.ping() < 1.0
    ready = json.loads(fast.ready_file.read_text())
    assert ready["pid"] == fast.proc.pid and ready["engine"] == "noop"
    assert f"ready on {fast.endpoint}" in fast.log()


def test_stylize_returns_requested_layers(fast):
    content = _image(48, 40, 4)
    mask = _image(48, 40, 1)[:, :, 0]
    with DaemonClient(fast.endpoint, timeout_s=5) as client:
        reply = client.stylize(content, STYLE, mask=mask, outputs=["mask", "background"],
                               regions={"portrait": {"strength": 0.25}})
    assert list(reply.layers) == ["mask", "background"]
    assert np.array_equal(reply.layers["background"], content)  # noop: content unchanged
    assert np.array_equal(reply.layers["mask"], mask)
    info = reply.info
    assert info["engine"] == "noop" and info["working_size"] == [40, 48]
    assert info["style_key"] == style_key(Pixels.from_array(STYLE))
    # knobs sent are laid over the engine's presets, the others keep them
    assert info["regions"]["portrait"]["strength"] == 0.25
    assert set(info["regions"]) == {"portrait"}


def test_progress_events_arrive_in_order_and_ping_is_answered_during_a_job(slow):
    events: list[tuple[str, float]] = []
    rtts: list[float] = []

    def on_progress(stage: str, fraction: float) -> None:
        events.append((stage, fraction))
        if stage == "segment":
            with DaemonClient(slow.endpoint, timeout_s=5) as other:
                rtts.append(other.ping())

    with DaemonClient(slow.endpoint, timeout_s=5) as client:
        client.stylize(_image(16, 16, 3), STYLE, on_progress=on_progress)
    assert rtts and rtts[0] < 1.0   # the job takes 1.5 s: the socket loop did not wait for it
    stages = [stage for stage, _ in events]
    assert stages == ["started", "segment", "transform", "compose", "encode_reply"]
    fractions = [fraction for _, fraction in events]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)


# ------------------------------------------------------------------------ cancel


def test_cancel_running_job_then_daemon_keeps_serving(slow):
    cancel = threading.Event()

    def on_progress(stage: str, _fraction: float) -> None:
        if stage == "segment":
            cancel.set()

    with DaemonClient(slow.endpoint, timeout_s=5) as client:
        start = time.monotonic()
        with pytest.raises(errors.Cancelled) as info:
            client.stylize(_image(16, 16, 3), STYLE, on_progress=on_progress, cancel=cancel)
        assert info.value.code == errors.CANCELLED
        assert "did not confirm" not in info.value.message   # the daemon confirmed
        assert time.monotonic() - start < 1.4                 # before the job would end
        assert client.ping() < 1.0
        reply = client.stylize(_image(8, 8, 3), STYLE, outputs=["background"])
        assert reply.layers["background"].shape == (8, 8, 3)


def test_cancel_queued_job_and_two_clients_get_their_own_results(slow):
    contents = [_image(12, 12, 3), _image(10, 14, 4)]
    results: dict[int, np.ndarray] = {}
    started = threading.Event()

    def first() -> None:
        with DaemonClient(slow.endpoint, timeout_s=5) as client:
            results[0] = client.stylize(contents[0], STYLE, outputs=["background"],
                                        on_progress=lambda s, f: started.set()
                                        ).layers["background"].copy()

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(10)
    positions: list[int] = []
    with DaemonClient(slow.endpoint, timeout_s=5) as client:
        # a job behind a running one is told it is queued, then runs in turn
        second = client.stylize(contents[1], STYLE, outputs=["portrait"],
                                on_progress=lambda s, f: positions.append(s))
        results[1] = second.layers["portrait"]
        assert positions[0] == "queued" and "started" in positions
        # and a queued job can be cancelled before it starts
        blocker = threading.Thread(target=first)
        started.clear()
        blocker.start()
        assert started.wait(10)
        cancel = threading.Event()
        with pytest.raises(errors.Cancelled):
            client.stylize(contents[1], STYLE, cancel=cancel,
                           on_progress=lambda s, f: s == "queued" and cancel.set())
        blocker.join(10)
    thread.join(10)
    assert np.array_equal(results[0], contents[0])
    assert np.array_equal(results[1], contents[1])


# ------------------------------------------------------------------ bad requests


def test_malformed_requests_get_error_replies_and_daemon_survives(raw):
    reply = raw([b"\xc1 garbage"])
    assert reply.code == errors.BAD_HEADER and reply.id is None
    reply = raw([_header(v=PROTOCOL_VERSION + 7, id="v9")])
    assert (reply.code, reply.id) == (errors.UNSUPPORTED_VERSION, "v9")
    reply = raw([_header(kind="teleport", id="k1")])
    assert (reply.code, reply.id) == (errors.UNKNOWN_KIND, "k1")
    reply = raw([_header(kind="result", id="k2")])          # a daemon→client kind
    assert reply.code == errors.UNKNOWN_KIND
    frames = encode(Stylize(id="f1", content=Pixels.from_array(_image(8, 8, 3)),
                            style=Pixels.from_array(STYLE)))
    reply = raw([frames[0], frames[1][:-1], frames[2]])      # one byte short
    assert (reply.code, reply.id) == (errors.BAD_FRAME, "f1")
    frames = encode(Stylize(id="p1", content=Pixels.from_array(_image(8, 8, 3)),
                            style=Pixels.from_array(STYLE),
                            params=JobParams(regions={"portrait": {"strength": 0.5}})))
    header = msgpack.unpackb(frames[0])
    header["regions"]["portrait"]["strength"] = 3.0
    reply = raw([msgpack.packb(header), *frames[1:]])
    assert (reply.code, reply.field) == (errors.BAD_PARAMS, "regions.portrait.strength")
    header["regions"] = {}
    header["style_key"] = "0" * 64                            # does not match the pixels
    reply = raw([msgpack.packb(header), *frames[1:]])
    assert (reply.code, reply.field) == (errors.BAD_PARAMS, "style_key")
    assert raw([_header(id="alive")]).KIND == "pong"


def test_oversized_messages_are_refused(fast, raw):
    big = _image(1100, 1000, 3)                               # 1.1 MP > 1 MP limit
    with DaemonClient(fast.endpoint, timeout_s=5) as client, \
            pytest.raises(errors.MessageTooLarge, match="at most 1.0 MP"):
        client.stylize(big, STYLE)
    # sent anyway: over the pixel limit but under the byte limit → a too_large reply
    frames = encode(Stylize(id="big", content=Pixels.from_array(big),
                            style=Pixels.from_array(STYLE)))
    reply = raw(frames)
    assert (reply.code, reply.id) == (errors.TOO_LARGE, "big")
    # over MAXMSGSIZE: ZeroMQ drops it before allocation, no reply, daemon unharmed
    huge = Pixels.from_array(_image(1000, 1100, 4))           # 4.4 MB > 4.06 MB
    assert raw(encode(Stylize(id="huge", content=huge, style=Pixels.from_array(STYLE))),
               timeout_s=1.0) is None
    with DaemonClient(fast.endpoint, timeout_s=5) as client:
        assert client.ping() < 1.0
        assert client.stylize(_image(8, 8, 3), STYLE, outputs=["background"]).layers


def test_unknown_style_is_resent_with_pixels(fast):
    style_a, style_b = _image(9, 9, 3), _image(10, 10, 3)
    key_a = style_key(Pixels.from_array(style_a))
    with DaemonClient(fast.endpoint, timeout_s=5) as client:
        client.stylize(_image(8, 8, 3), style_a, outputs=["background"])
    with DaemonClient(fast.endpoint, timeout_s=5) as client:
        sent: list[list[str]] = []
        real_send = client._send

        def spy(message):
            if isinstance(message, Stylize):
                sent.append([name for name, _ in message.frames()])
            real_send(message)

        client._send = spy
        # by key only: the daemon still has style A
        reply = client.stylize(_image(8, 8, 3), key_a, outputs=["background"])
        assert reply.info["style_key"] == key_a
        # a key the daemon never saw, without pixels: a clear error
        with pytest.raises(errors.UnknownStyle):
            client.stylize(_image(8, 8, 3), "f" * 64, outputs=["background"])
        # the client believes the daemon has B (e.g. it restarted): omitted, refused, resent
        client._known_styles.add(style_key(Pixels.from_array(style_b)))
        sent.clear()
        client.stylize(_image(8, 8, 3), style_b, outputs=["background"])
        assert sent == [["content"], ["content", "style"]]
        # now it is known for real: the next request sends the key only
        sent.clear()
        client.stylize(_image(8, 8, 3), style_b, outputs=["background"])
        assert sent == [["content"]]


# ---------------------------------------------------------------------- security


def test_token_required_when_configured(tmp_path):
    with running(tmp_path / "auth", "--engine", "noop", "--token", "s3cret") as daemon:
        with DaemonClient(daemon.endpoint, timeout_s=5, token=None) as client:
            hello = client.hello()
            assert hello["auth_required"] and not hello["auth_ok"]
            assert client.ping() < 1.0                          # ping needs no token
            with pytest.raises(errors.AuthFailed, match="requires a token"):
                client.stylize(_image(8, 8, 3), STYLE)
        with DaemonClient(daemon.endpoint, timeout_s=5, token="wrong") as client:
            with pytest.raises(errors.AuthFailed):
                client.stylize(_image(8, 8, 3), STYLE)
            # the daemon itself refuses too, not only the client's pre-check
            client._hello.auth_ok = True
            with pytest.raises(errors.AuthFailed) as info:
                client.stylize(_image(8, 8, 3), STYLE)
            assert info.value.code == errors.AUTH_FAILED
        with DaemonClient(daemon.endpoint, timeout_s=5, token="s3cret") as client:
            assert client.hello()["auth_ok"]
            assert client.stylize(_image(8, 8, 3), STYLE, outputs=["mask"]).layers


def test_non_loopback_bind_without_curve_is_refused(tmp_path):
    # a token alone no longer opens a network bind: it would travel in clear
    proc = subprocess.run(
        [sys.executable, "-m", "portrait_style", "serve", "--engine", "noop", "--bind",
         "tcp://0.0.0.0:5599", "--token", "s3cret"], env=isolated_env(tmp_path),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "without a CURVE key pair" in proc.stderr and "keys create server" in proc.stderr


# ------------------------------------------------------------ daemon gone / stop


def test_no_daemon_raises_unreachable_within_timeout():
    with zmq.Context.instance().socket(zmq.REP) as probe:    # find a port nobody serves
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    start = time.monotonic()
    with DaemonClient(f"tcp://127.0.0.1:{port}", timeout_s=0.5) as client, \
            pytest.raises(errors.DaemonUnreachable, match="is it running"):
        client.ping()
    assert time.monotonic() - start < 2.0


def test_daemon_killed_mid_job_raises_within_timeout(tmp_path):
    daemon = start_daemon(tmp_path / "doomed", "--engine", "noop", "--noop-delay", "30")
    try:
        with DaemonClient(daemon.endpoint, timeout_s=1.0) as client:
            client.hello()

            def kill_on_start(stage: str, _fraction: float) -> None:
                if stage == "segment":
                    daemon.proc.kill()

            start = time.monotonic()
            # a local daemon is watched by its pid: the client names what happened
            with pytest.raises(errors.DaemonGone, match="stopped while working on this job"):
                client.stylize(_image(8, 8, 3), STYLE, on_progress=kill_on_start)
            assert time.monotonic() - start < 3.0
    finally:
        stop_daemon(daemon)


def test_sigterm_cancels_jobs_and_cleans_up(tmp_path):
    socket_path = tmp_path / "d.sock"
    daemon = start_daemon(tmp_path / "term", "--engine", "noop", "--noop-delay", "30",
                          bind=f"ipc://{socket_path}")
    assert socket_path.exists()
    outcome: list[BaseException] = []

    def job() -> None:
        with DaemonClient(daemon.endpoint, timeout_s=10) as client:
            try:
                client.stylize(_image(8, 8, 3), STYLE,
                               on_progress=lambda s, f: s == "segment" and daemon.proc.send_signal(
                                   signal.SIGTERM))
            except errors.ProtocolError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    thread.join(20)
    assert daemon.proc.wait(20) == 0
    stop_daemon(daemon)
    # the daemon says it is stopping (not the client's own cancel: SPEC.md §8)
    assert outcome and isinstance(outcome[0], errors.DaemonStopped)
    assert not socket_path.exists() and not daemon.ready_file.exists()


# ----------------------------------------------------------------- host clients


def test_client_without_numpy(fast):
    """GIMP/Krita may lack numpy: bytes in, ``Pixels`` out."""
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "from portrait_style.protocol.client import DaemonClient\n"
        "from portrait_style.protocol.messages import Pixels\n"
        f"with DaemonClient({fast.endpoint!r}, timeout_s=5) as c:\n"
        "    content = bytes(range(48))\n"
        "    r = c.stylize((content, (4, 4, 3)), (bytes(12), (2, 2, 3)),"
        " outputs=['portrait'])\n"
        "    layer = r.layers['portrait']\n"
        "    assert isinstance(layer, Pixels) and layer.shape == (4, 4, 3)\n"
        "    assert layer.tobytes() == content\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=isolated_env(fast.home))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -------------------------------------------------------------- in-process server


class _FlakyPipeline:
    """Fails its first job, then sleeps without stages (only heartbeats show life)."""

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict:
        return {"engine": {"name": "flaky"}, "device": "cpu"}

    def run(self, job, ctx):
        from portrait_style.daemon.jobspec import StylizeResult

        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")
        if self.calls == 2:
            raise errors.WireError("style too small", code=errors.BAD_PARAMS, field="style")
        time.sleep(1.0)
        return StylizeResult(layers={name: job.content for name in job.outputs if
                                     name != "mask"}, info={"engine": "flaky"})


def test_failing_jobs_get_error_codes_and_heartbeats_keep_slow_jobs_alive():
    from portrait_style.daemon.server import DaemonServer

    server = DaemonServer(_FlakyPipeline(), endpoint="tcp://127.0.0.1:*", heartbeat_s=0.2)
    endpoint = server.bind()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with DaemonClient(endpoint, timeout_s=0.6) as client:
            with pytest.raises(errors.DaemonError) as info:
                client.stylize(_image(8, 8, 3), STYLE, outputs=["background"])
            assert info.value.code == errors.INTERNAL and "boom" in info.value.message
            with pytest.raises(errors.DaemonError) as info:
                client.stylize(_image(8, 8, 3), STYLE, outputs=["background"])
            assert (info.value.code, info.value.field) == (errors.BAD_PARAMS, "style")
            # 1 s of silence from the pipeline, 0.6 s client timeout: heartbeats carry it
            reply = client.stylize(_image(8, 8, 3), STYLE, outputs=["background"])
            assert reply.layers["background"].shape == (8, 8, 3)
            # a layer the pipeline forgot is an internal error, not a hang
            with pytest.raises(errors.DaemonError, match="did not return the 'mask'"):
                client.stylize(_image(8, 8, 3), STYLE, outputs=["mask"])
            assert client.ping() < 0.5
    finally:
        server.stop()
        thread.join(10)
    assert not thread.is_alive()


# -------------------------------------------------------------- the real pipeline


def test_real_pipeline_round_trip_on_a_portrait(tmp_path):
    from PIL import Image

    portrait = DATA / "content" / "grace_hopper.jpg"
    painting = DATA / "style" / "van_gogh_starry_night.jpg"
    if not (portrait.exists() and painting.exists()):
        pytest.skip(f"test images absent under {DATA}")
    content = Image.open(portrait).convert("RGB")
    content.thumbnail((256, 256))
    style = Image.open(painting).convert("RGB")
    style.thumbnail((256, 256))
    content_px, style_px = np.asarray(content), np.asarray(style)
    with running(tmp_path / "real", "--device", "cpu") as daemon, \
            DaemonClient(daemon.endpoint, timeout_s=60) as client:
        hello = client.hello()
        assert hello["engines"]["active"] != "noop"
        stages: list[str] = []
        reply = client.stylize(content_px, style_px,
                               on_progress=lambda s, f: stages.append(s))
    assert set(reply.layers) == {"background", "portrait", "mask", "composite"}
    for name in ("background", "portrait", "composite"):
        assert reply.layers[name].shape == content_px.shape
    mask = reply.layers["mask"]
    assert mask.shape == content_px.shape[:2]
    assert reply.info["person_found"] is True
    assert 0.05 < (mask > 127).mean() < 0.95
    # stylized, not echoed: the background pass changes the photo a lot
    diff = np.abs(reply.layers["background"].astype(int) - content_px.astype(int)).mean()
    assert diff > 10
    assert len(stages) >= 3


@pytest.mark.slow
def test_missing_segmenter_file_stops_start_with_a_clear_message(tmp_path):
    """A torchvision segmenter whose file cannot be fetched: exit 1, the file named, no
    traceback (this machine cannot reach download.pytorch.org; where it can, skip)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "portrait_style", "serve", "--segmenter",
             "lraspp_mobilenet_v3_large", "--bind", "tcp://127.0.0.1:*"],
            env=isolated_env(tmp_path, PORTRAIT_STYLE_WEIGHTS_CACHE=str(tmp_path / "cache")),
            capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:  # it fetched the file and kept serving
        pytest.skip("the torchvision file could be fetched here")
    assert proc.returncode == 1
    assert "lraspp_mobilenet_v3_large-d234d4ea.pth" in proc.stderr
    assert "portrait-style weights add" in proc.stderr
    assert "Traceback" not in proc.stderr
