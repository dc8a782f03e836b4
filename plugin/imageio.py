"""Image files in and out for the command-line host (Pillow + numpy).

Why a module of its own: editors hand the core pixels straight from their
layers, so only the command-line host ever touches image files. Everything that
can go wrong with a user's file (missing, a folder, not an image, truncated,
rotated by an EXIF tag, 16-bit, palette with transparency) is settled here, so
the rest of the plug-in only ever sees H×W×3 / H×W×4 uint8 arrays, and every
failure becomes one ``ImageReadError`` whose message names the file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import struct
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .image_header import MAX_IMAGE_PIXELS, ImageTooLarge, check_size

try:  # ISA-L's deflate, when installed: ~5x faster than zlib at level 1, and smaller files
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - the standard library's zlib
    _deflate = zlib  # type: ignore[assignment]
#: the highest level ``_deflate`` accepts (ISA-L has 0-3, zlib 0-9)
_MAX_LEVEL = 3 if _deflate is not zlib else 9

__all__ = ["ImageReadError", "ImageWriteError", "PendingFile", "RowSource", "load_image",
           "load_mask", "remove_stale_temporaries",
           "encode_png", "write_png", "write_atomic", "save_png", "FAST_PNG_LEVEL"]

#: deflate level for the layers we write: level 1 deflates a stylized 24 MP layer about
#: 3x faster than Pillow's default 6 for files ~10 % larger (the editor re-saves anyway);
#: with ISA-L (the optional ``isal`` package) 5x faster again and 10 % smaller
FAST_PNG_LEVEL = 1
#: bytes of filtered rows handed to zlib at a time: bounds the writer's extra memory
_PNG_BAND_BYTES = 4 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # channels → PNG colour type (grey, RGB, RGBA)


class ImageReadError(Exception):
    """A user's image file could not be read; the message names the file and why."""


class ImageWriteError(Exception):
    """An output file could not be written; the message names the file and why."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format Pillow can read"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large to open safely ({exc})"
    text = str(exc).strip() or type(exc).__name__
    return f"corrupt or unreadable image ({text})"


@contextlib.contextmanager
def _pillow_ours() -> Iterator[None]:
    """Pillow with the product's own limits and words, for one open + decode.

    Pillow's decompression-bomb check (a warning from 89 MP, an error from 179 MP)
    is replaced by ``image_header.check_size`` against the product's own limit,
    checked on the header before decoding; its warnings (bomb, corrupt EXIF, …)
    never reach the user; and a file that ends early is an error even if some
    other library switched Pillow to loading truncated images.
    """
    bomb_limit, truncated_ok = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = bomb_limit, truncated_ok


def _open(path: Path, max_pixels: int = MAX_IMAGE_PIXELS, what: str = "image") -> Image.Image:
    """Open ``path``, refuse it above ``max_pixels`` from its header, then fully decode it.

    The EXIF orientation is applied. A file whose header opens but whose pixels
    stop early or do not decode (truncated download, damaged data) is refused:
    editors would show such a painting half grey, and the result would be too.
    """
    if path.is_dir():
        raise ImageReadError(f"cannot read {what} {str(path)!r}: is a directory")
    with _pillow_ours():
        try:
            img = Image.open(path)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"cannot read {what} {str(path)!r}: {_describe(exc)}") from exc
        with img:
            try:
                check_size(path, img.width, img.height, max_pixels, what)
            except ImageTooLarge as exc:
                raise ImageReadError(str(exc)) from None
            try:
                img.load()  # decode now: truncated files fail here, not later
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                detail = str(exc).strip() or type(exc).__name__
                raise ImageReadError(
                    f"cannot read {what} {str(path)!r}: corrupt or unreadable image: it "
                    f"decodes only partly ({detail}); save it again or download it again"
                ) from exc
            # transpose returns a copy (or the same image when nothing to do)
            try:
                oriented = ImageOps.exif_transpose(img)
            except (OSError, SyntaxError, ValueError) as exc:
                raise ImageReadError(
                    f"cannot read {what} {str(path)!r}: {_describe(exc)}") from exc
            return oriented if oriented is not img else img.copy()


def _to_uint8(img: Image.Image) -> Image.Image:
    """Bring high-bit-depth modes down to 8 bits without clipping to white."""
    if img.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        arr = np.asarray(img, dtype=np.int64)
        top = 65535 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255
        return Image.fromarray((np.clip(arr, 0, top) * 255 // top).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).round().astype(np.uint8), "L")
    return img


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS,
               what: str = "image") -> np.ndarray:
    """Read any image Pillow can read as H×W×3 (RGB) or H×W×4 (RGBA) uint8.

    Images with any transparency (RGBA, LA, palette or RGB with a transparency
    key) become RGBA so their alpha reaches the output layers; everything else
    (greyscale, CMYK, YCbCr, 16-bit) becomes RGB. The EXIF orientation is
    applied, so the pixels are the way every viewer shows the photo. Files
    over ``max_pixels`` are refused from their header, before decoding; ``what``
    names the file's role in messages ("photo", "style painting").
    """
    path = Path(path)
    img = _to_uint8(_open(path, max_pixels, what))
    has_alpha = img.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in img.info
    try:
        rgb = img.convert("RGBA" if has_alpha else "RGB")
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {_describe(exc)}") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"cannot read image {str(path)!r}: empty image")
    return np.ascontiguousarray(arr)


def load_mask(path: str | os.PathLike[str], size: tuple[int, int] | None = None, *,
              max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a person mask as H×W uint8 (255 = person).

    Colour masks are reduced to their luminance; a mask with transparency uses
    its alpha where the colour is flat (the way a selection saved from an
    editor looks). ``size`` = (width, height) the mask must have: masks are
    never silently resized, because a mismatched mask means the wrong file.
    """
    path = Path(path)
    img = _to_uint8(_open(path, max_pixels, "mask"))
    try:
        if img.mode in {"RGBA", "LA", "PA"} or "transparency" in img.info:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
            alpha = rgba[..., 3]
            luma = np.asarray(Image.fromarray(rgba[..., :3]).convert("L"), dtype=np.uint8)
            arr = alpha if int(luma.max()) == int(luma.min()) else (
                luma.astype(np.uint16) * alpha // 255).astype(np.uint8)
        else:
            arr = np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read mask {str(path)!r}: {_describe(exc)}") from exc
    if size is not None and (arr.shape[1], arr.shape[0]) != tuple(size):
        raise ImageReadError(
            f"mask {str(path)!r} is {arr.shape[1]}×{arr.shape[0]} but the content is "
            f"{size[0]}×{size[1]}; a mask must have exactly the content's size")
    return np.ascontiguousarray(arr)


def _pil_mode(arr: np.ndarray | RowSource) -> str:
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {arr.dtype}")
    ndim = len(arr.shape)
    if ndim == 2:
        return "L"
    if ndim == 3 and arr.shape[2] in (1, 3, 4):
        return {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    raise ValueError(f"PNG pixels must be H×W, H×W×3 or H×W×4, got shape {arr.shape}")


def _png_chunk(fh: BinaryIO, kind: bytes, data: bytes | memoryview) -> None:
    fh.write(struct.pack(">I", len(data)) + kind)
    fh.write(data)
    fh.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


class RowSource(Protocol):
    """Pixels made band by band on demand: ``shape`` like an array's, ``rows(y0, y1)``.

    Lets ``write_png`` encode an image that never exists whole in memory (the
    ORA's cut portrait is computed one band at a time, while it is encoded).
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    def rows(self, y0: int, y1: int) -> np.ndarray: ...


def write_png(fh: BinaryIO, arr: np.ndarray | RowSource, *, level: int = FAST_PNG_LEVEL,
              dpi: float | None = None) -> None:
    """Stream H×W (L), H×W×3 (RGB) or H×W×4 (RGBA) uint8 pixels to ``fh`` as a PNG.

    Why not Pillow: Pillow needs the whole image as one object and picks a filter
    per row by trying all five, which is most of its time at low zlib levels. Here
    every row uses the "Up" filter (one vectorised subtraction, close to the best
    filter on photographic and painted content), rows go to zlib in bands of a few
    MB (bounded memory for any size; zlib releases the GIL, so several files
    encode in parallel on threads), and each band's output becomes IDAT chunks.
    Deflate is ISA-L's when the ``isal`` package is installed (levels above 3 are
    its 3), else zlib's. ``arr`` may be a ``RowSource``. ``dpi`` adds a pHYs chunk.
    """
    mode = _pil_mode(arr)
    height, width = arr.shape[:2]
    channels = 1 if mode == "L" else arr.shape[2]
    if height == 0 or width == 0:
        raise ValueError(f"PNG pixels must be non-empty, got shape {arr.shape}")
    row_bytes = width * channels
    if isinstance(arr, np.ndarray):
        flat = arr.reshape(height, row_bytes)

        def rows(y0: int, y1: int) -> np.ndarray:
            return flat[y0:y1]
    else:
        def rows(y0: int, y1: int) -> np.ndarray:
            return arr.rows(y0, y1).reshape(y1 - y0, row_bytes)
    fh.write(_PNG_SIGNATURE)
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                        _PNG_COLOUR_TYPE[channels], 0, 0, 0))
    if dpi:
        per_metre = max(1, round(dpi / 0.0254))
        _png_chunk(fh, b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
    deflate = _deflate.compressobj(min(level, _MAX_LEVEL))
    band = max(1, _PNG_BAND_BYTES // (row_bytes + 1))
    filtered = np.empty((min(band, height), row_bytes + 1), np.uint8)
    filtered[:, 0] = 2  # filter type "Up": each byte minus the byte above it (mod 256)
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        out = filtered[:y1 - y0]
        if y0 == 0:  # the row above the first is zeros
            cur = rows(0, y1)
            out[0, 1:] = cur[0]
            np.subtract(cur[1:], cur[:-1], out=out[1:, 1:])
        else:
            cur = rows(y0 - 1, y1)  # with the row above the band
            np.subtract(cur[1:], cur[:-1], out=out[:, 1:])
        data = deflate.compress(out)
        if data:
            _png_chunk(fh, b"IDAT", data)
    _png_chunk(fh, b"IDAT", deflate.flush())
    _png_chunk(fh, b"IEND", b"")


def encode_png(arr: np.ndarray, *, compress_level: int = FAST_PNG_LEVEL,
               dpi: float | None = None) -> bytes:
    """Encode H×W (L), H×W×3 (RGB) or H×W×4 (RGBA) uint8 pixels as PNG bytes."""
    buf = io.BytesIO()
    write_png(buf, arr, level=compress_level, dpi=dpi)
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(path: Path, exc: OSError) -> ImageWriteError:
    reason = exc.strerror or str(exc)
    return ImageWriteError(f"cannot write {str(path)!r}: {reason}")


#: hidden temporary names: ``.NAME.<pid>.<random>.tmp`` (the pid tells a stale one)
_TMP_SUFFIX = ".tmp"


class PendingFile:
    """An output written where nobody sees it, then given its final name at once.

    Why: a crash, a kill or a full disk mid-write must never leave a
    half-written file under the final name (a user reopening a truncated
    layers.ora would lose work), nor a hidden partial file beside it (hundreds
    of MB per killed run, found by nobody). Where the file system allows it
    (Linux ``O_TMPFILE``) the file is written with no name at all: whatever
    kills the process, even SIGKILL, the kernel frees it. Elsewhere it gets a
    hidden name carrying our pid, removed on error and on SIGTERM/SIGHUP/SIGINT
    (the command line turns those into exceptions), and by the next run into
    the same folder if we were killed outright (``remove_stale_temporaries``).
    A set of outputs appears all together or not at all: write every
    ``PendingFile``, then ``commit`` them (a link and a rename need no disk
    space), or ``discard`` them all on the first error. OSErrors become
    ``ImageWriteError`` naming the final file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._named: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = _open_unnamed(self.path.parent)
            if self._fd is None:
                self._named = self.path.with_name(_tmp_name(self.path.name))
                self._fd = os.open(self._named, os.O_RDWR | os.O_CREAT | os.O_EXCL
                                   | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise _write_error(self.path, exc) from exc
        self._written = False

    @property
    def unnamed(self) -> bool:
        """True when the file has no name in its folder until ``commit``."""
        return self._named is None

    @property
    def tmp(self) -> Path:
        """A path to read the written file back by (before ``commit``)."""
        if self._named is not None:
            return self._named
        return Path(f"/proc/self/fd/{self._fd}")

    def write_with(self, writer: Callable[[BinaryIO], object]) -> PendingFile:
        """Run ``writer(file)`` on the temporary file and flush it."""
        assert self._fd is not None and not self._written, "already written"
        self._written = True
        try:
            with os.fdopen(os.dup(self._fd), "wb") as fh:
                writer(fh)
        except OSError as exc:
            raise _write_error(self.path, exc) from exc
        return self

    def commit(self) -> Path:
        """Give the file the usual mode and, in one rename, its final name."""
        assert self._fd is not None, "discarded"
        try:
            os.fchmod(self._fd, 0o666 & ~_umask())  # mkstemp and O_TMPFILE make 0600
            if self._named is None:
                # a name only for the instant between the link and the rename
                named = self.path.with_name(_tmp_name(self.path.name))
                _link_unnamed(self._fd, named)
                self._named = named
            os.replace(self._named, self.path)
            self._named = None
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from exc
        os.close(self._fd)
        self._fd = None
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (idempotent; never raises)."""
        if self._named is not None:
            with contextlib.suppress(OSError):
                self._named.unlink(missing_ok=True)
            self._named = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _tmp_name(name: str) -> str:
    """``.NAME.<pid>.<8 hex>.tmp``: hidden, ours, and unique in its folder."""
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}{_TMP_SUFFIX}"


def _link_unnamed(fd: int, target: Path) -> None:
    """Give an ``O_TMPFILE`` file a name (``linkat`` through /proc, following the link)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # a dir fd makes Python use linkat(AT_SYMLINK_FOLLOW); plain link() would try to
        # link the /proc entry itself
        os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _open_unnamed(folder: Path) -> int | None:
    """An ``O_TMPFILE`` file in ``folder``, or None where the system or file system lacks it."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # the file system cannot: a hidden name instead
        raise


def remove_stale_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove hidden temporaries of ``names`` left in ``folder`` by runs that were killed.

    Only files whose pid (in the name) no longer runs on this machine are
    removed, so a run writing into the same folder right now keeps its own;
    unnamed temporaries never need this. Returns the files removed.
    """
    removed: list[Path] = []
    for name in names:
        tagged = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
        untagged = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")
        for path in folder.glob(f".{name}.*{_TMP_SUFFIX}"):
            match = tagged.fullmatch(path.name)
            if match is not None:
                if _pid_alive(int(match.group(1))):
                    continue  # a run writing into this folder now
            elif not untagged.fullmatch(path.name) or (
                    time.time() - _mtime(path) < _UNTAGGED_GRACE_S):
                continue  # an older version's temporary: only once it is surely abandoned
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


#: temporaries without a pid (written by older versions) are removed after this long
_UNTAGGED_GRACE_S = 3600.0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    pending = PendingFile(path)
    try:
        return pending.write_with(lambda fh: fh.write(data)).commit()
    except BaseException:
        pending.discard()
        raise


def save_png(path: str | os.PathLike[str], arr: np.ndarray, *,
             dpi: float | None = None) -> Path:
    """Save uint8 pixels as a PNG (mode from the shape: L, RGB or RGBA), atomically."""
    _pil_mode(arr)  # reject bad pixels before creating any file
    pending = PendingFile(path)
    try:
        return pending.write_with(lambda fh: write_png(fh, arr, dpi=dpi)).commit()
    except BaseException:
        pending.discard()
        raise
