"""Pipeline benchmark: per-stage latency, end to end through the daemon, memory.

For each engine and size it measures, in a fresh process each (so peak memory is
that size's own):
- the first request (models just loaded: lazy allocations, kernel selection)
  and the median of the warm ones, with the pipeline's per-stage timings;
- peak process RSS, and CUDA max allocated on a GPU;
then, through a real daemon subprocess over tcp loopback, the end-to-end wall
time a host sees (request framing + decode + pipeline + reply), first and warm.

Engines: "magenta" (the embedded default) and "sanet". SANet runs on weights
from ``--sanet-dir`` or, when none are given, on random weights written in the
public layout (speed does not depend on the weight values: the table says so).

    .venv/bin/python bench/pipeline.py --quick            # < 2 min on a 2-core CPU
    .venv/bin/python bench/pipeline.py --sizes 512,1024,2048,4096 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from machine import machine_line, usable_cores

# as the product's entry point does, before torch loads OpenMP (see portrait_style/cli.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
STAGES = ("decode", "segment", "encode", "transform", "upsample", "compose", "encode_reply")


def sample_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled astronaut at size×size, and Starry Night."""
    from PIL import Image

    samples = REPO / "portrait_style" / "samples"
    content = Image.open(samples / "astronaut.jpg").convert("RGB")
    content = content.resize((size, size), Image.Resampling.BICUBIC)
    style = Image.open(samples / "starry_night.jpg").convert("RGB")
    return np.asarray(content).copy(), np.asarray(style).copy()


def random_sanet_dir() -> Path:
    """Random SANet weights in the public file layout (for speed only)."""
    import torch

    from portrait_style.daemon.models.sanet import SANetModel
    from portrait_style.weights.sanet_checkpoint import save_sanet

    folder = Path(tempfile.mkdtemp(prefix="bench-sanet-"))
    torch.manual_seed(0)
    save_sanet(SANetModel(), folder)
    return folder


def child(args: argparse.Namespace) -> None:
    """Measure one engine at one size in this process; print one JSON line."""
    import torch

    from portrait_style.daemon.jobspec import JobContext, StylizeJob
    from portrait_style.daemon.regions import resolve_regions
    from portrait_style.daemon.runtime import load_pipeline

    torch.set_num_threads(args.threads or torch.get_num_threads())
    start = time.perf_counter()
    pipeline, _ = load_pipeline(engine=args.engine, device=args.device,
                                sanet_weights_dir=args.sanet_dir)
    load_s = time.perf_counter() - start
    content, style = sample_pair(args.size)
    engine_name = pipeline.engine.name
    job = StylizeJob(content=content, style=style, style_key=f"bench-{style.shape}",
                     regions=resolve_regions(engine_name, {}))
    cuda = pipeline.describe().get("device", "cpu").startswith("cuda")

    def once() -> tuple[float, dict[str, float]]:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = pipeline.run(job, JobContext())
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, result.info.get("timings", {})

    first, first_stages = once()
    warm = [once() for _ in range(args.reps)]
    walls = [w for w, _ in warm]
    stages = {s: statistics.median(t.get(s, 0.0) for _, t in warm) for s in STAGES}
    print(json.dumps({
        "engine": engine_name, "size": args.size, "load_s": load_s, "first_s": first,
        "warm_s": statistics.median(walls), "stages": stages, "first_stages": first_stages,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_max_alloc_mb": (torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "device": pipeline.describe().get("device"),
    }))


def run_child(engine: str, size: int, args: argparse.Namespace,
              sanet_dir: Path | None) -> dict:
    command = [sys.executable, __file__, "--child", "--engine", engine, "--size", str(size),
               "--device", args.device, "--reps", str(args.reps)]
    if sanet_dir is not None:
        command += ["--sanet-dir", str(sanet_dir)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine}@{size} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: the layer size of the headline ratio (the product vs one plain onnxruntime pass)
RATIO_SIZE = 1024


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ratio_to_onnxruntime(client, args: argparse.Namespace,  # noqa: ANN001
                         daemon_pid: int | None = None) -> dict[str, float] | None:
    """The product's 1024² end to end over one onnxruntime whole-image pass, same machine.

    Numerator: a full job through the daemon (segment, both region passes, mask,
    every layer, framing both ways). Denominator: the same Magenta transformer's
    folded float graph in onnxruntime on the same photo, once, at the same size,
    with as many threads as the daemon's torch has: what a user would get from a
    generic runtime doing plain whole-image transfer. The two alternate (the
    daemon is idle while onnxruntime runs) so a busy machine slows both alike;
    ``ratio`` is of the wall-time minima, each side's least disturbed run.
    ``ratio_cpu`` is the same of CPU seconds (daemon + client process vs
    onnxruntime's process), which a machine shared with other jobs disturbs far
    less than wall time: on a quiet machine the two agree when both sides keep
    their threads equally busy.
    Returns None where it cannot be measured (no onnxruntime, a GPU run).
    """
    if args.device not in ("cpu", "auto") or _has_cuda():
        return None
    try:
        from magenta_speed import ort_feeds, ort_session
    except ImportError as exc:
        print(f"ratio_{RATIO_SIZE}: skipped ({exc})", file=sys.stderr)
        return None
    session = ort_session(args.threads or usable_cores())
    content, style = sample_pair(RATIO_SIZE)
    feeds = ort_feeds((content.astype(np.float32) / 255.0)[None],
                      np.random.default_rng(0).standard_normal((1, 100)).astype(np.float32))
    session.run(None, feeds)
    client.stylize(content, style)  # warm at this size
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(max(8, args.reps)):  # minima need a few undisturbed runs
        d0 = _cpu_seconds(daemon_pid) if daemon_pid else 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        client.stylize(content, style)
        ours.append(time.perf_counter() - t0)
        d1 = _cpu_seconds(daemon_pid) if daemon_pid else 0.0
        ours_cpu.append(time.process_time() - c0 + d1 - d0)
        c0, t0 = time.process_time(), time.perf_counter()
        session.run(None, feeds)
        theirs.append(time.perf_counter() - t0)
        theirs_cpu.append(time.process_time() - c0)
    out = {"e2e_min_s": min(ours), "e2e_median_s": statistics.median(ours),
           "ort_min_s": min(theirs), "ort_median_s": statistics.median(theirs),
           "ratio": min(ours) / min(theirs),
           "ratio_median": statistics.median(ours) / statistics.median(theirs)}
    if daemon_pid:
        out.update(e2e_cpu_s=min(ours_cpu), ort_cpu_s=min(theirs_cpu),
                   ratio_cpu=min(ours_cpu) / min(theirs_cpu))
    return out


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def print_ratio(ratio: dict[str, float]) -> str:
    line = (f"ratio_{RATIO_SIZE}={ratio['ratio']:.2f} (median {ratio['ratio_median']:.2f}; "
            f"end to end {1000 * ratio['e2e_min_s']:.0f} ms min / "
            f"{1000 * ratio['e2e_median_s']:.0f} ms median, onnxruntime one pass "
            f"{1000 * ratio['ort_min_s']:.0f} / {1000 * ratio['ort_median_s']:.0f} ms)")
    if "ratio_cpu" in ratio:
        line += (f"\nratio_{RATIO_SIZE}_cpu={ratio['ratio_cpu']:.2f} (CPU seconds: end to end "
                 f"{ratio['e2e_cpu_s']:.2f}, onnxruntime {ratio['ort_cpu_s']:.2f})")
    print(line, flush=True)
    return line


def through_daemon(engine: str, sizes: list[int], args: argparse.Namespace,
                   sanet_dir: Path | None, ratio: dict[str, float] | None = None
                   ) -> dict[int, tuple[float, float]]:
    """(first, warm median) end-to-end seconds per size through a daemon subprocess.

    For the Magenta engine on the CPU it also measures ``ratio_to_onnxruntime``
    into ``ratio`` (when given).
    """
    from portrait_style.protocol.client import DaemonClient

    with daemon_process(engine, args.device, sanet_dir) as (endpoint, daemon):
        results: dict[int, tuple[float, float]] = {}
        with DaemonClient(endpoint, timeout_s=600) as client:
            for size in sizes:
                content, style = sample_pair(size)
                walls = []
                for _ in range(args.reps + 1):
                    t0 = time.perf_counter()
                    client.stylize(content, style)
                    walls.append(time.perf_counter() - t0)
                results[size] = (walls[0], statistics.median(walls[1:]))
            if ratio is not None and engine == "magenta":
                ratio.update(ratio_to_onnxruntime(client, args, daemon.pid) or {})
        return results


@contextmanager
def daemon_process(engine: str, device: str, sanet_dir: Path | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``portrait-style serve`` subprocess on a free tcp port: (endpoint, process)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    ready = home / "ready"
    command = [sys.executable, "-m", "portrait_style", "serve", "--bind", endpoint,
               "--engine", engine, "--device", device, "--ready-file", str(ready)]
    if sanet_dir is not None:
        command += ["--weights-dir", str(sanet_dir)]
    env = dict(os.environ, PORTRAIT_STYLE_HOME=str(home))
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start:\n{daemon.stderr.read()[-2000:]}")
            time.sleep(0.1)
        yield endpoint, daemon
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="512² and 1024², 2 reps, magenta")
    parser.add_argument("--sizes", default="512,1024,2048,4096")
    parser.add_argument("--engines", default="magenta,sanet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--sanet-dir", type=Path, default=None)
    parser.add_argument("--no-daemon", action="store_true", help="skip the end-to-end runs")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--ratio-only", action="store_true",
                        help=f"only ratio_{RATIO_SIZE}= (the product through the daemon over "
                             "one onnxruntime pass)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="magenta", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.sizes, args.reps, args.engines = "512,1024", 2, "magenta"
    ratio: dict[str, float] = {}
    if args.ratio_only:
        through_daemon("magenta", [], args, None, ratio)
        print(f"Machine: {machine_line(args.device)}")
        if ratio:
            print_ratio(ratio)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = ["| engine | size | load s | first s | warm s | e2e first s | e2e warm s | "
            + " | ".join(STAGES) + " | peak RSS MB | CUDA max MB |",
            "|" + "---|" * (9 + len(STAGES))]
    for engine in args.engines.split(","):
        sanet_dir = args.sanet_dir
        label = engine
        if engine == "sanet" and sanet_dir is None:
            sanet_dir, label = random_sanet_dir(), "sanet (random weights, speed only)"
        e2e = {} if args.no_daemon else through_daemon(engine, sizes, args, sanet_dir, ratio)
        for size in sizes:
            r = run_child(engine, size, args, sanet_dir)
            first_e2e, warm_e2e = e2e.get(size, (float("nan"), float("nan")))
            stages = " | ".join(f"{1000 * r['stages'][s]:.0f} ms" for s in STAGES)
            cuda = f"{r['cuda_max_alloc_mb']:.0f}" if r["cuda_max_alloc_mb"] else "–"
            rows.append(f"| {label} | {size}² | {r['load_s']:.2f} | {r['first_s']:.3f} | "
                        f"{r['warm_s']:.3f} | {first_e2e:.3f} | {warm_e2e:.3f} | {stages} | "
                        f"{r['peak_rss_mb']:.0f} | {cuda} |")
            print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join([f"Machine: {machine_line(args.device)}", "", *rows])
    print(table)
    if ratio:
        table += "\n\n" + print_ratio(ratio)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
