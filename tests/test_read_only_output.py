"""``--out`` on a read-only file system is named as such, not as "no permission" (issue 23)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (a small tmpfs mounted ro); needs root and mount."""
    point = tmp_path / "ro"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False)


def test_read_only_file_system_is_named(read_only_mount: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTRAIT_STYLE_ENDPOINT"}
    env["PORTRAIT_STYLE_HOME"] = str(tmp_path / "home")
    out = read_only_mount / "results"
    res = subprocess.run([sys.executable, "-m", "portrait_style", "stylize", "sample:astronaut",
                          "--style", "sample:starry_night", "--out", str(out), "--connect",
                          "tcp://127.0.0.1:9", "-q"], env=env, capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 6, res.stderr
    assert len(lines) == 1 and "read-only file system" in lines[0], res.stderr
    assert "permission" not in lines[0]
