"""CurveZMQ keys for remote daemons: where they live and how a client uses them.

Why here (protocol, not daemon): every host's client needs its own key pair and
the daemon's public key to reach a remote daemon, and hosts import only the
protocol package (pyzmq's ``zmq.auth`` certificate files need nothing else).

One folder layout for both sides, under ``<config dir>/keys`` (``KeyFolders``):

- ``server/server.key_secret`` (+ ``server.key``): the daemon's key pair;
- ``allowed/NAME.key``: the clients' public keys the daemon lets in;
- ``client/client.key_secret`` (+ ``client.key``): this user's client pair;
- ``client/server.key``: the public key of the daemon this user talks to.

Files are ZeroMQ certificates (``zmq.auth.create_certificates``); secret key
files are readable by their owner only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

__all__ = ["CurveClientKeys", "KeyFolders", "create_key_pair", "keys_from_settings"]


@dataclass(frozen=True)
class KeyFolders:
    """The key folders under ``root`` (default: ``<config dir>/keys``)."""

    root: Path

    @classmethod
    def default(cls) -> KeyFolders:
        from .. import paths

        return cls(paths.config_dir() / "keys")

    @property
    def server(self) -> Path:
        return self.root / "server"

    @property
    def allowed(self) -> Path:
        return self.root / "allowed"

    @property
    def client(self) -> Path:
        return self.root / "client"

    @property
    def server_secret(self) -> Path:
        return self.server / "server.key_secret"

    @property
    def client_secret(self) -> Path:
        return self.client / "client.key_secret"

    @property
    def trusted_server(self) -> Path:
        """The daemon's public key as this user's client knows it."""
        return self.client / "server.key"


def create_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into ``folder``; the secret owner-only.

    Refuses to overwrite an existing pair: replacing a daemon's or a client's
    keys locks out everyone who trusts the old ones, so it must be deliberate
    (delete the files first).
    """
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise FileExistsError(f"{secret} already exists; delete it first to make a new pair")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        made_public, made_secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old_umask)
    os.chmod(made_public, 0o644)
    return Path(made_public), Path(made_secret)


@dataclass(frozen=True)
class CurveClientKeys:
    """A client's CURVE key pair and the daemon's public key (z85 bytes, 40 chars each)."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_files(cls, client_secret: Path, server_public: Path) -> CurveClientKeys:
        """Read the client's ``.key_secret`` and the daemon's ``.key``.

        Raises ``ValueError`` naming the file at fault (missing, or no secret key).
        """
        try:
            public, secret = zmq.auth.load_certificate(client_secret)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the client key pair {client_secret}: {exc} (create "
                             "one with 'portrait-style keys create client')") from exc
        if not secret:
            raise ValueError(f"{client_secret} has no secret key: pass the .key_secret file")
        try:
            server, _ = zmq.auth.load_certificate(server_public)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the daemon's public key {server_public}: {exc} "
                             "(get server.key from the daemon's owner)") from exc
        return cls(public=public, secret=secret, server_public=server)

    @classmethod
    def default(cls, server_public: Path | None = None,
                folders: KeyFolders | None = None) -> CurveClientKeys:
        """This user's client pair and the trusted daemon key (or ``server_public``)."""
        folders = folders or KeyFolders.default()
        return cls.from_files(folders.client_secret, server_public or folders.trusted_server)

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE client of the daemon (before connect)."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


def keys_from_settings(server_key: str | Path | None,
                       client_key: str | Path | None = None) -> CurveClientKeys | None:
    """The client keys a host's settings name (config file, ``--server-key``), or None.

    ``server_key``: the daemon's public key file; None means plaintext (a local
    daemon). ``client_key``: this user's ``.key_secret`` (default: the key folder's).
    """
    if not server_key:
        return None
    secret = Path(client_key) if client_key else KeyFolders.default().client_secret
    return CurveClientKeys.from_files(secret, Path(server_key))
