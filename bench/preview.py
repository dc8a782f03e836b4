"""Live preview vs the full job on a big photo, through a real daemon.

Why: a preview is only worth having if it costs a fraction of Apply (issue 21:
at most 0.2× the full job on a 6000×4000 photo, on the same machine) while
being the full result scaled down. This starts ``portrait-style serve``, sends
the same kind of request the editors and ``stylize --preview N`` send, and
prints per mode the daemon's time (``job_s``, the sum of its stage timings),
the round trip as the host sees it (``wall_s``, pixels both ways included) and
what the daemon reused:

- ``full (cold)``: Apply on a photo the daemon has not seen;
- ``preview N (cold)``: the first preview of a photo it has not seen;
- ``preview N (knob)``: the next preview after a knob applied after the network
  (likeness) changed: what dragging that slider costs;
- ``apply after preview``: Apply with the previewed knobs.

Every cold row uses a photo differing in one pixel, so nothing is reused from
an earlier row. The best of ``--reps`` is reported.

    .venv/bin/python bench/preview.py [--width 6000 --height 4000] [--long-side 512]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_line
from pipeline import REPO, daemon_process

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class Row:
    mode: str
    job_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def _photo(width: int, height: int) -> np.ndarray:
    """The bundled astronaut on a 3:2 canvas at width×height (a camera's frame)."""
    from PIL import Image

    with Image.open(REPO / "portrait_style" / "samples" / "astronaut.jpg") as img:
        img = img.convert("RGB")
        canvas = Image.new("RGB", (img.width * 3 // 2, img.height), (118, 124, 131))
        canvas.paste(img, (img.width // 4, 0))
        return np.asarray(canvas.resize((width, height), Image.Resampling.BICUBIC)).copy()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: sharing the cores disturbs it less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _job_s(info: dict[str, Any]) -> float:
    return sum(float(v) for v in (info.get("timings") or {}).values()
               if isinstance(v, int | float))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--long-side", type=int, default=512, help="the preview's long side")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from portrait_style.plugin.core import StylizeOptions
    from portrait_style.plugin.imageio import load_image
    from portrait_style.plugin.preview import preview_params
    from portrait_style.protocol.client import DaemonClient

    photo = _photo(args.width, args.height)
    style = load_image(REPO / "portrait_style" / "samples" / "starry_night.jpg")[..., :3]
    full = StylizeOptions().params()
    preview = preview_params(StylizeOptions(), args.long_side)
    knob = preview_params(StylizeOptions(likeness=0.5), args.long_side)
    n = args.long_side
    rows = {name: Row(name) for name in (
        "full (cold)", f"preview {n} (cold)", f"preview {n} (knob)", "apply after preview")}
    fresh = itertools.count(1)

    def new_photo() -> np.ndarray:
        out = photo.copy()
        out[0, 0, 0] = next(fresh) % 256  # one pixel: a photo the daemon has not seen
        return out

    with daemon_process("magenta", args.device) as (endpoint, daemon), \
            DaemonClient(endpoint, timeout_s=900) as client:
        client.stylize(photo[:512, :768].copy(), style, preview)  # warm-up: models, style
        for _ in range(args.reps):
            for name, content, params in (
                    ("full (cold)", new_photo(), full),
                    (f"preview {n} (cold)", (seen := new_photo()), preview),
                    (f"preview {n} (knob)", seen, knob),
                    ("apply after preview", seen, full)):
                started, cpu = time.perf_counter(), _cpu_s(daemon.pid)
                reply = client.stylize(content, style, params)
                wall = time.perf_counter() - started
                rows[name].cpu_s.append(_cpu_s(daemon.pid) - cpu)
                row = rows[name]
                row.job_s.append(_job_s(reply.info))
                row.wall_s.append(wall)
                row.reused = list(reply.info.get("reused", []))
                del reply

    best_full = min(rows["full (cold)"].job_s)
    print(f"# preview vs full job, {args.width}×{args.height} photo, preview long side {n}")
    print(f"machine: {machine_line(args.device)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; best of {args.reps}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print()
    best_cpu = min(rows["full (cold)"].cpu_s)
    print("| mode | job_s | × full job | daemon cpu_s | × full job | wall_s | reused by the "
          "daemon |")
    print("|---|---|---|---|---|---|---|")
    for row in rows.values():
        job_s, cpu_s = min(row.job_s), min(row.cpu_s)
        print(f"| {row.mode} | {job_s:.3f} | {job_s / best_full:.2f} | {cpu_s:.2f} | "
              f"{cpu_s / best_cpu:.2f} | {min(row.wall_s):.3f} | "
              f"{', '.join(row.reused) or '–'} |")
    cold = rows[f"preview {n} (cold)"]
    print()
    print(f"preview_over_full={min(cold.job_s) / best_full:.3f} (job_s; goal ≤ 0.2) "
          f"cpu_ratio={min(cold.cpu_s) / best_cpu:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
