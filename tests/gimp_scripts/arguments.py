"""Inside GIMP (batch): the Portrait Style procedure's arguments as GIMP registered them.

Run by tests/test_gimp_controls.py with ``PARAMS = {}``: writes each argument's
name, type, label, range and default, so the test compares them with the knob
table (nothing copied by hand).
"""

import json
import os

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GObject  # noqa: E402

proc = Gimp.get_pdb().lookup_procedure("plug-in-portrait-style")
arguments = {}
for spec in proc.get_arguments():
    entry = {"type": GObject.type_name(spec.value_type), "label": spec.get_nick(),
             "tooltip": spec.get_blurb()}
    if hasattr(spec, "minimum"):
        entry.update(low=spec.minimum, high=spec.maximum, default=spec.default_value)
    elif GObject.type_name(spec.value_type) == "gboolean":
        entry["default"] = spec.default_value
    arguments[spec.name] = entry
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump({"arguments": arguments}, out, indent=1)
