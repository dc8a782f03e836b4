"""The Portrait Style dialog: live preview, the painting chooser, and the knobs.

Why GimpUi.ProcedureDialog underneath: it builds each knob's widget from the
procedure's own arguments — which come from the knob table (``knob_args``),
so ranges, defaults and tooltips are never copied here — remembers the last
values and looks like every other GIMP filter. Around those widgets this
module lays out what the procedure dialog cannot offer:

- on the left, the live preview of the selected layer (``live_preview``),
  before | after, updated a moment after any change, nothing written to the
  image until OK;
- on the right, the painting: the gallery by thumbnail, recent paintings and
  "your own file" (GIMP's file button), then the knobs at their real values
  with "Reset to defaults"; the rarely needed knobs and the daemon's endpoint
  sit in a closed "Advanced" section (the endpoint normally comes from
  portrait-style's config file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gimp, GimpUi, GLib, Gtk  # noqa: E402

from . import knob_args  # noqa: E402
from .gallery_picker import GalleryPicker, recent_row  # noqa: E402
from .preview_area import PreviewArea  # noqa: E402

__all__ = ["ask", "TEST_ENV"]

#: GUI tests and screenshots only: a path prefix. The dialog writes PREFIX.shown once it
#: is on screen, PREFIX.widgets.json (where its widgets are, for real clicks), one line per
#: finished preview to PREFIX.previews.jsonl, PREFIX.final.json (the choice at OK), and
#: answers OK when PREFIX.ok appears (see tests/test_gimp.py, tests/test_gimp_controls.py)
TEST_ENV = "PORTRAIT_STYLE_DIALOG_TEST"

_NOTE = ("The result is a layer group above each selected layer; its Portrait layer's mask is "
         "the person mask — paint it, then use Filters ▸ Artistic ▸ Portrait Style: Re-run "
         "to recompute one layer.")


def _section(title: str, child: Gtk.Widget) -> Gtk.Frame:
    frame = Gtk.Frame(label=title)
    child.set_border_width(6)
    frame.add(child)
    return frame


def _painting_box(dialog: Any, config: Any) -> tuple[Gtk.Widget, GalleryPicker]:
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
    picker = GalleryPicker(config)
    box.pack_start(picker, True, True, 0)
    row = recent_row(config)
    if row is not None:
        box.pack_start(row, False, False, 0)
    box.pack_start(dialog.fill_box("ps-style-box", ["style"]), False, False, 0)
    return box, picker


def _knob_box(dialog: Any, config: Any, controls: list[Any]
              ) -> tuple[Gtk.Widget, Gtk.Button, dict[str, Any]]:
    scales = {control.name: dialog.get_scale_entry(control.name, 1.0)  # a slider, not a spin
              for control in controls if control.kind is not bool}
    for scale in scales.values():
        scale.get_range().set_size_request(160, -1)  # room to aim at a value
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
    box.pack_start(dialog.fill_box("ps-knobs", knob_args.main_names(controls)), False, False, 0)
    reset = Gtk.Button.new_with_mnemonic("Reset to _defaults")
    reset.set_tooltip_text("Every setting back to the daemon's default for its region")
    reset.connect("clicked", lambda *_: knob_args.reset(config, controls))
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL)
    row.pack_end(reset, False, False, 0)
    box.pack_start(row, False, False, 0)
    expander = Gtk.Expander.new_with_mnemonic("_Advanced")
    expander.add(dialog.fill_box("ps-advanced", knob_args.advanced_names(controls)))
    box.pack_start(expander, False, False, 0)
    return box, reset, scales


def ask(procedure: Any, config: Any, image: Any, drawables: list[Any] | None = None) -> bool:
    """Show the dialog; True when the artist pressed OK (``config`` then holds the choice)."""
    GimpUi.init(procedure.get_name())
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Portrait Style")
    controls = knob_args.table()
    right = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
    painting, picker = _painting_box(dialog, config)
    right.pack_start(_section("Painting", painting), True, True, 0)
    knobs, reset, scales = _knob_box(dialog, config, controls)
    right.pack_start(_section("Settings", knobs), False, False, 0)
    area = PreviewArea()
    top = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
    top.set_border_width(6)
    top.pack_start(_section("Preview", area), False, False, 0)
    top.pack_start(right, True, True, 0)
    content = dialog.get_content_area()
    content.pack_start(top, True, True, 0)
    note = Gtk.Label(label=_NOTE)
    note.set_line_wrap(True)
    note.set_max_width_chars(90)
    note.set_xalign(0.0)
    content.pack_end(note, False, False, 6)
    content.show_all()
    prefix = os.environ.get(TEST_ENV)
    live = _live_preview(config, image, drawables, area, prefix)
    if prefix:
        widgets = {"preview": area.area, "reset": reset,
                   **{name: scale.get_range() for name, scale in scales.items()}}
        _answer_for_tests(dialog, config, controls, prefix, widgets, picker)
    try:
        if live is not None:
            live.start()
        return bool(dialog.run())
    finally:
        if live is not None:
            live.close()
        dialog.destroy()
        Gimp.displays_flush()


def _live_preview(config: Any, image: Any, drawables: list[Any] | None, area: PreviewArea,
                  prefix: str | None) -> Any:
    """The live preview of the first selected layer (None: nothing to preview, said why)."""
    layers = [d for d in (drawables or []) if isinstance(d, Gimp.Layer)]
    layers += [Gimp.Layer.from_mask(d) for d in (drawables or []) if d.is_layer_mask()]
    if not layers:
        area.set_status("Select a layer to see its preview.")
        return None
    try:
        from .live_preview import LivePreview
    except ImportError as exc:  # the wire libraries: Apply will say the same
        area.set_status(f"No preview: {exc}")
        return None
    log = Path(prefix + ".previews.jsonl") if prefix else None
    return LivePreview(config, image, layers[0], area, log)


def _answer_for_tests(dialog: Any, config: Any, controls: list[Any], prefix: str,
                      widgets: dict[str, Gtk.Widget], picker: GalleryPicker) -> None:
    """Let a GUI test see and click the dialog, then press OK (only with ``TEST_ENV``).

    The test clicks with real X input events; it learns where to click from
    PREFIX.widgets.json. PREFIX.ok still answers OK for tests without clicks.
    """
    dialog.move(20, 20)

    def where(widget: Gtk.Widget) -> list[int]:
        origin = dialog.get_window().get_origin()
        moved = widget.translate_coordinates(dialog, 0, 0)
        x, y = origin[-2] + moved[-2], origin[-1] + moved[-1]
        return [x, y, widget.get_allocated_width(), widget.get_allocated_height()]

    def shown(*_args: Any) -> bool:
        places = {name: where(w) for name, w in widgets.items() if w.get_mapped()}
        places["ok"] = where(dialog.get_widget_for_response(Gtk.ResponseType.OK))
        places["dialog"] = where(dialog)
        for painting in picker.paintings:
            child = picker.child_for(painting.name)
            if child is not None and child.get_mapped():
                places["gallery:" + painting.name] = where(child)
        Path(prefix + ".widgets.json").write_text(json.dumps(places, indent=1))
        Path(prefix + ".shown").write_text("shown\n")
        return False

    def poll() -> bool:
        if os.path.exists(prefix + ".ok"):
            dialog.response(Gtk.ResponseType.OK)
            return False
        return True

    def answered(_dialog: Any, response: int) -> None:
        style = config.get_property("style")
        final = {"response": int(response), "style": style.get_path() if style else None,
                 "controls": knob_args.values(config, controls)}
        Path(prefix + ".final.json").write_text(json.dumps(final, indent=1))

    dialog.connect("map-event", lambda *_: GLib.timeout_add(700, shown) and False)
    dialog.connect("response", answered)
    GLib.timeout_add(200, poll)
