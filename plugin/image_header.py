"""An image file's size from its header, and the product's pixel limit, before decoding.

Why: a 219-byte PNG can claim 12000×12000 pixels; decoding it first (to find
out it is too large) cost the command line ~2 GiB and seconds, and an editor's
own loader the same. Every image the product opens (the command line's
content, style and mask; the painting the editors' plug-ins decode with their
own loaders) is therefore measured from its header here and refused above the
largest image the product accepts, before a pixel is decoded.

Standard library only: the editors' plug-ins import it (no Pillow there). It
knows PNG, JPEG, GIF, BMP and WebP headers; for other formats it returns None
and the caller's decoder decides (the command line asks Pillow's lazy header
reader instead, which knows every format Pillow opens).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from ..protocol.framing import Limits

__all__ = ["MAX_IMAGE_PIXELS", "MAX_STYLE_PIXELS", "ImageTooLarge", "check_size",
           "header_size"]

#: the largest content layer or mask the product accepts (the daemon's default limit)
MAX_IMAGE_PIXELS = Limits().max_pixels
#: the largest painting the command line sends as it is (the daemon's default style limit)
MAX_STYLE_PIXELS = Limits().max_style_pixels

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageTooLarge(ValueError):
    """The header claims more pixels than the product accepts; the message names the file."""


def check_size(path: str | Path, width: int, height: int, limit: int, what: str) -> None:
    """Refuse ``width``×``height`` above ``limit`` pixels in one sentence naming the file."""
    if width * height > limit:
        raise ImageTooLarge(
            f"the {what} {str(path)!r} is {width}×{height} = {width * height / 1e6:.1f} MP, "
            f"more than portrait-style accepts ({limit / 1e6:.1f} MP): it was not opened; "
            "scale it down first")


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None for a format not known here.

    Reads at most a few header segments (never pixel data). A file too short
    or malformed for its format also gives None: its decoder says why.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return struct.unpack("<HH", head[6:10])
            if head[:2] == b"BM" and len(head) >= 26:
                width, height = struct.unpack("<ii", head[18:26])
                return abs(width), abs(height)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(head)
            if head[:2] == b"\xff\xd8":
                return _jpeg(fh)
    except (OSError, struct.error):
        return None
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg(fh: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments (seeking over their bodies) to its frame header."""
    fh.seek(2)
    for _ in range(1024):  # a real file reaches its SOF in a handful of segments
        byte = fh.read(1)
        if byte != b"\xff":
            return None
        while byte == b"\xff":
            byte = fh.read(1)  # fill bytes
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        length_bytes = fh.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if marker in _JPEG_SOF:
            body = fh.read(5)
            if len(body) < 5:
                return None
            height, width = struct.unpack(">HH", body[1:5])
            return width, height
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        fh.seek(length - 2, 1)
    return None
