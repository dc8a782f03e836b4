"""Big layers as the command-line user sees them: the daemon's job vs writing the files.

Why: for a 24 MP photo the daemon computes the layers in seconds; what the user
waits for is the whole command, reading the photo, the job, and writing
background/portrait/mask/composite PNGs and layers.ora. This runs the host's side
exactly as the command-line host does (read the file, ``DaemonClient.stylize``,
``plugin.outputs.write_outputs``) against a real daemon subprocess and prints

    job_s=  write_s=  total_s=  total_over_job=  host_peak_rss_mb=  daemon_peak_rss_mb=

Goal (issue 14): total ≤ 1.5× the job, the host's peak RSS below the daemon's.

    .venv/bin/python bench/big_layers.py [--width 6000 --height 4000] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_line
from pipeline import REPO, daemon_process

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _photo_file(folder: Path, width: int, height: int) -> Path:
    """The bundled astronaut enlarged to width×height, saved as a JPEG (as a camera would)."""
    from PIL import Image

    path = folder / f"photo-{width}x{height}.jpg"
    with Image.open(REPO / "portrait_style" / "samples" / "astronaut.jpg") as img:
        img.convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(path,
                                                                                   quality=92)
    return path


def _peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--reps", type=int, default=2, help="runs; the best is reported")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--serial", action="store_true", help="write the files on one thread")
    parser.add_argument("--with-source", action="store_true",
                        help="also put the photo in layers.ora, below the group (one more encode)")
    args = parser.parse_args()

    from portrait_style.plugin.imageio import load_image
    from portrait_style.plugin.outputs import write_outputs
    from portrait_style.protocol.client import DaemonClient

    work = Path(tempfile.mkdtemp(prefix="bench-big-"))
    photo_path = _photo_file(work, args.width, args.height)
    style = load_image(REPO / "portrait_style" / "samples" / "starry_night.jpg")
    runs = []
    with daemon_process("magenta", args.device) as (endpoint, daemon), \
            DaemonClient(endpoint, timeout_s=900) as client:
        for rep in range(args.reps):
            t0 = time.perf_counter()
            content = load_image(photo_path)
            t1 = time.perf_counter()
            reply = client.stylize(content, style)
            t2 = time.perf_counter()
            layers = {name: np.asarray(px) for name, px in reply.layers.items()}
            timings: dict[str, float] = {}
            write_outputs(work / f"out{rep}", layers, source_name=photo_path.stem,
                          source=content if args.with_source else None,
                          parallel=not args.serial,
                          group_name="Portrait style — starry_night", timings=timings)
            t3 = time.perf_counter()
            runs.append({"read_s": t1 - t0, "job_s": t2 - t1, "write_s": t3 - t2,
                         "total_s": t3 - t0, "files": timings})
            del content, reply, layers
            print(f"run {rep}: read {t1 - t0:.2f} s, job {t2 - t1:.2f} s, write {t3 - t2:.2f} s",
                  file=sys.stderr, flush=True)
        daemon_rss = _peak_rss_mb(daemon.pid)
    host_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(runs, key=lambda r: r["total_s"])
    sizes = {p.name: p.stat().st_size / 1e6 for p in sorted((work / "out0").iterdir())}
    print(f"Machine: {machine_line(args.device)}")
    print(f"layer {args.width}×{args.height}, {args.reps} runs, best by total; "
          f"{'serial' if args.serial else 'parallel'} writing, photo "
          f"{'in' if args.with_source else 'not in'} layers.ora")
    print(f"job_s={best['job_s']:.2f} write_s={best['write_s']:.2f} read_s={best['read_s']:.2f} "
          f"total_s={best['total_s']:.2f} total_over_job={best['total_s'] / best['job_s']:.2f} "
          f"host_peak_rss_mb={host_rss:.0f} daemon_peak_rss_mb={daemon_rss:.0f}")
    print("per file (encode s): " + ", ".join(f"{k} {v:.2f}" for k, v in best["files"].items()))
    print("sizes MB: " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
