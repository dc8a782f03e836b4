"""Who may talk to the daemon: the bind policy and CurveZMQ authentication (SPEC.md §9).

Why CURVE and ZAP rather than a check in the socket loop: with CURVE, ZeroMQ
authenticates a peer in the handshake, before it may send a single message
frame. A stranger (unknown key, or no CURVE at all) therefore costs the daemon
one handshake and nothing else: no frame of it is ever buffered, decoded or
logged. The socket loop only ever sees peers that are already allowed.

Keys are ZeroMQ certificate files (``zmq.auth.create_certificates``): the daemon
has one key pair, and a folder of the clients' public keys it allows. The folder
is read again whenever it changes, so ``portrait-style keys allow/revoke`` takes
effect for the next connection without restarting the daemon. A revoke also
reaches connections already made: ZeroMQ stamps every message with the key its
connection authenticated with (the ZAP ``User-Id``), and the socket loop checks
it against the current folder (``AllowedKeys.allows``, at most
``RECHECK_S`` old) for every message and, once a second, for every peer with a
job in the queue (SPEC.md §9).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..protocol import errors
from ..protocol.constants import DEFAULT_ENDPOINT
from ..protocol.errors import WireError

__all__ = ["AllowedKeys", "CurveGate", "ServerKeys", "TokenGate", "ZAP_DOMAIN",
           "check_bind_allowed", "is_loopback_endpoint"]

log = logging.getLogger(__name__)

#: the ZAP domain the daemon's socket authenticates in
ZAP_DOMAIN = "portrait-style"
#: how old the allowed folder's view may be when a message's key is checked (seconds)
RECHECK_S = 0.5


@dataclass(frozen=True)
class ServerKeys:
    """The daemon's CURVE key pair (z85 bytes) and the folder of allowed client keys."""

    public: bytes
    secret: bytes
    allowed_dir: Path

    @classmethod
    def load(cls, secret_file: Path, allowed_dir: Path) -> ServerKeys:
        """Read a ``.key_secret`` certificate; the allowed folder must exist.

        Raises ``ValueError`` naming the file when it is missing or holds no
        secret key, so ``serve`` can end its start with one clear line.
        """
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the daemon's key pair {secret_file}: {exc}") from exc
        if not secret:
            raise ValueError(f"{secret_file} holds only a public key; the daemon needs its "
                             "secret key file (NAME.key_secret)")
        if not allowed_dir.is_dir():
            raise ValueError(f"the folder of allowed client keys {allowed_dir} does not exist "
                             "(portrait-style keys allow CLIENT.key creates it)")
        return cls(public=public, secret=secret, allowed_dir=allowed_dir)

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE server in our ZAP domain (before bind)."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True
        socket.zap_domain = ZAP_DOMAIN.encode()


def check_bind_allowed(endpoint: str, curve: ServerKeys | None) -> None:
    """Refuse to listen beyond this machine without CURVE (SPEC.md §9).

    A token alone is not enough off loopback: it travels in clear with every
    request, and every pixel with it.
    """
    if curve is None and not is_loopback_endpoint(endpoint):
        raise ValueError(
            f"refusing to bind {endpoint} without a CURVE key pair: anyone who can reach "
            "it could run jobs on this machine and read the pixels on the way. Create one "
            "with 'portrait-style keys create server', allow each client's public key with "
            "'portrait-style keys allow CLIENT.key', and start with --curve (or bind a "
            f"loopback address such as {DEFAULT_ENDPOINT}).")


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


class TokenGate:
    """The shared token on ``stylize`` and ``cancel`` (SPEC.md §9 "Token"), if one is set."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def accepts(self, offered: str | None) -> bool:
        """Constant-time comparison; everything is accepted when no token is set."""
        if self._token is None:
            return True
        return hmac.compare_digest((offered or "").encode(), self._token)

    def require(self, offered: str | None) -> None:
        if not self.accepts(offered):
            raise WireError("this daemon requires a token: set PORTRAIT_STYLE_TOKEN or the "
                            "plug-in's token setting to the daemon's", code=errors.AUTH_FAILED,
                            field="token")


class AllowedKeys:
    """The allowed client public keys, re-read when the folder changes.

    Used as pyzmq's CURVE credentials provider: ``callback(domain, key)`` is
    asked once per handshake, with the client's public key in z85.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._checked = float("-inf")

    def keys(self) -> frozenset[bytes]:
        """The allowed keys now (z85); an unreadable folder allows nobody."""
        with self._lock:
            try:
                stat = self.folder.stat()
                # mtime and the number of entries: an allow and a revoke within one
                # mtime tick still change one of them
                stamp = (stat.st_mtime_ns, sum(1 for _ in self.folder.iterdir()))
            except OSError as exc:
                log.warning("allowed keys folder %s unreadable (%s): refusing every client",
                            self.folder, exc)
                self._stamp, self._keys = None, frozenset()
                return self._keys
            if stamp != self._stamp:
                self._keys = frozenset(_read_public_keys(self.folder))
                self._stamp = stamp
            return self._keys

    def allows(self, user_id: str | bytes | None) -> bool:
        """Whether the key a message came with (its ZAP ``User-Id``, z85) is allowed now.

        The folder is looked at again when the last look is older than
        ``RECHECK_S``: a message costs at most a ``stat`` and a directory listing
        twice a second, and a revoke bites within that time.
        """
        if not user_id:
            return False
        key = user_id.encode("ascii", "replace") if isinstance(user_id, str) else user_id
        now = time.monotonic()
        if now - self._checked > RECHECK_S:
            self._checked = now
            return key in self.keys()
        return key in self._keys

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = domain == ZAP_DOMAIN and key in self.keys()
        if not allowed:
            log.info("CURVE handshake refused: client key %s… is not allowed",
                     key[:8].decode("ascii", "replace"))
        return allowed


def _read_public_keys(folder: Path) -> list[bytes]:
    keys = []
    for path in sorted(folder.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as exc:
            log.warning("ignoring allowed key file %s: %s", path, exc)
            continue
        keys.append(public)
    return keys


class CurveGate:
    """The ZAP authenticator thread for one context (start before bind, stop after close)."""

    def __init__(self, context: zmq.Context, keys: ServerKeys) -> None:
        self.keys = keys
        self.allowed = AllowedKeys(keys.allowed_dir)
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(__name__ + ".zap"))

    def start(self) -> None:
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self.allowed)
        log.info("CURVE on: %d allowed client key(s) in %s", len(self.allowed.keys()),
                 self.keys.allowed_dir)

    def stop(self) -> None:
        if self._auth.is_alive():
            self._auth.stop()
