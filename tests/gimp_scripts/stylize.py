"""Inside GIMP (python-fu-eval): call the INSTALLED plug-in through the PDB, as a script would.

Run by tests/test_gimp.py with ``PARAMS`` defined before this text:
  case        "main" | "moved" | "u16" | "gray" | "indexed" | "two" | "huge-style" |
              "cancel" | "unreachable" | "again" | "bad-styles"
  bad_styles  ("bad-styles") {name: path} of paintings that decode only partly
  content     an 8-bit RGB PNG (the photo), style: an 8-bit RGB PNG (the painting)
  endpoint    the host daemon's endpoint (passed as the procedure's argument)
  out         folder for raw pixel dumps (the test compares them with the daemon's own)
Writes a JSON report to $PORTRAIT_STYLE_RESULT. Pixels are dumped as raw 8-bit
files (``NAME.bin``) next to ``NAME.json``-free metadata in the report, so the
host can compare them with numpy. Nothing is judged here except what only GIMP
can see (names, offsets, parasites, precision, the .xcf round trip).
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
report = {"case": P["case"], "steps": {}}


def dump(name, drawable, fmt, channels):
    """Raw 8-bit pixels of ``drawable`` in ``fmt`` → OUT/name.bin; its geometry."""
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt,
                                     Gegl.AbyssPolicy.NONE)
    with open(os.path.join(OUT, name + ".bin"), "wb") as fh:
        fh.write(bytes(data))
    _, x, y = drawable.get_offsets()
    return {"file": name + ".bin", "width": w, "height": h, "channels": channels,
            "offset": [x, y]}


def mask_format(mask):
    """8-bit with the mask's own transfer curve, so values read as stored."""
    return Babl.format_get_encoding(mask.get_format()).split(" ")[0] + " u8"


def call(name, image, drawables, **args):
    """Run a PDB procedure non-interactively; (status nick, error text, seconds)."""
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        raise RuntimeError(f"procedure {name} is not registered")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        cfg.set_property(key, value)
    started = time.monotonic()
    result = proc.run(cfg)
    seconds = time.monotonic() - started
    status = result.index(0)
    error = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else ""
    return status.value_nick, error, seconds


def parasite_text(item, name):
    parasite = item.get_parasite(name)
    return None if parasite is None else bytes(v & 0xFF for v in parasite.get_data()).decode()


def find_group(image):
    """The result group, found by its record parasite (names may carry ' #1')."""
    for layer in image.get_layers():
        if layer.is_group() and layer.get_parasite(RECORD) is not None:
            return layer
    return None


def describe(image, group, prefix):
    """Everything the test checks about a result group, with its pixels dumped."""
    children = group.get_children()
    info = {"group_name": group.get_name(), "children": [c.get_name() for c in children],
            "record": parasite_text(group, RECORD),
            "group_spaces": [group.get_blend_space().value_nick,
                             group.get_composite_space().value_nick],
            "position": image.get_item_position(group), "layers": {}}
    for child in children:
        role = parasite_text(child, "portrait-style-role") or child.get_name()
        fmt, channels = (("R'G'B'A u8", 4) if child.has_alpha() else ("R'G'B' u8", 3))
        entry = dump(f"{prefix}-{role}", child, fmt, channels)
        entry["name"] = child.get_name()
        entry["spaces"] = [child.get_blend_space().value_nick,
                           child.get_composite_space().value_nick]
        entry["mode"] = child.get_mode().value_nick
        entry["is_gray"] = child.is_gray()
        mask = child.get_mask()
        entry["mask"] = dump(f"{prefix}-{role}-mask", mask, mask_format(mask), 1) if mask else None
        info["layers"][role] = entry
    return info


def flattened(image, name):
    copy = image.duplicate()
    layer = copy.flatten()
    info = dump(name, layer, "R'G'B' u8", 3)
    copy.delete()
    return info


def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


style = Gio.File.new_for_path(P["style"])
image = load(P["content"])
source = image.get_layers()[0]

if P["case"] == "moved":
    # a layer smaller than the canvas, moved, with alpha: canvas grows, layer shrinks
    image.resize(image.get_width() + 60, image.get_height() + 40, 0, 0)
    source.add_alpha()
    source.scale(source.get_width() * 2 // 3, source.get_height() * 2 // 3, False)
    source.set_offsets(37, 23)
    w, h = source.get_width(), source.get_height()
    # a soft transparent corner so alpha handling shows
    alpha_box = bytes([0, 0, 0, 0]) * (20 * 20)
    buf = source.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, 20, 20), "R'G'B'A u8", alpha_box)
    buf.flush()
elif P["case"] == "u16":
    image.convert_precision(Gimp.Precision.U16_LINEAR)
elif P["case"] == "gray":
    image.convert_grayscale()
elif P["case"] == "indexed":
    # the palette (a name in GIMP 3.0) is ignored for a generated palette
    image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 256,
                          False, False, "")
elif P["case"] == "cancel":
    image.scale(3072, 3072)  # a job long enough (seconds) for the test to kill the plug-in
elif P["case"] == "two":
    # two selected layers: each gets its own group, directly above it
    second = source.copy()
    image.insert_layer(second, None, 0)
    second.set_name("Second photo")
    second.set_offsets(15, 9)
    image.set_selected_layers([source, second])

fmt, channels = ("R'G'B'A u8", 4) if source.has_alpha() else ("R'G'B' u8", 3)
report["source_before"] = dump("source-before", source, fmt, channels)  # grey: R'=G'=B'
report["precision"] = image.get_precision().value_nick
report["base_type"] = image.get_base_type().value_nick

# as saved: from here on, a modified ("dirty") image means the plug-in touched it
# (an image loaded by a script starts out marked modified)
image.clean_all()

if P["case"] == "bad-styles":
    # paintings that decode only partly are refused, naming the file; nothing changes
    report["bad_styles"] = {}
    for name, path in P["bad_styles"].items():
        before = len(image.get_layers())
        status, error, seconds = call("plug-in-portrait-style", image, [source],
                                      style=Gio.File.new_for_path(path), endpoint=P["endpoint"])
        report["bad_styles"][name] = {"status": status, "error": error,
                                      "new_layers": len(image.get_layers()) - before,
                                      "dirty": bool(image.is_dirty())}

targets = image.get_selected_layers() if P["case"] == "two" else [source]
status, error, seconds = call("plug-in-portrait-style", image, targets, style=style,
                              endpoint=P["endpoint"])
report["steps"]["stylize"] = {"status": status, "error": error, "seconds": seconds}
group = find_group(image)
report["layer_count"] = len(image.get_layers())
report["dirty"] = bool(image.is_dirty())  # what GIMP's title bar star and quit question show
report["stack"] = [{"name": layer.get_name(), "tattoo": layer.get_tattoo(),
                    "record": parasite_text(layer, RECORD)} for layer in image.get_layers()]

if group is not None:
    report["source_after"] = dump("source-after", source, fmt, channels)
    report["source_name"] = source.get_name()
    report["result"] = describe(image, group, "first")
    report["precision_after"] = image.get_precision().value_nick
# what the artist sees after the call (the photo again when nothing was applied)
report["flat"] = flattened(image, "flat-first")

if group is not None and P["case"] == "main":
    # the artist edits the mask: a black box over the face's left half…
    portrait = [c for c in group.get_children() if c.get_mask() is not None][0]
    mask = portrait.get_mask()
    box = Gegl.Rectangle.new(10, 10, 60, 40)
    mbuf = mask.get_buffer()
    mbuf.set(box, mask_format(mask), bytes([0]) * (60 * 40))
    mbuf.set(Gegl.Rectangle.new(0, mask.get_height() - 30, 50, 30), mask_format(mask),
             bytes([255]) * (50 * 30))
    mbuf.flush()
    report["edited_mask"] = dump("edited-mask", mask, mask_format(mask), 1)
    report["mask_encoding"] = Babl.format_get_encoding(mask.get_format())
    # …then re-runs the portrait, selecting the group itself
    status, error, seconds = call("plug-in-portrait-style-rerun-portrait", image, [group],
                                  endpoint=P["endpoint"])
    report["steps"]["rerun-portrait"] = {"status": status, "error": error, "seconds": seconds}
    report["after_rerun"] = describe(image, find_group(image), "rerun")
    report["flat_rerun"] = flattened(image, "flat-rerun")

    # save as .xcf, reopen, and re-run the background from the reopened file
    xcf = os.path.join(OUT, "result.xcf")
    report["saved"] = bool(Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image,
                                          Gio.File.new_for_path(xcf), None))
    reopened = load(xcf)
    again = find_group(reopened)
    report["reloaded"] = describe(reopened, again, "reloaded") if again else None
    if again is not None:
        inner = again.get_children()[-1]  # a layer inside the group works as well
        # (the Layers dock's twin of the re-run, as the artist's right click runs it)
        status, error, seconds = call("plug-in-portrait-style-rerun-background-from-layers",
                                      reopened,
                                      [inner], endpoint=P["endpoint"])
        report["steps"]["rerun-background"] = {"status": status, "error": error,
                                               "seconds": seconds}
        report["after_background_rerun"] = describe(reopened, find_group(reopened),
                                                    "rerun-bg")
    reopened.delete()

    # a run without a style painting is refused in words, and adds nothing
    before = len(image.get_layers())
    status, error, seconds = call("plug-in-portrait-style", image, [source], style=None,
                                  endpoint=P["endpoint"])
    report["steps"]["no-style"] = {"status": status, "error": error,
                                   "new_layers": len(image.get_layers()) - before}

if group is not None and P["case"] == "again":
    # the artist applies again to the photo: the new group must land above the first one
    # (directly above the photo it would sit under it, hidden); then with a layer inside a
    # result group selected, which stands for that group's photo
    steps = [("again-source", source, {"preserve-color": True}),
             ("again-inside", None, {"background-strength": 0.3})]
    for name, target, extra in steps:
        if target is None:
            top = find_group(image)
            target = [c for c in top.get_children() if c.get_mask() is not None][0]
        image.set_selected_layers([target])
        status, error, seconds = call("plug-in-portrait-style", image, [target], style=style,
                                      endpoint=P["endpoint"], **extra)
        report["steps"][name] = {"status": status, "error": error, "seconds": seconds}
        report[name] = {
            "stack": [{"name": layer.get_name(), "tattoo": layer.get_tattoo(),
                       "visible": layer.get_visible(),
                       "record": parasite_text(layer, RECORD)} for layer in image.get_layers()],
            "top": describe(image, find_group(image), name),
            "flat": flattened(image, f"flat-{name}")}
    # the photo is deleted: a layer of its result group cannot stand for it any more
    image.remove_layer(source)
    target = [c for c in find_group(image).get_children() if c.get_mask() is not None][0]
    before = len(image.get_layers())
    status, error, seconds = call("plug-in-portrait-style", image, [target], style=style,
                                  endpoint=P["endpoint"])
    report["steps"]["source-gone"] = {"status": status, "error": error,
                                      "new_layers": len(image.get_layers()) - before}

image.delete()
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(report, out, indent=1)
