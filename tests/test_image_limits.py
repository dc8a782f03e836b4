"""Image files the product opens: measured from the header first, decoded whole or refused.

Issue 23 case 4: a 219-byte PNG claiming 12000×12000 cost the command line
1970 MiB and 5 s before it was refused (it was decoded first) and Pillow's raw
``DecompressionBombWarning`` reached the user. Issue 19 item 3: a painting
that decodes only partly must be refused in words naming the file.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_style.plugin.image_header import MAX_IMAGE_PIXELS, header_size

SHARED_STYLE = Path("/work/shared/data/style/kandinsky_composition_vii.jpg")
EXIT_INPUT = 3
MIB = 1 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 12000) -> Path:
    """A PNG whose header claims side×side RGB; its few bytes of data are all zeros."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * side) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
                     + _chunk(b"IEND", b""))
    return path


def _painting(tmp_path: Path) -> Path:
    path = tmp_path / "painting.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


#: runs the CLI and writes its own peak RSS (VmHWM, kB) to argv[1] at exit. Measured from
#: inside: a child's ru_maxrss also counts the pages of the (large) pytest process it was
#: forked from, which would blame the CLI for the test run's own memory
_MEASURED_CLI = """
import atexit, runpy, sys
out = sys.argv.pop(1)

def _peak():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                with open(out, 'w') as sink:
                    sink.write(line.split()[1])

atexit.register(_peak)
runpy.run_module('portrait_style', run_name='__main__', alter_sys=True)
"""


def _stylize(tmp_path: Path, content: Path, style: Path, *extra: str
             ) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI (no daemon needed: files are checked first); (result, peak RSS bytes)."""
    env = {k: v for k, v in os.environ.items() if k != "PORTRAIT_STYLE_ENDPOINT"}
    env["PORTRAIT_STYLE_HOME"] = str(tmp_path / "home")
    peak_file = tmp_path / "peak_kb.txt"
    peak_file.unlink(missing_ok=True)
    argv = [sys.executable, "-c", _MEASURED_CLI, str(peak_file), "stylize", str(content),
            "--style", str(style), "--out", str(tmp_path / "out"),
            "--connect", "tcp://127.0.0.1:9", "-q", *extra]
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=300)
    return res, int(peak_file.read_text()) * 1024


def _one_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {res.stderr}"
    assert "Warning" not in res.stderr and "Traceback" not in res.stderr
    return lines[0]


@pytest.mark.parametrize("role", ["content", "style", "mask"])
def test_a_png_bomb_is_refused_from_its_header(tmp_path: Path, role: str) -> None:
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size == 219
    painting = _painting(tmp_path)
    args = {"content": (bomb, painting, ()), "style": (painting, bomb, ()),
            "mask": (painting, painting, ("--mask", str(bomb)))}[role]
    res, peak = _stylize(tmp_path, args[0], args[1], *args[2])
    print(f"{role}: exit {res.returncode}, peak RSS {peak / MIB:.0f} MiB")
    line = _one_error(res)
    assert res.returncode == EXIT_INPUT, res.stderr
    assert str(bomb) in line and "12000×12000" in line and "not opened" in line, line
    # decoding it would cost 12000² × 3 = 412 MiB at the very least (it cost 1970 MiB)
    assert peak < 200 * MIB, f"peak RSS {peak / MIB:.0f} MiB: the bomb was decoded"
    assert not (tmp_path / "out").exists()


def test_between_pillows_warning_and_error_no_raw_warning(tmp_path: Path) -> None:
    """100 MP (Pillow only warns there): our own refusal, no DecompressionBombWarning."""
    bomb = png_bomb(tmp_path / "warn.png", side=10000)
    res, _ = _stylize(tmp_path, _painting(tmp_path), bomb)
    line = _one_error(res)
    assert res.returncode == EXIT_INPUT and "DecompressionBomb" not in res.stderr, line


def test_a_painting_truncated_at_30_kb_is_refused_naming_it(tmp_path: Path) -> None:
    """Issue 19 item 3: the JPEG the editors showed half grey."""
    if not SHARED_STYLE.is_file():
        pytest.skip(f"{SHARED_STYLE} (the shared test images) is not here")
    cut = tmp_path / "kandinsky_cut.jpg"
    cut.write_bytes(SHARED_STYLE.read_bytes()[:30_000])
    res, _ = _stylize(tmp_path, _painting(tmp_path), cut)
    line = _one_error(res)
    assert res.returncode == EXIT_INPUT, res.stderr
    assert str(cut) in line and "style painting" in line and "decodes only partly" in line, line


def test_a_corrupt_png_painting_is_refused_naming_it(tmp_path: Path) -> None:
    good = _painting(tmp_path).read_bytes()
    bad = bytearray(good)
    middle = len(bad) // 2
    bad[middle:middle + 2000] = bytes(b ^ 0x5A for b in bad[middle:middle + 2000])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(bytes(bad))
    res, _ = _stylize(tmp_path, _painting(tmp_path), corrupt)
    line = _one_error(res)
    assert res.returncode == EXIT_INPUT and str(corrupt) in line, line
    assert "corrupt" in line and "style painting" in line, line


def test_the_help_lists_the_exit_code(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "portrait_style", "stylize", "--help"],
                         capture_output=True, text=True)
    assert f"  {EXIT_INPUT}  an input file" in res.stdout


def test_the_plugins_refuse_a_bomb_painting_before_their_editor_decodes_it(
        tmp_path: Path) -> None:
    """The shared job code measures the header; the editor's loader is never called."""
    from fake_document import FakeDocument

    from portrait_style.plugin.core import OptionError, StylizeOptions
    from portrait_style.plugin.job import prepare_stylize
    from portrait_style.protocol.messages import Pixels

    bomb = png_bomb(tmp_path / "huge_painting.png")
    calls: list[Path] = []

    def editor_loader(path: Path) -> Pixels:
        calls.append(path)
        raise AssertionError("the editor was asked to decode the bomb")

    doc = FakeDocument(Pixels.from_array(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(OptionError, match="12000×12000") as err:
        prepare_stylize(doc, doc.source, StylizeOptions(style_path=bomb), editor_loader)
    assert str(bomb) in str(err.value) and calls == []


def test_header_sizes_match_pillows(tmp_path: Path) -> None:
    image = Image.new("RGB", (123, 45))
    for name, kwargs in [("a.png", {}), ("a.jpg", {}), ("p.jpg", {"progressive": True}),
                         ("a.gif", {}), ("a.bmp", {}), ("a.webp", {}),
                         ("l.webp", {"lossless": True})]:
        image.save(tmp_path / name, **kwargs)
        assert header_size(tmp_path / name) == (123, 45), name
    (tmp_path / "x.txt").write_text("not an image")
    assert header_size(tmp_path / "x.txt") is None
    assert MAX_IMAGE_PIXELS == 8192 * 8192
