"""Image files in and out for the command-line host (Pillow + numpy).

Why a module of its own: editors hand the core pixels straight from their
layers, so only the command-line host ever touches image files. Everything that
can go wrong with a user's file (missing, a folder, not an image, truncated,
rotated by an EXIF tag, 16-bit, palette with transparency) is settled here, so
the rest of the plug-in only ever sees H×W×3 / H×W×4 uint8 arrays, and every
failure becomes one ``ImageReadError`` whose message names the file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "ImageWriteError", "load_image", "load_mask", "encode_png",
           "write_atomic", "save_png"]


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


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path`` with the EXIF orientation applied."""
    if path.is_dir():
        raise ImageReadError(f"cannot read image {str(path)!r}: is a directory")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not later
            # transpose returns a copy (or the same image when nothing to do)
            oriented = ImageOps.exif_transpose(img)
            return oriented if oriented is not img else img.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {_describe(exc)}") from exc


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


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any image Pillow can read as H×W×3 (RGB) or H×W×4 (RGBA) uint8.

    Images with any transparency (RGBA, LA, palette or RGB with a transparency
    key) become RGBA so their alpha reaches the output layers; everything else
    (greyscale, CMYK, YCbCr, 16-bit) becomes RGB. The EXIF orientation is
    applied, so the pixels are the way every viewer shows the photo.
    """
    path = Path(path)
    img = _to_uint8(_open(path))
    has_alpha = img.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in img.info
    try:
        rgb = img.convert("RGBA" if has_alpha else "RGB")
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {_describe(exc)}") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"cannot read image {str(path)!r}: empty image")
    return np.ascontiguousarray(arr)


def load_mask(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a person mask as H×W uint8 (255 = person).

    Colour masks are reduced to their luminance; a mask with transparency uses
    its alpha where the colour is flat (the way a selection saved from an
    editor looks). ``size`` = (width, height) the mask must have: masks are
    never silently resized, because a mismatched mask means the wrong file.
    """
    path = Path(path)
    img = _to_uint8(_open(path))
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


def _pil_mode(arr: np.ndarray) -> str:
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return "L"
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        return {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    raise ValueError(f"PNG pixels must be H×W, H×W×3 or H×W×4, got shape {arr.shape}")


def encode_png(arr: np.ndarray, *, compress_level: int = 6) -> bytes:
    """Encode H×W (L), H×W×3 (RGB) or H×W×4 (RGBA) uint8 pixels as PNG bytes."""
    mode = _pil_mode(arr)
    img = Image.fromarray(np.ascontiguousarray(arr.reshape(arr.shape[:2]) if mode == "L"
                                               else arr), mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A crash or Ctrl-C mid-write then never leaves a half-written file under the
    final name (a user reopening a truncated layers.ora would lose work).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ImageWriteError(f"cannot write {str(path)!r}: {reason}") from exc
    return path


def save_png(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    """Save uint8 pixels as a PNG (mode from the shape: L, RGB or RGBA)."""
    return write_atomic(path, encode_png(arr))
