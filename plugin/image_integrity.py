"""Refuse a style painting that would decode only partly, before an editor decodes it.

Why: GIMP's and Qt's (Krita's) JPEG and PNG loaders recover what they can from
a damaged file — a JPEG cut short loads with its missing rows grey, a PNG with
a broken chunk loads up to the damage — and say so only in a message console or
log a plug-in cannot read. The artist then gets a washed-out result for a
painting they never saw damaged. So both plug-ins check the file's own
structure first: a JPEG must reach its end-of-image marker, a PNG's chunks must
carry correct checksums up to IEND and its image data must inflate to exactly
the rows its header promises. Other formats are left to the editors' loaders.
(The command line decodes with Pillow, which reports damage itself:
``plugin/imageio.py``.)

Standard library only (the editors' Python has no Pillow or numpy), and
streaming: a large scan is read once, in pieces.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["check_complete", "IncompleteImage"]

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG markers without a length field: TEM, RST0–7, SOI, EOI
_BARE_MARKERS = {0x01, *range(0xD0, 0xDA)}
#: samples per pixel for each PNG colour type
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
_READ = 1 << 20


class IncompleteImage(OSError):
    """The file is damaged or cut short; ``how`` and ``strerror`` say how, ``filename`` names it."""

    def __init__(self, path: Path, how: str) -> None:
        super().__init__(0, f"only part of this image can be read ({how}), so it would load "
                            "with missing areas; save the painting again or use another copy",
                         str(path))
        self.how = how


def check_complete(path: Path) -> None:
    """Raise ``IncompleteImage`` when the JPEG or PNG at ``path`` would decode only partly."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_JPEG_SOI):
        _check_jpeg(path)
    elif head == _PNG_SIGNATURE:
        _check_png(path)


def _check_jpeg(path: Path) -> None:
    data = path.read_bytes()  # paintings are a few MB; markers need random access
    size, pos = len(data), 2
    while True:
        # next marker (fill bytes 0xFF may repeat)
        if pos + 2 > size:
            raise IncompleteImage(path, f"the JPEG stops after {size:,} bytes, before its end")
        if data[pos] != 0xFF:
            raise IncompleteImage(path, f"the JPEG is damaged at byte {pos:,}")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        pos += 2
        if marker == 0xD9:  # EOI: everything before it was there
            return
        if marker in _BARE_MARKERS:
            continue
        if pos + 2 > size:
            raise IncompleteImage(path, f"the JPEG stops after {size:,} bytes, before its end")
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        pos += length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            pos = _skip_scan(data, pos)
            if pos < 0:
                raise IncompleteImage(path, f"the JPEG stops after {size:,} bytes, in the "
                                            "middle of its picture data")


def _skip_scan(data: bytes, pos: int) -> int:
    """Index of the marker ending an entropy-coded segment, or -1 when the data ends first."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return -1
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1  # a stuffed byte, a restart marker, or fill
            continue
        return pos


def _expected_png_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    bits = _PNG_CHANNELS.get(colour, 0) * depth
    if not bits:
        return -1

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if interlace == 0:
        return rows(width, height)
    return sum(rows((width - x0 + dx - 1) // dx if width > x0 else 0,
                    (height - y0 + dy - 1) // dy if height > y0 else 0)
               for x0, y0, dx, dy in _ADAM7)


def _check_png(path: Path) -> None:
    inflate = zlib.decompressobj()
    inflated = 0
    expected = -1
    with open(path, "rb") as fh:
        fh.seek(len(_PNG_SIGNATURE))
        while True:
            header = fh.read(8)
            if len(header) < 8:
                raise IncompleteImage(path, "the PNG stops before its end chunk")
            length, kind = struct.unpack(">I4s", header)
            crc = zlib.crc32(kind)
            left = length
            while left:
                piece = fh.read(min(left, _READ))
                if not piece:
                    raise IncompleteImage(path, f"the PNG stops inside its {kind.decode('latin-1')}"
                                                " chunk")
                crc = zlib.crc32(piece, crc)
                left -= len(piece)
                if kind == b"IHDR" and len(piece) >= 13:
                    width, height, depth, colour, _, _, interlace = struct.unpack(
                        ">IIBBBBB", piece[:13])
                    expected = _expected_png_bytes(width, height, depth, colour, interlace)
                elif kind == b"IDAT":
                    try:
                        inflated += len(inflate.decompress(piece))
                    except zlib.error as exc:
                        raise IncompleteImage(path, f"its image data is damaged: {exc}") from None
            stored = fh.read(4)
            if len(stored) < 4:
                raise IncompleteImage(path, "the PNG stops before its end chunk")
            if struct.unpack(">I", stored)[0] != crc & 0xFFFFFFFF:
                raise IncompleteImage(path, f"its {kind.decode('latin-1')} chunk is damaged "
                                            "(wrong checksum)")
            if kind == b"IEND":
                break
    inflated += len(inflate.flush())
    if not inflate.eof or (expected >= 0 and inflated < expected):
        raise IncompleteImage(path, "its image data ends before the last row")
