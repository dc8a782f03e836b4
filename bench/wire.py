"""Wire overhead: a 16 MP RGBA layer through the daemon vs a bare ZeroMQ echo.

What it answers: does the protocol (msgpack header, checks, job queue, worker
thread hand-off, typed messages, client) add cost beyond moving the bytes? Both
sides move the same 64 MiB each way over the same transport:

- daemon: ``DaemonClient.stylize`` against ``portrait-style serve --engine noop``
  (the content comes back as the ``background`` layer; no model runs);
- echo: a DEALER sends the bytes to a ROUTER in another process that sends
  the received frames straight back (``copy=False`` both ways).

Prints a markdown table (median of ``--rounds`` round trips per row,
echoes and daemon calls taken in turns so load swings hit both alike) and, as
the last line, ``overhead_ratio=<daemon / echo>`` for the worse transport.
Target: ≤ 1.2.

    .venv/bin/python bench/wire.py [--rounds 15] [--megapixels 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zmq

from portrait_style.protocol.client import DaemonClient


def echo_server(endpoint: str) -> None:
    """Bare ROUTER echo (run in a subprocess): frames back as received, no copies."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        frames = sock.recv_multipart(copy=False)
        if frames[1].bytes == b"stop":
            break
        sock.send_multipart(frames, copy=False)
    sock.close(linger=0)
    ctx.term()


def _interleaved_medians(fns: list[Callable[[], None]], rounds: int) -> list[float]:
    """Median time of each function, run in turns so load swings hit all alike."""
    for fn in fns:
        fn()  # warm-up: connection, the daemon's style cache, page faults
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, series in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            series.append(time.perf_counter() - start)
    return [statistics.median(series) for series in times]


@contextlib.contextmanager
def echo_peer(endpoint: str) -> Iterator[Callable[[np.ndarray], None]]:
    """A bare echo process and a function doing one round trip through it."""
    proc = subprocess.Popen([sys.executable, __file__, "--echo", endpoint],
                            stdout=subprocess.PIPE, text=True)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(proc.stdout.readline().strip())

        def once(content: np.ndarray) -> None:
            sock.send_multipart([b"header", memoryview(content).cast("B")], copy=False)
            frames = sock.recv_multipart(copy=False)
            back = np.frombuffer(frames[1].buffer, np.uint8)
            assert back.size == content.size

        yield once
        sock.send_multipart([b"stop"])
        proc.wait(10)
    finally:
        sock.close(linger=0)
        if proc.poll() is None:
            proc.kill()


@contextlib.contextmanager
def daemon_peer(endpoint: str, home: Path) -> Iterator[Callable[[np.ndarray, np.ndarray], None]]:
    """A noop daemon process and a function doing one stylize through it."""
    ready = home / f"ready-{time.monotonic_ns()}.json"
    env = dict(os.environ, PORTRAIT_STYLE_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "portrait_style", "serve", "--engine", "noop", "--bind",
         endpoint, "--ready-file", str(ready)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the noop daemon did not start")
            time.sleep(0.05)
        with DaemonClient(json.loads(ready.read_text())["endpoint"], timeout_s=60) as client:

            def once(content: np.ndarray, style: np.ndarray) -> None:
                reply = client.stylize(content, style, outputs=["background"])
                assert reply.layers["background"].shape == content.shape

            yield once
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--megapixels", type=float, default=16.0)
    parser.add_argument("--echo", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        echo_server(args.echo)
        return 0
    side = int(round((args.megapixels * 1024 * 1024) ** 0.5))
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, size=(side, side, 4), dtype=np.uint8)
    style = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    mib = content.nbytes / 2**20
    rows = []
    with tempfile.TemporaryDirectory(prefix="ps-wire-") as tmp:
        home = Path(tmp)
        transports = {"tcp loopback": lambda: "tcp://127.0.0.1:*",
                      "ipc": lambda: f"ipc://{home}/wire-{time.monotonic_ns()}.sock"}
        for name, endpoint in transports.items():
            with echo_peer(endpoint()) as echo, daemon_peer(endpoint(), home) as daemon:
                echo_s, daemon_s = _interleaved_medians(
                    [lambda: echo(content), lambda: daemon(content, style)], args.rounds)
            rows.append((name, echo_s, daemon_s))
    print(f"### Wire round trip: {side}×{side} RGBA ({mib:.0f} MiB each way), "
          f"median of {args.rounds} interleaved\n")
    print("| transport | bare echo (ms) | daemon noop (ms) | daemon / echo | daemon GB/s |")
    print("|---|---:|---:|---:|---:|")
    for name, echo, daemon in rows:
        rate = 2 * content.nbytes / daemon / 1e9
        print(f"| {name} | {echo * 1e3:.1f} | {daemon * 1e3:.1f} | {daemon / echo:.2f} | "
              f"{rate:.2f} |")
    ratio = max(daemon / echo for _, echo, daemon in rows)
    print(f"\noverhead_ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
