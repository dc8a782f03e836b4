"""Inside the GUI GIMP: open the photo, run Portrait Style INTERACTIVE, dump the result.

Run by tests/test_gimp_controls.py with ``PARAMS`` defined before this text:
``content`` (the photo), ``out`` (a folder for pixels), optionally ``run_mode``
("with-last-vals"; default: interactive, no display needed then). The test drives the
dialog with real clicks (it learns where from the dialog's test files) and
presses OK; this script only reports what the image holds afterwards: the
status, the result groups, the record's knobs and the flattened image.
"""

import json
import os

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

P = PARAMS  # noqa: F821 - defined by the test
RECORD = "portrait-style-job"


def flattened(image, name):
    copy = image.duplicate()
    layer = copy.flatten()
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B' u8",
                                  Gegl.AbyssPolicy.NONE)
    with open(os.path.join(P["out"], name + ".bin"), "wb") as fh:
        fh.write(bytes(data))
    copy.delete()
    return {"file": name + ".bin", "width": w, "height": h, "channels": 3}


def record_text(item):
    parasite = item.get_parasite(RECORD)
    return bytes(v & 0xFF for v in parasite.get_data()).decode() if parasite else None


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["content"]))
last_values = P.get("run_mode") == "with-last-vals"
if not last_values:
    Gimp.Display.new(image)
    Gimp.displays_flush()
layer = image.get_layers()[0]
report = {"photo": flattened(image, "photo")}
proc = Gimp.get_pdb().lookup_procedure("plug-in-portrait-style")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS if last_values
                 else Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", image)
cfg.set_core_object_array("drawables", [layer])
status = proc.run(cfg).index(0)
report["status"] = status.value_nick
report["error"] = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else ""
groups = [item for item in image.get_layers() if item.is_group() and record_text(item)]
report["groups"] = [g.get_name() for g in groups]
report["records"] = [json.loads(record_text(g)) for g in groups]
report["after"] = flattened(image, "after")
image.clean_all()  # no "discard changes?" question on quit
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(report, out, indent=1)
