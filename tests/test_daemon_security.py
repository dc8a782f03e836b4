"""CurveZMQ on the daemon: who gets in, what strangers cost, and the keys command.

Loopback only: a CURVE daemon on 127.0.0.1 behaves exactly like one on a
network address (the bind policy that demands CURVE there is tested too).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq.auth
from daemon_harness import Daemon, isolated_env, run_cli, running
from hostile import RawPeer, settled_rss

from portrait_style.protocol import errors
from portrait_style.protocol.client import DaemonClient
from portrait_style.protocol.curve import CurveClientKeys, KeyFolders, create_key_pair

pytestmark = pytest.mark.slow

IMAGE = np.full((8, 8, 3), 7, np.uint8)
MIB = 1 << 20


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> KeyFolders:
    """A daemon pair, one allowed client ('alice') and one stranger ('mallory')."""
    folders = KeyFolders(tmp_path_factory.mktemp("keys"))
    env = isolated_env(folders.root / "home")
    for args in (["create", "server"], ["create", "client"],
                 ["allow", str(folders.client / "client.key"), "--name", "alice"],
                 ["trust-server", str(folders.server / "server.key")]):
        proc = run_cli("keys", ["--dir", str(folders.root), *args], env)
        assert proc.returncode == 0, proc.stderr
    create_key_pair(folders.root / "mallory", "client")
    return folders


@pytest.fixture(scope="module")
def curve_daemon(keys, tmp_path_factory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("curve"), "--engine", "noop", "--server-keys",
                 str(keys.server_secret), "--allowed-keys", str(keys.allowed)) as daemon:
        yield daemon


def _stranger(keys: KeyFolders) -> CurveClientKeys:
    return CurveClientKeys.from_files(keys.root / "mallory" / "client.key_secret",
                                      keys.trusted_server)


def test_allowed_client_gets_results(keys, curve_daemon):
    with DaemonClient(curve_daemon.endpoint, timeout_s=10,
                      curve=CurveClientKeys.default(folders=keys)) as client:
        assert client.ping() < 5
        reply = client.stylize(IMAGE, IMAGE, outputs=["background"])
        assert np.array_equal(reply.layers["background"], IMAGE)


@pytest.mark.parametrize("who", ["unknown key", "plaintext"])
def test_strangers_get_nothing(keys, curve_daemon, who):
    curve = _stranger(keys) if who == "unknown key" else None
    with DaemonClient(curve_daemon.endpoint, timeout_s=1.5, curve=curve) as client, \
            pytest.raises(errors.DaemonUnreachable):
        client.ping()


def test_unknown_key_is_refused_in_the_handshake(keys, curve_daemon):
    with DaemonClient(curve_daemon.endpoint, timeout_s=1.0, curve=_stranger(keys)) as client, \
            pytest.raises(errors.DaemonUnreachable):
        client.ping()
    deadline = time.monotonic() + 10
    while "CURVE handshake refused" not in curve_daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "CURVE handshake refused" in curve_daemon.log()


def test_stranger_frames_cost_nothing(curve_daemon):
    """A plaintext peer pushing an endless multipart message is cut at the greeting."""
    pid = curve_daemon.proc.pid
    before = settled_rss(pid, 0.3)
    sent = 0
    try:
        peer = RawPeer(curve_daemon.endpoint)
        for _ in range(8):
            peer.send_frame(b"\0" * (16 * MIB), more=True)
            sent += 1
        peer.close()
    except OSError:
        pass  # the daemon hung up on us (at the greeting): what we want
    grown = settled_rss(pid, 0.5) - before
    assert sent < 8, "the daemon took 128 MiB of frames from a stranger"
    # a plaintext daemon holds all 128 MiB of this unfinished message
    assert grown < 24 * MIB, f"daemon grew {grown / MIB:.0f} MiB"


def test_revoked_client_cannot_connect_again(keys, tmp_path):
    """Allow, connect, revoke: the next connection is refused without a restart."""
    folders = KeyFolders(tmp_path / "k")
    create_key_pair(folders.server, "server")
    create_key_pair(folders.client, "client")
    env = isolated_env(tmp_path / "home")
    assert run_cli("keys", ["--dir", str(folders.root), "allow",
                            str(folders.client / "client.key"), "--name", "bob"],
                   env).returncode == 0
    curve = CurveClientKeys.from_files(folders.client_secret, folders.server / "server.key")
    with running(tmp_path / "d", "--engine", "noop", "--server-keys",
                 str(folders.server_secret), "--allowed-keys", str(folders.allowed)) as daemon:
        with DaemonClient(daemon.endpoint, timeout_s=10, curve=curve) as client:
            client.ping()
        proc = run_cli("keys", ["--dir", str(folders.root), "revoke", "bob"], env)
        assert proc.returncode == 0, proc.stderr
        with DaemonClient(daemon.endpoint, timeout_s=1.5, curve=curve) as client, \
                pytest.raises(errors.DaemonUnreachable):
            client.ping()


def test_curve_daemon_may_bind_any_address(keys, tmp_path):
    """With a key pair the bind policy lets a non-loopback address through (checked, not bound)."""
    from portrait_style.daemon.security import ServerKeys, check_bind_allowed

    check_bind_allowed("tcp://0.0.0.0:5599", ServerKeys.load(keys.server_secret, keys.allowed))
    with pytest.raises(ValueError, match="without a CURVE key pair"):
        check_bind_allowed("tcp://0.0.0.0:5599", None)


def test_serve_refuses_a_missing_key_pair(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "portrait_style", "serve", "--engine", "noop", "--curve",
         "--bind", "tcp://127.0.0.1:*"], env=isolated_env(tmp_path), capture_output=True,
        text=True, timeout=60)
    assert proc.returncode == 2
    assert "server.key_secret" in proc.stderr


def test_keys_command_refuses_secrets_and_overwrites(tmp_path):
    folders = KeyFolders(tmp_path / "k")
    env = isolated_env(tmp_path / "home")
    run = lambda *args: run_cli("keys", ["--dir", str(folders.root), *args], env)  # noqa: E731
    assert run("create", "client").returncode == 0
    again = run("create", "client")
    assert again.returncode == 1 and "already exists" in again.stderr
    secret = run("allow", str(folders.client_secret))
    assert secret.returncode == 1 and "secret key" in secret.stderr
    assert (folders.client_secret.stat().st_mode & 0o077) == 0
    listing = run("list").stdout
    public = zmq.auth.load_certificate(folders.client / "client.key")[0].decode()
    assert public in listing and "allowed clients (0" in listing
    assert run("revoke", "nobody").returncode == 1


def test_client_keys_name_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match="keys create client"):
        CurveClientKeys.from_files(tmp_path / "none.key_secret", tmp_path / "server.key")


def test_command_line_reaches_a_curve_daemon_with_server_key(tmp_path):
    from PIL import Image

    home = tmp_path / "artist"
    env = isolated_env(home)
    assert run_cli("keys", ["create", "client"], env).returncode == 0   # default key folder
    daemon_keys = KeyFolders(tmp_path / "studio")
    create_key_pair(daemon_keys.server, "server")
    artist_public = home / "config" / "keys" / "client" / "client.key"
    assert run_cli("keys", ["--dir", str(daemon_keys.root), "allow", str(artist_public)],
                   env).returncode == 0
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.new("RGB", (16, 12), (200, 100, 50)).save(photo)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(painting)
    with running(tmp_path / "d", "--engine", "noop", "--server-keys",
                 str(daemon_keys.server_secret), "--allowed-keys",
                 str(daemon_keys.allowed)) as daemon:
        args = [str(photo), "--style", str(painting), "--connect", daemon.endpoint,
                "--timeout", "3"]
        done = run_cli("stylize", [*args, "--out", str(tmp_path / "out"), "--server-key",
                                   str(daemon_keys.server / "server.key")], env)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out" / "background.png").exists()
        refused = run_cli("stylize", [*args, "--out", str(tmp_path / "plain")], env)
        assert refused.returncode != 0 and not (tmp_path / "plain" / "background.png").exists()


def test_revoke_shuts_out_a_connection_held_open(tmp_path):
    """Issue 23 case 3: a connection opened before ``keys revoke`` is refused within seconds.

    Before, 6 of 6 jobs on such a connection were served for the next 15 s. Now the
    running job is cancelled with ``auth_failed`` and every later message on the same
    connection is refused the same way.
    """
    folders = KeyFolders(tmp_path / "k")
    create_key_pair(folders.server, "server")
    create_key_pair(folders.client, "client")
    env = isolated_env(tmp_path / "home")
    assert run_cli("keys", ["--dir", str(folders.root), "allow",
                            str(folders.client / "client.key"), "--name", "carol"],
                   env).returncode == 0
    curve = CurveClientKeys.from_files(folders.client_secret, folders.server / "server.key")
    with running(tmp_path / "d", "--engine", "noop", "--noop-delay", "30", "--server-keys",
                 str(folders.server_secret), "--allowed-keys", str(folders.allowed)) as daemon, \
            DaemonClient(daemon.endpoint, timeout_s=60, curve=curve) as client:
        client.ping()  # the connection is made and authenticated
        outcome: dict[str, object] = {}

        def long_job() -> None:
            try:
                client.stylize(IMAGE, IMAGE, outputs=["background"])
                outcome["served"] = True
            except errors.ProtocolError as exc:
                outcome["error"] = exc
                outcome["at"] = time.monotonic()

        worker = threading.Thread(target=long_job)
        worker.start()
        time.sleep(1.0)  # the job runs (30 s) on the connection made before the revoke
        proc = run_cli("keys", ["--dir", str(folders.root), "revoke", "carol"], env)
        assert proc.returncode == 0, proc.stderr
        revoked = time.monotonic()
        worker.join(10)
        assert not worker.is_alive(), "the running job was not stopped by the revoke"
        assert "served" not in outcome
        error = outcome["error"]
        assert isinstance(error, errors.AuthFailed) and "revoked" in error.message, error
        print(f"running job refused {outcome['at'] - revoked:.2f} s after the revoke")
        assert outcome["at"] - revoked < 3.0
        # the same connection, a new request: refused, not served
        with pytest.raises(errors.AuthFailed, match="revoked"):
            client.stylize(IMAGE, IMAGE, outputs=["background"], timeout_s=5)
        with pytest.raises(errors.AuthFailed):
            client.ping()
