"""Inside GIMP (python-fu-eval): the core's Document contract on the real GimpDocument.

Run by tests/test_gimp.py with ``PARAMS`` defined before this text: ``plugin_dir``
(the installed plug-in folder). Writes {case: [broken rules]} to the result file.
Cases: an 8-bit layer filling the canvas, a smaller moved layer with alpha, a
16-bit linear image and a float one, so every precision path is exercised.
"""

import json
import os
import sys
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

sys.path.insert(0, PARAMS["plugin_dir"])  # noqa: F821 - defined by the test
from portrait_style_gimp._core.plugin.wire import ensure_wire  # noqa: E402

ensure_wire(Path(PARAMS["plugin_dir"]) / "portrait_style_gimp" / "_wire")  # noqa: F821
from portrait_style_gimp._core.plugin.contract import run_contract  # noqa: E402
from portrait_style_gimp.document import GimpDocument  # noqa: E402


def gradient(width, height, channels):
    """Every sample different enough to catch swapped channels, rows or offsets."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            px = [(x * 7 + y) % 256, (y * 5 + 3) % 256, (x * y) % 256]
            if channels == 4:
                px.append(255 if (x + y) % 3 else 128)
            out += bytes(px)
    return bytes(out)


def make(precision, size, layer_box, alpha):
    image = Gimp.Image.new_with_precision(size[0], size[1], Gimp.ImageBaseType.RGB, precision)
    x, y, w, h = layer_box
    kind = Gimp.ImageType.RGBA_IMAGE if alpha else Gimp.ImageType.RGB_IMAGE
    layer = Gimp.Layer.new(image, "Photo", w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(x, y)
    fmt = "R'G'B'A u8" if alpha else "R'G'B' u8"
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), fmt, gradient(w, h, 4 if alpha else 3))
    buf.flush()
    image.set_selected_layers([layer])
    return image, layer


CASES = {
    "u8 full canvas": (Gimp.Precision.U8_NON_LINEAR, (48, 32), (0, 0, 48, 32), False),
    "u8 small moved alpha": (Gimp.Precision.U8_NON_LINEAR, (64, 48), (9, 5, 30, 21), True),
    "u16 linear": (Gimp.Precision.U16_LINEAR, (40, 30), (3, 2, 33, 25), True),
    "float linear": (Gimp.Precision.FLOAT_LINEAR, (40, 30), (0, 0, 40, 30), False),
}
results = {}
for case, (precision, size, box, alpha) in CASES.items():
    image, layer = make(precision, size, box, alpha)
    try:
        results[case] = run_contract(GimpDocument(image), layer)
    except Exception as exc:  # a crash is a broken contract too, with its reason
        import traceback

        results[case] = [f"raised {type(exc).__name__}: {exc}", traceback.format_exc()]
    image.delete()

with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(results, out, indent=1)
