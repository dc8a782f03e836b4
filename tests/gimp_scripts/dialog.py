"""Inside the GUI GIMP (python-fu-eval batch in a real display): the dialog, then last values.

Run by tests/test_gimp.py with ``PARAMS`` defined before this text: ``content``
(the photo). The daemon's endpoint comes from portrait-style's config file in
this HOME, as for a user. Opens the photo in a window, calls the procedure
INTERACTIVE (the test screenshots the dialog and lets it answer OK), then
WITH_LAST_VALS, which must reuse the dialog's choices without asking.
"""

import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

P = PARAMS  # noqa: F821 - defined by the test
RECORD = "portrait-style-job"


def groups(image):
    return [layer.get_name() for layer in image.get_layers()
            if layer.is_group() and layer.get_parasite(RECORD) is not None]


def call(image, layer, run_mode):
    proc = Gimp.get_pdb().lookup_procedure("plug-in-portrait-style")
    cfg = proc.create_config()
    cfg.set_property("run-mode", run_mode)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    started = time.monotonic()
    result = proc.run(cfg)
    status = result.index(0)
    return {"status": status.value_nick, "seconds": time.monotonic() - started,
            "error": Gimp.get_pdb().get_last_error()
            if status != Gimp.PDBStatusType.SUCCESS else "",
            "groups": groups(image)}


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["content"]))
display = Gimp.Display.new(image)
Gimp.displays_flush()
layer = image.get_layers()[0]
proc = Gimp.get_pdb().lookup_procedure("plug-in-portrait-style")
reruns = {name: Gimp.get_pdb().lookup_procedure(name)
          for name in ("plug-in-portrait-style-rerun-portrait",
                       "plug-in-portrait-style-rerun-background",
                       "plug-in-portrait-style-rerun-portrait-from-layers",
                       "plug-in-portrait-style-rerun-background-from-layers")}
report = {"menu_label": proc.get_menu_label(), "menu_paths": proc.get_menu_paths(),
          "reruns": {name: [p.get_menu_label(), p.get_menu_paths()] if p else None
                     for name, p in reruns.items()},
          "interactive": call(image, layer, Gimp.RunMode.INTERACTIVE)}
image.set_selected_layers([layer])
report["last_values"] = call(image, layer, Gimp.RunMode.WITH_LAST_VALS)
image.clean_all()  # no "discard changes?" question on quit
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(report, out, indent=1)
