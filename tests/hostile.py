"""A hostile peer for daemon tests: raw ZMTP over TCP, and the daemon's RSS.

Why raw: pyzmq never puts an unfinished multipart message on the wire (it
flushes whole messages), but an attacker's own code can. This speaks just
enough ZMTP 3.1 (NULL mechanism) to open a DEALER connection and then send
frames with the MORE flag that never end, or declare a frame and stall in it.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

__all__ = ["RawPeer", "rss_bytes", "settled_rss"]

_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


class RawPeer:
    """One TCP connection speaking ZMTP 3.1 NULL as a DEALER."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0) -> None:
        host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 1])
                    + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
        self.sock.sendall(greeting)
        self.peer_greeting = self._recv_exact(64)
        body = b"\x05READY" + _property(b"Socket-Type", b"DEALER")
        self.sock.sendall(bytes([_COMMAND, len(body)]) + body)

    def send_frame(self, payload: bytes, *, more: bool) -> None:
        flags = (_MORE if more else 0) | _LONG
        self.sock.sendall(bytes([flags]) + struct.pack(">Q", len(payload)) + payload)

    def declare_frame(self, size: int, sent: bytes = b"") -> None:
        """Announce a frame of ``size`` bytes, send only ``sent`` of it, and stall."""
        self.sock.sendall(bytes([_MORE | _LONG]) + struct.pack(">Q", size) + sent)

    def closed_by_peer(self, within_s: float) -> bool:
        """Whether the daemon closes this connection within ``within_s`` seconds."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()

    def _recv_exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed during the greeting")
            data += chunk
        return data


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss(pid: int, wait_s: float = 1.0) -> int:
    """RSS after ``wait_s`` seconds (lets the daemon's I/O threads catch up)."""
    time.sleep(wait_s)
    return rss_bytes(pid)
