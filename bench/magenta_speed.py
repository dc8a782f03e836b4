"""Magenta transformer speed: our torch module vs onnxruntime on the same folded float graph.

Why this comparison: onnxruntime on the folded graph is the best generic CPU runtime
for exactly these weights, so it is the bar the hand-written module has to meet
(the target is torch ≤ 1.5× onnxruntime). Runs alternate between the two so that a
busy machine slows both alike; the table shows medians and minima.

    .venv/bin/python bench/magenta_speed.py [--sizes 512 1024] [--runs 5] [--threads 2]

Needs onnxruntime (a test dependency, never imported by the product).
"""

from __future__ import annotations

import os

# libgomp's default spin-wait makes every parallel op wait out a scheduler slice
# when the cores are shared (measured here: 2 threads, 512², ~1000 ms spinning vs
# ~220 ms passive, on a 2-core machine with other load). Must be set before torch
# loads OpenMP; set OMP_WAIT_POLICY=ACTIVE yourself to measure the spinning case.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from portrait_style.daemon.models.magenta import BOTTLENECK_DIM, StyleTransformer  # noqa: E402
from portrait_style.weights.convert_magenta import (  # noqa: E402
    CONVERTER_VERSION,
    convert_transformer,
    write_folded_float,
)
from portrait_style.weights.fetch import fetch_file, load_converted  # noqa: E402


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def ort_session(threads: int, spinning: bool = False):  # noqa: ANN201 (onnxruntime type)
    """onnxruntime on the folded float graph of the Magenta transformer (CPU, ``threads``).

    Shared with bench/pipeline.py, whose ``ratio_1024`` is measured against it.
    Spinning off by default: alternating with torch's OpenMP threads on few cores,
    onnxruntime's spin-waiting after each run would steal torch's time slices.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory() as tmp:
        folded = write_folded_float(fetch_file("magenta_transform"), Path(tmp) / "float.onnx")
        return ort.InferenceSession(str(folded), options, providers=["CPUExecutionProvider"])


def ort_feeds(content: np.ndarray, bottleneck: np.ndarray) -> dict[str, np.ndarray]:
    """The graph's inputs: content [1,H,W,3] float 0..1 (NHWC), bottleneck [1,100]."""
    return {"content_image": content,
            "mobilenet_conv/Conv/BiasAdd": bottleneck.reshape(1, 1, 1, -1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ort-spinning", action="store_true",
                        help="leave onnxruntime's spin-waiting on (its default)")
    args = parser.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    model = StyleTransformer().eval()
    model.load_state_dict(load_converted("magenta_transform", convert_transformer,
                                         CONVERTER_VERSION))
    model = model.to(memory_format=torch.channels_last)
    session = ort_session(args.threads, args.ort_spinning)

    rng = np.random.default_rng(0)
    bottleneck = rng.standard_normal((1, BOTTLENECK_DIM)).astype(np.float32)
    rows = []
    for size in args.sizes:
        content = rng.random((1, size, size, 3), dtype=np.float32)
        feeds = ort_feeds(content, bottleneck)
        x = torch.from_numpy(content).permute(0, 3, 1, 2)
        b = torch.from_numpy(bottleneck)
        with torch.inference_mode():
            model(x, b)  # warm-up: oneDNN primitive creation, allocator
            session.run(None, feeds)
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(_timed(lambda: model(x, b)))  # noqa: B023
                theirs.append(_timed(lambda: session.run(None, feeds)))  # noqa: B023
        rows.append((size, statistics.median(ours), min(ours),
                     statistics.median(theirs), min(theirs)))

    print(f"Magenta transformer, CPU, {args.threads} threads, {args.runs} alternating runs, "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"onnxruntime spinning {'on' if args.ort_spinning else 'off'}\n")
    print("| size | torch median ms | torch min ms | ort median ms | ort min ms "
          "| ratio (median) | ratio (min) |")
    print("|---|---|---|---|---|---|---|")
    for size, t_med, t_min, o_med, o_min in rows:
        print(f"| {size}² | {t_med:.0f} | {t_min:.0f} | {o_med:.0f} | {o_min:.0f} "
              f"| {t_med / o_med:.2f} | {t_min / o_min:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
