"""What a hostile client costs the daemon (issue 13): memory and log growth per attack.

Run ``python bench/attacks.py`` to measure this installation. To measure an
older checkout, lay it out as a ``portrait_style`` package in a folder (its
``portrait_style/`` plus links to its ``protocol``, ``daemon``… folders inside),
``cd`` somewhere else and pass that folder: ``python bench/attacks.py FOLDER``.
Starts ``serve --engine noop`` on a free loopback port; prints one JSON line.
Loopback only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile import RawPeer, rss_bytes, settled_rss  # noqa: E402

MIB = 1 << 20


def _stylize(request_id: str, content: bytes, shape: tuple[int, int, int],
             style: bytes = b"\1\2\3", **fields: Any) -> list[bytes]:
    height, width, channels = shape
    frames = [{"name": "content", "width": width, "height": height, "channels": channels,
               "dtype": "uint8", "stride": width * channels},
              {"name": "style", "width": 1, "height": 1, "channels": 3, "dtype": "uint8",
               "stride": len(style)}]
    header = {"v": 1, "kind": "stylize", "id": request_id, "frames": frames,
              "outputs": ["background"], **fields}
    return [msgpack.packb(header), content, style]


def _final(sock: zmq.Socket) -> dict[str, Any]:
    while sock.poll(20_000):
        header = msgpack.unpackb(sock.recv_multipart()[0])
        if header["kind"] in ("result", "error"):
            return header
    raise TimeoutError("no final reply")


def main(package_path: str = "") -> dict[str, Any]:
    home = Path(tempfile.mkdtemp())
    ready = home / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STYLE")}
    env.update(PORTRAIT_STYLE_HOME=str(home), PYTHONPATH=package_path)
    with open(home / "stderr.txt", "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portrait_style", "serve", "--engine", "noop", "--bind",
             "tcp://127.0.0.1:*", "--ready-file", str(ready)],
            env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=sink)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError((home / "stderr.txt").read_text())
            time.sleep(0.05)
        return _measure(json.loads(ready.read_text())["endpoint"], proc.pid, home)
    finally:
        proc.terminate()
        proc.wait(15)


def _measure(endpoint: str, pid: int, home: Path) -> dict[str, Any]:
    ctx = zmq.Context.instance()

    def dealer(**options: int) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name), value)
        sock.connect(endpoint)
        return sock

    out: dict[str, Any] = {}
    sock = dealer()
    base = settled_rss(pid, 0.3)
    for index in range(24):  # 1×1 styles on a 16 MiB stride
        sock.send_multipart(_stylize(f"st{index}", bytes(12), (2, 2, 3),
                                     style=bytes([index, 7, 9]) + bytes(16 * MIB - 3)))
        _final(sock)
    out["style_cache_24x16MiB_stride_growth_MiB"] = (settled_rss(pid, 0.5) - base) >> 20
    sock.close()

    base = settled_rss(pid, 0.3)
    sock = dealer(RCVHWM=1, RCVBUF=4096)  # a client that never reads
    for index in range(24):
        sock.send_multipart(_stylize(f"nr{index}", bytes(16 * MIB), (2048, 2048, 4)))
        time.sleep(0.1)
    peak = max(rss_bytes(pid), settled_rss(pid, 1.0))
    out["unread_24x16MiB_results_growth_MiB"] = (peak - base) >> 20
    sock.close()
    time.sleep(1.0)

    log = home / "state" / "logs" / "serve.log"
    before, longest = log.stat().st_size, 0
    sock = dealer()
    for index in range(400):
        sock.send_multipart(_stylize(f"l{index}", bytes(12), (2, 2, 3),
                                     regions={"portrait": {"strength": "x" * 60_000}}))
        longest = max(longest, len(_final(sock)["message"]))
    out["log_growth_kB_400_refusals_60kB"] = (log.stat().st_size - before) // 1024
    out["longest_refusal_chars"] = longest

    nested: Any = 1
    for _ in range(500):
        nested = [nested]
    frames = _stylize("deep", bytes(12), (2, 2, 3))
    header = msgpack.unpackb(frames[0])
    header["frames"][0]["width"] = nested
    sock.send_multipart([msgpack.packb(header), *frames[1:]])
    reply = _final(sock)
    out["deep_nesting_500"] = [reply["code"], reply["id"]]
    sock.close()

    peer = RawPeer(endpoint)
    base = settled_rss(pid, 0.3)
    for _ in range(4):
        peer.send_frame(bytes(16 * MIB), more=True)
    out["plaintext_unfinished_multipart_4x16MiB_growth_MiB"] = (
        settled_rss(pid, 0.5) - base) >> 20
    peer.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2])))
