"""The dialog's painting chooser: the gallery by thumbnail, recent paintings, your own file.

Why all three in one place: an artist starts from a painting the product ships
(seen, not named), comes back to the ones used lately, or brings their own.
All three set the one ``style`` argument, so GIMP's last values, the file
button and the preview follow whichever was used last. Thumbnails are the
gallery's pre-made small JPEGs (``gallery.paintings()``), loaded by GdkPixbuf;
nothing decodes a full painting to draw the grid.
"""

from __future__ import annotations

from typing import Any

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gio, GLib, Gtk  # noqa: E402

from . import recent  # noqa: E402

__all__ = ["GalleryPicker", "recent_row"]

#: thumbnails are drawn at this height in the grid
THUMB_HEIGHT = 64


def _paintings() -> tuple[list[Any], str]:
    """The gallery's paintings from the bundled core, or none and the reason."""
    try:
        from ._core.plugin import gallery

        return gallery.paintings(), ""
    except Exception as exc:  # a damaged install: the file button still works
        return [], str(exc)


class GalleryPicker(Gtk.Box):
    """A scrolled grid of the gallery's thumbnails; choosing one sets ``style``."""

    def __init__(self, config: Any) -> None:
        super().__init__(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        self.config = config
        self.paintings, problem = _paintings()
        self.children: dict[str, Gtk.FlowBoxChild] = {}
        self.flow = Gtk.FlowBox()
        self.flow.set_selection_mode(Gtk.SelectionMode.SINGLE)
        self.flow.set_max_children_per_line(12)
        self.flow.set_min_children_per_line(3)
        self.flow.set_row_spacing(2)
        self.flow.set_column_spacing(2)
        self.flow.set_homogeneous(False)
        for painting in self.paintings:
            child = Gtk.FlowBoxChild()
            child.add(self._thumbnail(painting))
            child.set_tooltip_text(f"{painting.label}\n{painting.technique}")
            child.painting = painting
            self.flow.add(child)
            self.children[str(painting.image)] = child
        self.flow.connect("child-activated", self._chosen)
        scrolled = Gtk.ScrolledWindow()
        scrolled.set_policy(Gtk.PolicyType.NEVER, Gtk.PolicyType.AUTOMATIC)
        scrolled.set_min_content_height(150)
        scrolled.add(self.flow)
        self.pack_start(scrolled, True, True, 0)
        self.caption = Gtk.Label(label=problem or "Pick a painting, or choose your own file.")
        self.caption.set_xalign(0.0)
        self.caption.set_ellipsize(3)  # Pango.EllipsizeMode.END
        self.pack_start(self.caption, False, False, 0)
        self._handler = config.connect("notify::style", lambda *_: self.follow())
        self.connect("destroy", lambda *_: config.disconnect(self._handler))
        self.follow()

    @staticmethod
    def _thumbnail(painting: Any) -> Gtk.Widget:
        try:
            pixbuf = GdkPixbuf.Pixbuf.new_from_file_at_scale(str(painting.thumbnail), -1,
                                                             THUMB_HEIGHT, True)
            return Gtk.Image.new_from_pixbuf(pixbuf)
        except GLib.Error:
            return Gtk.Label(label=painting.title[:16])

    def _chosen(self, _flow: Gtk.FlowBox, child: Gtk.FlowBoxChild) -> None:
        self.config.set_property("style", Gio.File.new_for_path(str(child.painting.image)))

    def follow(self) -> None:
        """Select the thumbnail of the current painting (if it is a gallery one), caption it."""
        style = self.config.get_property("style")
        path = style.get_path() if style is not None else None
        child = self.children.get(path or "")
        if child is None:
            self.flow.unselect_all()
            if path:
                self.caption.set_text(f"Your file: {Gio.File.new_for_path(path).get_basename()}")
            return
        if child not in self.flow.get_selected_children():
            self.flow.select_child(child)
        self.caption.set_text(child.painting.label)

    def child_for(self, name: str) -> Gtk.FlowBoxChild | None:
        """The thumbnail of the painting called ``name`` (GUI tests click it)."""
        return next((c for c in self.children.values() if c.painting.name == name), None)


def recent_row(config: Any) -> Gtk.Widget | None:
    """A "Recent" combo box of the last paintings that sets ``style`` (None: no history).

    Gallery paintings are shown by title, the artist's own files by file name.
    """
    styles = recent.load(recent.default_path())
    if not styles:
        return None
    if config.get_property("style") is None:
        # a first run (no last values) starts from the painting used most recently
        config.set_property("style", Gio.File.new_for_path(styles[0]))
    row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
    row.pack_start(Gtk.Label(label="Recent:"), False, False, 0)
    combo = Gtk.ComboBoxText()
    combo.append("", "(a painting used lately)")
    for path in styles:
        combo.append(path, _recent_label(path))
    current = config.get_property("style")
    current_path = current.get_path() if current is not None else None
    combo.set_active_id(current_path if current_path in styles else "")
    combo.set_tooltip_text("The paintings used most recently, newest first")

    def chosen(box: Gtk.ComboBoxText) -> None:
        path = box.get_active_id()
        if path:
            config.set_property("style", Gio.File.new_for_path(path))

    def follow(*_args: object) -> None:  # another chooser picked: the list says so
        style = config.get_property("style")
        path = style.get_path() if style is not None else None
        if combo.get_active_id() != path:
            combo.set_active_id(path if path in styles else "")

    combo.connect("changed", chosen)
    handler = config.connect("notify::style", follow)
    combo.connect("destroy", lambda *_: config.disconnect(handler))
    row.pack_start(combo, True, True, 0)
    return row


def _recent_label(path: str) -> str:
    try:
        from ._core.plugin import gallery

        painting = gallery.for_path(path)
    except Exception:
        painting = None
    return painting.label if painting is not None else Gio.File.new_for_path(path).get_basename()
