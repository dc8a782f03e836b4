"""Pixel shuffling an editor host needs, in plain Python (no numpy).

Why plain Python: the editors' own interpreters often lack numpy (Krita's
official builds, GIMP's Flatpak, Debian's system Python), and the plug-in must
run there. Every operation here is a handful of extended-slice assignments on
``bytearray``s, which run in C inside CPython: converting a 24-megapixel layer
takes a fraction of a second, with no per-pixel Python loop.

Images are ``protocol.messages.Pixels``: 8-bit, interleaved, rows of ``stride``
bytes. Functions return tightly packed images (stride = width × channels).
"""

from __future__ import annotations

from ..protocol.messages import Pixels

__all__ = ["packed", "with_alpha", "drop_alpha", "alpha_of", "swap_red_blue", "from_u16",
           "to_u16", "solid", "add_alpha", "same_geometry"]


def packed(image: Pixels) -> Pixels:
    """``image`` with no row padding (a copy only when it has padding)."""
    if image.stride == image.width * image.channels:
        return image
    return Pixels.from_buffer(image.tobytes(), image.shape)


def _bytes(image: Pixels) -> bytearray:
    return bytearray(packed(image).data)


def alpha_of(image: Pixels) -> Pixels | None:
    """The alpha channel as a one-channel image (None for RGB)."""
    if image.channels != 4:
        return None
    return Pixels.from_buffer(bytes(memoryview(packed(image).data)[3::4]),
                              (image.height, image.width, 1))


def drop_alpha(image: Pixels) -> Pixels:
    """RGBA → RGB (RGB is returned as it is)."""
    if image.channels == 3:
        return packed(image)
    if image.channels != 4:
        raise ValueError(f"expected RGB or RGBA, got {image.channels} channel(s)")
    src = memoryview(packed(image).data)
    out = bytearray(image.width * image.height * 3)
    for c in range(3):
        out[c::3] = src[c::4]
    return Pixels.from_buffer(out, (image.height, image.width, 3))


def add_alpha(image: Pixels, alpha: Pixels) -> Pixels:
    """RGB + a one-channel alpha → RGBA."""
    if image.channels != 3 or alpha.channels != 1 or (image.width, image.height) != (
            alpha.width, alpha.height):
        raise ValueError("add_alpha needs an RGB image and a one-channel alpha of its size")
    src = memoryview(packed(image).data)
    out = bytearray(image.width * image.height * 4)
    for c in range(3):
        out[c::4] = src[c::3]
    out[3::4] = memoryview(packed(alpha).data)
    return Pixels.from_buffer(out, (image.height, image.width, 4))


def with_alpha(image: Pixels, alpha: Pixels | None) -> Pixels:
    """``image`` with exactly the channels of the source: its RGB, then ``alpha``.

    Stylizing must not change what is transparent, so every result layer gets
    the source layer's alpha back verbatim (and none when the source had none).
    """
    if alpha is None:
        return drop_alpha(image)
    if image.channels == 4 and (alpha.channels, alpha.width, alpha.height) == (
            1, image.width, image.height):
        out = bytearray(packed(image).data)  # one copy, then one strided write
        out[3::4] = packed(alpha).data
        return Pixels.from_buffer(out, image.shape)
    return add_alpha(drop_alpha(image), alpha)


def swap_red_blue(image: Pixels) -> Pixels:
    """BGR(A) ↔ RGB(A): Krita hands out and takes B,G,R,A for 8-bit RGBA documents."""
    if image.channels not in (3, 4):
        raise ValueError(f"expected 3 or 4 channels, got {image.channels}")
    n = image.channels
    out = _bytes(image)
    src = bytes(out)
    out[0::n] = src[2::n]
    out[2::n] = src[0::n]
    return Pixels.from_buffer(out, image.shape)


def from_u16(data: bytes | bytearray | memoryview, width: int, height: int,
             channels: int) -> Pixels:
    """Little-endian 16-bit samples → 8-bit, keeping the high byte.

    Exact for 16-bit values that are an 8-bit value × 257 (what editors store
    for 8-bit content) and within one level otherwise — the same precision the
    8-bit wire carries.
    """
    view = memoryview(data).cast("B")
    expected = width * height * channels * 2
    if len(view) != expected:
        raise ValueError(f"16-bit buffer is {len(view)} bytes, expected {expected}")
    high = bytes(view[1::2])
    return Pixels.from_buffer(high, (height, width, channels))


def to_u16(image: Pixels) -> bytes:
    """8-bit → little-endian 16-bit (v16 = v8 × 257, so 255 stays full white)."""
    src = packed(image).data
    out = bytearray(len(memoryview(src).cast("B")) * 2)
    out[0::2] = src
    out[1::2] = src
    return bytes(out)


def solid(width: int, height: int, channels: int, value: int) -> Pixels:
    """An image of one value in every sample (e.g. an all-white mask)."""
    return Pixels.from_buffer(bytes([value]) * (width * height * channels),
                              (height, width, channels))


def same_geometry(a: Pixels, b: Pixels) -> bool:
    return (a.width, a.height) == (b.width, b.height)
