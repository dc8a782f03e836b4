"""Inside the GUI GIMP: Filters ▸ Re-Show Last after a re-run, driven by real key presses.

Run by tests/test_gimp.py with ``PARAMS`` defined before this text: ``content``
(the photo) and ``out`` (handshake folder). The test types into GIMP's action
search (the artist's "/"), so every procedure here runs from GIMP's own
menus, the way Re-Show Last remembers it. This script only opens the photo,
selects what the artist would select, and reports the result groups:
  out/ready      the photo is on screen
  out/grouped    Portrait Style made its group; the group is now selected
  out/rerun      the Portrait layer was replaced by the re-run
  out/finish     (from the test) write the report and end
"""

import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

P = PARAMS  # noqa: F821 - defined by the test
OUT = P["out"]
RECORD = "portrait-style-job"


def mark(name):
    Gimp.displays_flush()
    with open(os.path.join(OUT, name), "w") as fh:
        fh.write("1\n")


def groups(image):
    return [layer for layer in image.get_layers()
            if layer.is_group() and layer.get_parasite(RECORD) is not None]


def wait(condition, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the GUI step never happened")
        time.sleep(0.2)


def record(group):
    data = group.get_parasite(RECORD).get_data()
    return json.loads(bytes(v & 0xFF for v in data).decode())


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["content"]))
display = Gimp.Display.new(image)
mark("ready")
def masked(group):
    return [c for c in group.get_children() if c.get_mask() is not None]


# the job started from the dialog is done when its group holds the masked Portrait
wait(lambda: len(groups(image)) == 1 and masked(groups(image)[0]))
time.sleep(0.5)
group = groups(image)[0]
first_portrait = masked(group)[0].get_id()
image.set_selected_layers([group])
mark("grouped")
wait(lambda: masked(groups(image)[0])
     and all(c.get_id() != first_portrait for c in groups(image)[0].get_children()))
mark("rerun")
wait(lambda: os.path.exists(os.path.join(OUT, "finish")))
wait(lambda: len(groups(image)) == 2 and all(masked(g) for g in groups(image)), timeout=60)
report = {"groups": [{"name": g.get_name(), "record": record(g)} for g in groups(image)]}
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(report, out, indent=1)
image.clean_all()
