"""Make the README's top picture from a real run of the main job (``docs/demo.jpg``).

Why a script: the picture must show what the product does today, so it is
rebuilt from ``portrait-style stylize``'s own output files, not edited by hand:
photo, background layer, portrait layer, person mask, composite, side by side.

    .venv/bin/portrait-style stylize sample:astronaut --style sample:starry_night --out out/demo
    .venv/bin/python bench/demo_figure.py out/demo docs/demo.jpg
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from PIL import Image

TILE = 320


def main(out_dir: Path, target: Path) -> None:
    photo = Path(str(resources.files("portrait_style") / "samples" / "astronaut.jpg"))
    names = ["background.png", "portrait.png", "mask.png", "composite.png"]
    tiles = [Image.open(photo).convert("RGB")]
    tiles += [Image.open(out_dir / name).convert("RGB") for name in names]
    strip = Image.new("RGB", (TILE * len(tiles), TILE), "white")
    for index, tile in enumerate(tiles):
        strip.paste(tile.resize((TILE, TILE), Image.Resampling.LANCZOS), (index * TILE, 0))
    strip.save(target, quality=88)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
