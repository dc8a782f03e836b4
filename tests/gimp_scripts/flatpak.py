"""Inside GIMP in a Flatpak-shaped sandbox: Apply the INSTALLED plug-in with no endpoint set.

Run by tests/test_flatpak.py with ``PARAMS`` defined before this text:
  content  an 8-bit RGB PNG (the photo), style: an 8-bit RGB PNG (the painting)
  out      folder for raw pixel dumps
The plug-in must find the daemon by itself (the per-user socket), as after the
installer. Writes a JSON report to $PORTRAIT_STYLE_RESULT.
"""

import json
import os

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

P = PARAMS  # noqa: F821 - defined by the test
report = {"gimp_directory": Gimp.directory(), "flatpak_id": os.environ.get("FLATPAK_ID")}


def dump(name, drawable, fmt):
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt,
                                     Gegl.AbyssPolicy.NONE)
    with open(os.path.join(P["out"], name + ".bin"), "wb") as fh:
        fh.write(bytes(data))
    return {"file": name + ".bin", "width": w, "height": h}


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["content"]))
source = image.get_layers()[0]
proc = Gimp.get_pdb().lookup_procedure("plug-in-portrait-style")
report["registered"] = proc is not None
if proc is not None:
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [source])
    cfg.set_property("style", Gio.File.new_for_path(P["style"]))
    cfg.set_property("endpoint", "")
    result = proc.run(cfg)
    status = result.index(0)
    report["status"] = status.value_nick
    report["error"] = (Gimp.get_pdb().get_last_error()
                       if status != Gimp.PDBStatusType.SUCCESS else "")
    groups = [layer for layer in image.get_layers() if layer.is_group()]
    report["groups"] = len(groups)
    if groups:
        layers = {}
        for child in groups[0].get_children():
            fmt = "R'G'B'A u8" if child.has_alpha() else "R'G'B' u8"
            layers[child.get_name()] = {**dump(child.get_name().replace(" ", "_"), child, fmt),
                                        "channels": 4 if child.has_alpha() else 3,
                                        "mask": child.get_mask() is not None}
        report["layers"] = layers
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as fh:
    json.dump(report, fh)
