"""The Portrait Style dialog: GIMP's procedure dialog plus a list of recent styles.

Why GimpUi.ProcedureDialog: it builds the widgets from the procedure's own
arguments (ranges, defaults, tooltips), remembers the last values and looks
like every other GIMP filter. The only thing it cannot offer is a choice
between the last few paintings, so a small "Recent styles" list is added on
top; choosing one sets the ``style`` argument, which the file button shows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gimp, GimpUi, Gio, GLib, Gtk  # noqa: E402

from . import recent  # noqa: E402

__all__ = ["ask", "TEST_ENV"]

#: GUI tests and screenshots only: a path prefix; the dialog writes PREFIX.shown
#: once it is on screen and answers OK when PREFIX.ok appears (see tests/test_gimp.py)
TEST_ENV = "PORTRAIT_STYLE_DIALOG_TEST"

_ARGUMENTS = ["style", "background-strength", "portrait-strength", "likeness", "stroke-size",
              "preserve-color", "endpoint"]
_NOTE = ("Values below 0 use the daemon's presets. The result is a layer group above "
         "each selected layer; its Portrait layer's mask is the person mask — paint it, then "
         "use Filters ▸ Artistic ▸ Portrait Style: Re-run to recompute one layer.")


def _recent_row(config: Any) -> Gtk.Widget | None:
    """A "Recent styles" combo box that sets the ``style`` argument (None: no history)."""
    styles = recent.load(recent.default_path())
    if not styles:
        return None
    if config.get_property("style") is None:
        # a first run (no last values) starts from the painting used most recently
        config.set_property("style", Gio.File.new_for_path(styles[0]))
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    row.pack_start(Gtk.Label(label="Recent styles:"), False, False, 0)
    combo = Gtk.ComboBoxText()
    combo.append("", "(choose a recent painting)")
    for path in styles:
        combo.append(path, Gio.File.new_for_path(path).get_basename())
    current = config.get_property("style")
    current_path = current.get_path() if current is not None else None
    combo.set_active_id(current_path if current_path in styles else "")
    combo.set_tooltip_text("The paintings used most recently, newest first")

    def chosen(box: Gtk.ComboBoxText) -> None:
        path = box.get_active_id()
        if path:
            config.set_property("style", Gio.File.new_for_path(path))

    combo.connect("changed", chosen)
    row.pack_start(combo, True, True, 0)
    return row


def ask(procedure: Any, config: Any, image: Any) -> bool:
    """Show the dialog; True when the artist pressed OK (``config`` then holds the choice)."""
    GimpUi.init(procedure.get_name())
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Portrait Style")
    for strength in ("background-strength", "portrait-strength", "likeness", "stroke-size"):
        dialog.get_scale_entry(strength, 1.0)  # a slider reads better than a spin button
    dialog.fill(_ARGUMENTS)
    content = dialog.get_content_area()
    row = _recent_row(config)
    if row is not None:
        content.pack_start(row, False, False, 6)
        content.reorder_child(row, 0)
    note = Gtk.Label(label=_NOTE)
    note.set_line_wrap(True)
    note.set_max_width_chars(60)
    note.set_xalign(0.0)
    content.pack_end(note, False, False, 6)
    content.show_all()
    _answer_for_tests(dialog)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()
        Gimp.displays_flush()


def _answer_for_tests(dialog: Any) -> None:
    """Let a GUI test see the dialog, then press OK (no-op unless ``TEST_ENV`` is set).

    The chroot the tests run GIMP in has no tool that sends X input, and the
    dialog lives in this process, out of reach of GIMP's batch code.
    """
    prefix = os.environ.get(TEST_ENV)
    if not prefix:
        return

    def shown(*_args: Any) -> bool:
        Path(prefix + ".shown").write_text("shown\n")
        return False

    dialog.move(60, 90)  # beside the GIMP window's canvas, away from the pointer's tooltips
    def poll() -> bool:
        if os.path.exists(prefix + ".ok"):
            dialog.response(Gtk.ResponseType.OK)
            return False
        return True

    dialog.connect("map-event", shown)
    GLib.timeout_add(200, poll)
