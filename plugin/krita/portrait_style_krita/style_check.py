"""Is a style painting whole? A JPEG cut short is refused before Qt decodes it.

Why: Qt's JPEG reader decodes what it can of a file that ends early and fills
the missing rows with grey, reporting it only in Qt's message log (libjpeg's
"premature end of data segment"), which a plug-in cannot read without
replacing Krita's own message handler. The artist would get a washed-out
result from a painting they never saw damaged. So the file's structure is
walked first: from the start-of-image marker, segment by segment (their
lengths skip embedded thumbnails), through each scan's picture data, to the
end-of-image marker. A PNG needs no such walk: Qt refuses a cut or corrupt
PNG outright (its reader checks every chunk), which ``styles.load_style``
reports with the same sentence.

Standard library only.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["damage"]

#: JPEG markers without a length field: TEM, RST0–RST7, SOI
_BARE = {0x01, 0xD8, *range(0xD0, 0xD8)}


def damage(path: Path) -> str | None:
    """How a JPEG at ``path`` is cut short or broken, in words; None when whole (or not a JPEG)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return None
    end, pos = len(data), 2
    while pos + 2 <= end:
        if data[pos] != 0xFF:
            return f"it is broken at byte {pos:,}"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker == 0xD9:  # end of image: everything before it is there
            return None
        if marker in _BARE:
            continue
        if pos + 2 > end:
            break
        pos += struct.unpack(">H", data[pos:pos + 2])[0]
        if marker == 0xDA:  # start of scan: picture data up to the next real marker
            pos = _end_of_scan(data, pos)
            if pos < 0:
                return f"the file stops after {end:,} bytes, in the middle of the picture"
    return f"the file stops after {end:,} bytes, before its end"


def _end_of_scan(data: bytes, pos: int) -> int:
    """Where the marker after a scan's entropy-coded data starts; -1 when the file ends first."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return -1
        following = data[pos + 1]
        if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
            pos += 1  # a stuffed 0xFF, fill, or a restart marker inside the scan
            continue
        return pos
