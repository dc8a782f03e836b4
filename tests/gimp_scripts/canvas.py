"""Inside the GUI GIMP (python-fu-eval batch with a real display): what the canvas shows.

Run by tests/test_gimp.py with ``PARAMS`` defined before this text:
  content   the photo (8-bit RGB PNG), style: the painting
  endpoint  the host daemon's endpoint
  out       folder for pixel dumps and the handshake files
Opens the photo in a window and walks the artist's path, pausing at each step
so the test can screenshot the screen or press keys (Ctrl+Z) on the real
display: Apply → Re-run of the portrait with an edited mask → Undo → Undo.
Handshake: this script writes ``out/<step>.ready`` and waits for
``out/<step>.go`` from the test. After every step the flattened image (a
duplicate, flattened) is dumped, which is what the canvas shows.
"""

import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
from gi.repository import Babl, Gegl, Gimp, Gio  # noqa: E402

P = PARAMS  # noqa: F821 - defined by the test
OUT = P["out"]
RECORD = "portrait-style-job"
report = {"steps": {}}


def dump(name, drawable, fmt, channels):
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt,
                                     Gegl.AbyssPolicy.NONE)
    with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
        fh.write(bytes(data))
    return {"file": name + ".bin", "width": w, "height": h, "channels": channels}


def mask_format(mask):
    return Babl.format_get_encoding(mask.get_format()).split(" ")[0] + " u8"


def flattened(image, name):
    copy = image.duplicate()
    info = dump(name, copy.flatten(), "R'G'B' u8", 3)
    copy.delete()
    return info


def handshake(step, timeout=120):
    """Tell the test this step is on screen; go on when it says so."""
    Gimp.displays_flush()
    with open(os.path.join(OUT, step + ".ready"), "w") as fh:
        fh.write("ready\n")
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(OUT, step + ".go")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never answered step {step}")
        time.sleep(0.1)


def call(name, image, drawables, **args):
    proc = Gimp.get_pdb().lookup_procedure(name)
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        cfg.set_property(key, value)
    status = proc.run(cfg).index(0)
    error = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else ""
    return {"status": status.value_nick, "error": error}


def state(image, name):
    """The flattened image, the layer count and the modified flag after a step."""
    return {"flat": flattened(image, name), "layers": len(image.get_layers()),
            "dirty": bool(image.is_dirty())}


def find_group(image):
    for layer in image.get_layers():
        if layer.is_group() and layer.get_parasite(RECORD) is not None:
            return layer
    return None


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["content"]))
image.clean_all()
source = image.get_layers()[0]
display = Gimp.Display.new(image)
report["photo"] = state(image, "photo")
handshake("photo")

report["steps"]["apply"] = call("plug-in-portrait-style", image, [source],
                                style=Gio.File.new_for_path(P["style"]), endpoint=P["endpoint"])
report["apply"] = state(image, "apply")
group = find_group(image)
if group is not None:
    portrait = [c for c in group.get_children() if c.get_mask() is not None][0]
    report["apply_mask"] = dump("apply-mask", portrait.get_mask(),
                                mask_format(portrait.get_mask()), 1)
handshake("apply")

if group is not None:
    # the artist paints the mask black over the upper left, then re-runs the portrait
    mask = portrait.get_mask()
    buf = mask.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, mask.get_width() // 2, mask.get_height() // 3),
            mask_format(mask), bytes([0]) * (mask.get_width() // 2 * (mask.get_height() // 3)))
    buf.flush()
    mask.update(0, 0, mask.get_width(), mask.get_height())
    report["edited_mask"] = dump("edited-mask", mask, mask_format(mask), 1)
    report["edited"] = state(image, "edited")
    report["steps"]["rerun"] = call("plug-in-portrait-style-rerun-portrait", image, [group],
                                    endpoint=P["endpoint"])
    report["rerun"] = state(image, "rerun")
    handshake("rerun")  # the test presses Ctrl+Z once: the re-run is undone
    report["undo1"] = state(image, "undo1")
    handshake("undo1")  # and once more: the Apply is undone
    report["undo2"] = state(image, "undo2")

with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(report, out, indent=1)
image.clean_all()  # no "discard changes?" question on quit
