"""Compare the two ways of bringing a 16 MP layer through a style network.

Strategies (daemon/sizing.py):
- guided: stylize once at ``max_working_pixels``, guided upsampling to 16 MP.
- tiles: full-resolution tiles of ``max_working_pixels``, feathered blending,
  low frequencies shared from a working-size pass (and, for reference, without).
- tiles@2x: the equal-time variant: tiles at twice the working pixels, then the
  guided upsampling (what tiling can do when it may spend about the guided
  strategy's time rather than ~20× more).

Metrics, on the luminance at full size:
- time: wall seconds of the sizing step (engine passes + resampling);
- seam: gradient energy in the tile overlap bands ÷ elsewhere, at full size
  and at 1/8 size (tone steps between tiles show at the coarse scale), divided
  by the same ratio for the photo: 1.00 = no seam (blending two disagreeing
  textures lowers it, a tone step raises it); the guided row is measured on
  the full-size tile grid as a baseline;
- sharp: gradient energy of the output ÷ the photo's (how much fine detail);
- edge r: correlation of the output's and the photo's gradient magnitudes
  (do the painting's edges sit on the photo's contours?).

Run: .venv/bin/python bench/sizing_compare.py [--megapixels 16] [--working 1048576]
Prints a markdown table. Uses the real Magenta engine (embedded default).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from portrait_style.daemon.engines.base import RegionSettings, StyleEngine
from portrait_style.daemon.sizing import (
    GuidedUpsampling,
    guided_upsample_into,
    luminance,
    resize,
    stylize_tiled,
    tile_grid,
    uint8_band_to_float,
    working_size,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_engine(device: str) -> StyleEngine:
    from portrait_style.daemon.engines.magenta import MagentaEngine

    return MagentaEngine.load(device)


def load_images(megapixels: float) -> tuple[np.ndarray, np.ndarray]:
    content_path = DATA / "content" / "obama_official_portrait_2012.jpg"
    style_path = DATA / "style" / "van_gogh_starry_night.jpg"
    if content_path.exists():
        photo = Image.open(content_path).convert("RGB")
    else:
        from skimage.data import astronaut

        photo = Image.fromarray(astronaut())
    style = Image.open(style_path).convert("RGB") if style_path.exists() else photo
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)),
                         Image.Resampling.BICUBIC)
    style.thumbnail((512, 512))
    return np.asarray(photo), np.asarray(style)


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return uint8_band_to_float(a, 0, a.shape[0], torch.device("cpu"))


def grad_mag(y: torch.Tensor) -> torch.Tensor:
    """|∇y| of [1,1,H,W] by forward differences (cropped to H-1 × W-1)."""
    dx = y[..., :-1, 1:] - y[..., :-1, :-1]
    dy = y[..., 1:, :-1] - y[..., :-1, :-1]
    return (dx * dx + dy * dy).sqrt()


def seam_ratio(y: torch.Tensor, grid: list[tuple[int, int, int, int]], scale: int) -> float:
    """Gradient energy inside the tiles' overlap bands ÷ outside, at 1/``scale`` size."""
    height, width = y.shape[-2:]
    # the overlap bands: pixels covered by more than one tile
    cover = torch.zeros((height, width), dtype=torch.int16)
    for y0, y1, x0, x1 in grid:
        cover[y0:y1, x0:x1] += 1
    overlap = cover > 1
    g = grad_mag(F.avg_pool2d(y, scale) if scale > 1 else y)[0, 0]
    mask = overlap[::scale, ::scale][: g.shape[0], : g.shape[1]] if scale > 1 else overlap[
        :-1, :-1]
    if not mask.any() or mask.all():
        return float("nan")
    return float(g[mask].mean() / g[~mask].mean())


def sharpness(y: torch.Tensor, photo_y: torch.Tensor) -> tuple[float, float]:
    g, gp = grad_mag(y).flatten(), grad_mag(photo_y).flatten()
    ratio = float(g.mean() / gp.mean())
    g, gp = g - g.mean(), gp - gp.mean()
    corr = float((g * gp).mean() / (g.std() * gp.std()))
    return ratio, corr


def run_guided(engine: StyleEngine, photo: np.ndarray, style_state: object,
               region: RegionSettings, working: int) -> np.ndarray:
    h, w = photo.shape[:2]
    small = resize(to_tensor(photo), working_size(h, w, working))
    out = engine.stylize(engine.encode_content(small), style_state, [region])
    full = np.empty_like(photo)
    guided_upsample_into([full], out, photo, GuidedUpsampling(), photo_small=small)
    return full


def run_tiles(engine: StyleEngine, photo: np.ndarray, style_state: object,
              region: RegionSettings, working: int, shared: bool, scale_pixels: int | None
              ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    h, w = photo.shape[:2]
    full = to_tensor(photo)
    small = resize(full, working_size(h, w, working))
    reference = engine.stylize(engine.encode_content(small), style_state, [region]) if shared \
        else None
    side = int(working ** 0.5)
    overlap = side // 8
    target = full if scale_pixels is None else resize(full, working_size(h, w, scale_pixels))
    del full
    out = stylize_tiled(engine, target, style_state, [region], side, overlap,
                        reference=reference)
    th, tw = out.shape[-2:]
    grid = [(round(y0 * h / th), round(y1 * h / th), round(x0 * w / tw), round(x1 * w / tw))
            for y0, y1, x0, x1 in tile_grid(th, tw, side, overlap)]
    result = np.empty_like(photo)
    if scale_pixels is None:
        result[...] = (out[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    else:
        guided_upsample_into([result], out, photo, GuidedUpsampling(), photo_small=target)
    return result, grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=16.0)
    parser.add_argument("--working", type=int, default=1024 * 1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, help="folder for crops of each result")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    engine = load_engine(args.device)
    photo, style = load_images(args.megapixels)
    h, w = photo.shape[:2]
    region = RegionSettings(strength=1.0)
    with torch.inference_mode():
        style_state = engine.encode_style(resize(to_tensor(style), working_size(
            *style.shape[:2], 512 * 512)))
        photo_y = luminance(to_tensor(photo))

        runs: list[tuple[str, Callable[[], tuple[np.ndarray, list | None]]]] = [
            ("guided", lambda: (run_guided(engine, photo, style_state, region, args.working),
                                None)),
            ("tiles (shared low freq.)", lambda: run_tiles(
                engine, photo, style_state, region, args.working, True, None)),
            ("tiles (independent)", lambda: run_tiles(
                engine, photo, style_state, region, args.working, False, None)),
            ("tiles@2x + guided (≈ equal time)", lambda: run_tiles(
                engine, photo, style_state, region, args.working, True, 2 * args.working)),
        ]
        rows = []
        full_grid = tile_grid(h, w, int(args.working ** 0.5), int(args.working ** 0.5) // 8)
        for name, fn in runs:
            t0 = time.perf_counter()
            out, grid = fn()
            seconds = time.perf_counter() - t0
            passes = len(grid) if grid else 1
            grid = grid or full_grid
            y = luminance(to_tensor(out))
            # relative to the photo's own ratio on the same grid: overlap bands may
            # cross more (or fewer) contours than the average, which is not a seam
            seam_full = seam_ratio(y, grid, 1) / seam_ratio(photo_y, grid, 1)
            seam_coarse = seam_ratio(y, grid, 8) / seam_ratio(photo_y, grid, 8)
            sharp, corr = sharpness(y, photo_y)
            rows.append((name, seconds, passes, seam_full, seam_coarse, sharp, corr))
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                crop = out[h // 8: h // 8 + 1024, w // 4: w // 4 + 1024]
                Image.fromarray(crop).save(args.save / f"{name.split()[0]}.png")
            del out, y

    print(f"\n{w}×{h} ({w * h / 1e6:.1f} MP) portrait, engine {engine.name} on "
          f"{args.device} ({args.threads} threads), max_working_pixels {args.working}\n")
    print("| strategy | time s | engine passes | seam full | seam 1/8 | sharp vs photo | edge r |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, seconds, tiles, sf, sc, sharp, corr in rows:
        print(f"| {name} | {seconds:.1f} | {tiles} | {sf:.3f} | {sc:.3f} | {sharp:.2f} | "
              f"{corr:.3f} |")


if __name__ == "__main__":
    main()
