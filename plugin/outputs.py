"""The command-line host's output files, written fast, lean and all-or-nothing.

Why a module of its own: for a 24 MP photo the daemon computes the layers in
seconds, and writing them used to take far longer than that (every layer encoded
twice at a slow zlib level, the ORA built in memory and its merged image
re-composited in float). Here:

- each image is PNG-encoded exactly once, streamed to its file at zlib level 1
  (``imageio.write_png``), and the ORA takes that same file as its member: the
  background, the mask and ``composite.png`` (the ORA's ``mergedimage.png``)
  are copied into the zip, not re-encoded; only the portrait cut by the mask,
  which no other file holds, is encoded for the ORA alone;
- the composite is the daemon's; it is composed here only when the daemon was
  not asked for one;
- files are encoded on threads (numpy and zlib release the GIL);
- everything is written under temporary names and renamed only once every file
  is complete, so an error (a full disk) leaves no partial outputs behind.

The ORA layout is the one ``plugin/ora.py`` always wrote: the group (hidden
person mask, portrait cut by the mask since ORA has no layer masks, background)
above the source layer, ``mergedimage.png`` = the composite.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from .core import BACKGROUND_LAYER, MASK_LAYER, PORTRAIT_LAYER
from .imageio import PendingFile, encode_png, remove_stale_temporaries, write_png
from .ora import THUMBNAIL_MAX, OraLayer, OraStack, assign_sources, stack_xml, write_container

__all__ = ["ORA_NAME", "PNG_NAMES", "CutByMask", "write_outputs", "cut_by_mask",
           "compose_bands"]

#: the PNG files, in the order they are listed (the layer names the daemon uses)
PNG_NAMES = ("background", "portrait", "mask", "composite")
ORA_NAME = "layers.ora"
DEFAULT_GROUP_NAME = "Portrait style"
#: every name a temporary file of ours may stand for in the output folder
TEMPORARY_NAMES = (*(f"{name}.png" for name in PNG_NAMES), ORA_NAME,
                   *(f"{ORA_NAME}.{part}.png" for part in ("portrait", "source", "merged")))
#: rows per band of the composing / cutting loops (bounds their temporaries)
_BAND_ROWS = 256


def compose_bands(background: np.ndarray, portrait: np.ndarray, mask: np.ndarray
                  ) -> np.ndarray:
    """Portrait over background through the mask (255 = portrait), background's alpha.

    The same integer formula as ``plugin.core.compose``, in row bands so a 24 MP
    composite needs no full-size uint32 temporaries. Only used when the daemon
    did not send its composite.
    """
    out = np.empty(background.shape, np.uint8)
    for y0 in range(0, mask.shape[0], _BAND_ROWS):
        rows = slice(y0, y0 + _BAND_ROWS)
        m = mask[rows].astype(np.uint32)[..., None]
        rgb = (portrait[rows, :, :3].astype(np.uint32) * m
               + background[rows, :, :3].astype(np.uint32) * (255 - m) + 127) // 255
        out[rows, :, :3] = rgb
    if background.shape[2] == 4:
        out[..., 3] = background[..., 3]
    return out


class CutByMask:
    """The portrait as the ORA needs it, made band by band: RGBA, alpha = alpha × mask.

    Colour under alpha 0 is black: invisible in every reader, and the long zero
    runs deflate fast (the full-frame portrait is in portrait.png anyway). A
    ``RowSource``: the encoder pulls a few MB of rows at a time, so the cut image
    never exists whole (a 24 MP one would be 96 MB) and each band stays in cache.
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, pixels: np.ndarray, mask: np.ndarray) -> None:
        self.pixels, self.mask = pixels, mask
        self.shape = (*pixels.shape[:2], 4)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        m = self.mask[y0:y1]
        if self.pixels.shape[2] == 4:
            # round(a·m / 255) exactly, in uint16: t = a·m + 128, (t + (t >> 8)) >> 8
            t = self.pixels[y0:y1, :, 3].astype(np.uint16) * m + np.uint16(128)
            alpha = ((t + (t >> 8)) >> 8).astype(np.uint8)
        else:
            alpha = m
        band = np.empty((y1 - y0, self.shape[1], 4), np.uint8)
        np.multiply(self.pixels[y0:y1, :, :3], (alpha != 0)[..., None], out=band[..., :3])
        band[..., 3] = alpha
        return band


def cut_by_mask(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The whole ``CutByMask`` image as one array (for tests and small layers)."""
    return CutByMask(pixels, mask).rows(0, mask.shape[0])


def _check(layers: Mapping[str, np.ndarray], source: np.ndarray | None
           ) -> tuple[int, int]:
    """(height, width) shared by every layer; ValueError for anything malformed."""
    unknown = set(layers) - set(PNG_NAMES)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; known: {', '.join(PNG_NAMES)}")
    if not layers:
        raise ValueError("no layers to write")
    sizes = set()
    for name, arr in [*layers.items(), *([("source", source)] if source is not None else [])]:
        want = "H×W" if name == "mask" else "H×W×3 or H×W×4"
        ok = arr.ndim == 2 if name == "mask" else (arr.ndim == 3 and arr.shape[2] in (3, 4))
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or not ok:
            raise ValueError(f"{name} must be {want} uint8, got {getattr(arr, 'dtype', None)} "
                             f"{getattr(arr, 'shape', None)}")
        sizes.add(arr.shape[:2])
    if len(sizes) != 1:
        raise ValueError(f"layers differ in size: {sorted(sizes)}")
    return sizes.pop()


def _thumbnail(image: np.ndarray) -> bytes:
    """A ≤256² PNG of ``image``: strided to ~4× the target first, then Lanczos."""
    step = max(1, max(image.shape[:2]) // (4 * THUMBNAIL_MAX))
    thumb = Image.fromarray(np.ascontiguousarray(image[::step, ::step]))
    thumb.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.LANCZOS)
    return encode_png(np.asarray(thumb))


def _merged(composite: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The composite placed on the canvas (offset + size), transparent around it."""
    x, y = offset
    height, width = composite.shape[:2]
    canvas = np.zeros((y + height, x + width, 4), np.uint8)
    canvas[y:, x:, :composite.shape[2]] = composite
    if composite.shape[2] == 3:
        canvas[y:, x:, 3] = 255
    return canvas


def write_outputs(out_dir: Path, layers: Mapping[str, np.ndarray], *, source_name: str,
                  offset: tuple[int, int] = (0, 0), dpi: float | None = None,
                  parallel: bool = True, group_name: str = DEFAULT_GROUP_NAME,
                  source: np.ndarray | None = None,
                  timings: dict[str, float] | None = None) -> list[Path]:
    """Write background.png, portrait.png, mask.png, composite.png and layers.ora.

    layers: any of "background", "portrait" (H×W×3/4 uint8, full frame, not cut),
        "mask" (H×W uint8, 255 = person) and "composite" (as the daemon sent it).
        A PNG is written for each one present; when background, portrait and mask
        are all present, composite.png (composed here if absent) and layers.ora too.
    source_name / source: the name and, when given, the pixels of the source
        layer, the bottom layer of the ORA (left out when ``source`` is None).
    offset: (x, y) of the layers on the ORA canvas (canvas = offset + size).
    dpi: written as the PNGs' pHYs and the ORA's xres/yres.
    group_name: the ORA group's name ("Portrait style — <style>").
    parallel: encode the files on threads (one per core).
    timings: if given, filled with each file's encoding seconds and ``write_s``,
        the wall time of the whole call.

    Returns the paths written (PNG order above, then layers.ora). Nothing is
    written unless everything is: on failure every temporary file is removed and
    ``ImageWriteError`` names the file that failed. Bad arrays raise ValueError.
    """
    started = time.perf_counter()
    height, width = _check(layers, source)
    out_dir = Path(out_dir)
    if out_dir.is_dir():  # what runs killed outright (SIGKILL, power) left behind
        remove_stale_temporaries(out_dir, TEMPORARY_NAMES)
    images = dict(layers)
    with_ora = all(name in images for name in ("background", "portrait", "mask"))
    if with_ora and "composite" not in images:
        images["composite"] = compose_bands(images["background"], images["portrait"],
                                            images["mask"])
    pending: dict[str, PendingFile] = {}
    jobs: list[tuple[str, Callable[[BinaryIO], object]]] = []

    def png_job(key: str, target: Path, pixels: np.ndarray) -> None:
        pending[key] = PendingFile(target)
        jobs.append((key, lambda fh: write_png(fh, pixels, dpi=dpi)))

    try:
        for name in PNG_NAMES:
            if name in images:
                png_job(name, out_dir / f"{name}.png", images[name])
        if with_ora:
            # the one image only the ORA holds; a temporary file that is never committed
            pending["ora:portrait"] = PendingFile(out_dir / f"{ORA_NAME}.portrait.png")
            portrait, mask = images["portrait"], images["mask"]
            jobs.append(("ora:portrait", lambda fh: write_png(fh, CutByMask(portrait, mask),
                                                              dpi=dpi)))
            if source is not None:
                png_job("ora:source", out_dir / f"{ORA_NAME}.source.png", source)
            if tuple(offset) != (0, 0):
                png_job("ora:merged", out_dir / f"{ORA_NAME}.merged.png",
                        _merged(images["composite"], offset))
        # the biggest encodings first, the small mask last: two threads finish together
        jobs.sort(key=lambda job: (job[0] != "ora:portrait", job[0] == "mask"))
        spent = _run_jobs(jobs, pending, parallel)
        written: list[Path] = []
        if with_ora:
            t0 = time.perf_counter()
            ora = PendingFile(out_dir / ORA_NAME)
            pending[ORA_NAME] = ora
            merged = pending.get("ora:merged", pending["composite"]).tmp
            ora.write_with(lambda fh: _write_ora(
                fh, pending, merged, width + offset[0], height + offset[1], offset,
                source_name if source is not None else None, group_name, dpi,
                images["composite"]))
            spent[ORA_NAME] = time.perf_counter() - t0
        for name in [*PNG_NAMES, ORA_NAME]:
            if name in pending:
                written.append(pending.pop(name).commit())
    finally:
        for left in pending.values():
            left.discard()
    if timings is not None:
        timings.update(spent)
        timings["write_s"] = time.perf_counter() - started
    return written


def _run_jobs(jobs: list[tuple[str, Callable[[BinaryIO], object]]],
              pending: Mapping[str, PendingFile], parallel: bool) -> dict[str, float]:
    """Run every (key, writer) into its pending file; seconds per key. Re-raises the first
    failure (an OSError becomes ImageWriteError naming the final file)."""

    def run(key: str, writer: Callable[[BinaryIO], object]) -> float:
        t0 = time.perf_counter()
        pending[key].write_with(writer)
        return time.perf_counter() - t0

    workers = min(len(jobs), os.cpu_count() or 1) if parallel else 1
    if workers <= 1:
        return {key: run(key, writer) for key, writer in jobs}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write") as pool:
        futures = {key: pool.submit(run, key, writer) for key, writer in jobs}
        return {key: future.result() for key, future in futures.items()}


def _write_ora(fh: BinaryIO, pending: Mapping[str, PendingFile], merged: Path, width: int,
               height: int, offset: tuple[int, int], source_name: str | None,
               group_name: str, dpi: float | None, composite: np.ndarray) -> None:
    """The ORA zip from the PNG files already written (members streamed, not re-encoded)."""
    x, y = offset
    mask = OraLayer(MASK_LAYER, None, x, y, visible=False)
    portrait = OraLayer(PORTRAIT_LAYER, None, x, y)
    background = OraLayer(BACKGROUND_LAYER, None, x, y)
    files = {id(mask): pending["mask"].tmp, id(portrait): pending["ora:portrait"].tmp,
             id(background): pending["background"].tmp}
    nodes: list[OraLayer | OraStack] = [OraStack(group_name, [mask, portrait, background])]
    if source_name is not None:
        nodes.append(OraLayer(source_name, None, x, y))
        files[id(nodes[-1])] = pending["ora:source"].tmp
    members: list[tuple[str, bytes | Path]] = [
        (layer.src, files[id(layer)]) for layer in assign_sources(nodes)]
    members += [("Thumbnails/thumbnail.png", _thumbnail(composite)), ("mergedimage.png", merged)]
    write_container(fh, stack_xml(nodes, width, height, dpi), members)

