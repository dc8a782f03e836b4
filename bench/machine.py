"""One line describing the machine a benchmark ran on (CPU model, cores, torch, GPU)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def machine_line(device: str) -> str:
    """E.g. "Intel(R) Xeon(R), 2 cores, 2 torch threads; torch 2.14.1; Python 3.11.7"."""
    import torch

    gpu = ""
    if device != "cpu" and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(0)}"
    return (f"{cpu_model()}, {usable_cores()} cores, {torch.get_num_threads()} torch threads"
            f"{gpu}; torch {torch.__version__}; Python {platform.python_version()}")
