"""The dialog's preview pane: the photo and its restyled preview, split before/after.

Why a split: the artist judges a style against the photo it came from. The
pane draws the preview (after) and, left of a divider the artist drags with
the slider below, the photo at the same size (before) — G'MIC's way. A line
under it says what is happening ("painting… 40 %", "preview of 512 × 384").

Only GTK drawing here: what to show comes from ``live_preview``.
"""

from __future__ import annotations

import itertools
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, GLib, Gtk  # noqa: E402

__all__ = ["PreviewArea", "pixbuf_of"]

#: the pane's drawing size (a preview's long side fits it)
SIZE = 360


def pixbuf_of(pixels: Any) -> GdkPixbuf.Pixbuf:
    """The core's 8-bit ``Pixels`` (grey, grey+alpha, RGB, RGBA) as a GdkPixbuf."""
    data = bytes(pixels.data)
    channels = pixels.channels
    if channels in (1, 2):  # grey: expand to RGB(A) for GdkPixbuf (a preview is small)
        rows = []
        for y in range(pixels.height):
            row = data[y * pixels.stride:y * pixels.stride + pixels.width * channels]
            if channels == 1:
                rows.append(bytes(itertools.chain.from_iterable(zip(row, row, row, strict=True))))
            else:
                grey, alpha = row[0::2], row[1::2]
                quads = zip(grey, grey, grey, alpha, strict=True)
                rows.append(bytes(itertools.chain.from_iterable(quads)))
        channels = 3 if channels == 1 else 4
        data = b"".join(rows)
        stride = pixels.width * channels
    else:
        stride = pixels.stride
    return GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(data), GdkPixbuf.Colorspace.RGB,
                                           channels == 4, 8, pixels.width, pixels.height,
                                           stride)


class PreviewArea(Gtk.Box):
    """The picture (before | after), a split slider and a status line.

    The picture is composed into one pixbuf and shown by a ``Gtk.Image``: GIMP's
    Python may lack pycairo, without which a Python draw handler cannot paint.
    """

    def __init__(self) -> None:
        super().__init__(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        self.before: GdkPixbuf.Pixbuf | None = None
        self.after: GdkPixbuf.Pixbuf | None = None
        self.area = Gtk.Image()
        self.area.set_size_request(SIZE, SIZE)
        self.area.set_tooltip_text("Left of the line: your photo; right: the preview")
        frame = Gtk.Frame()
        frame.add(self.area)
        self.pack_start(frame, False, False, 0)
        self.split = Gtk.Scale.new_with_range(Gtk.Orientation.HORIZONTAL, 0.0, 1.0, 0.01)
        self.split.set_value(0.5)
        self.split.set_draw_value(False)
        self.split.set_tooltip_text("Drag to compare: left shows the photo, right the preview")
        self.split.connect("value-changed", lambda *_: self._compose())
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        row.pack_start(Gtk.Label(label="Before"), False, False, 0)
        row.pack_start(self.split, True, True, 0)
        row.pack_start(Gtk.Label(label="After"), False, False, 0)
        self.pack_start(row, False, False, 0)
        self.status = Gtk.Label(label="")
        self.status.set_xalign(0.0)
        self.status.set_line_wrap(True)
        self.status.set_max_width_chars(44)
        self.pack_start(self.status, False, False, 0)

    def show_result(self, before: GdkPixbuf.Pixbuf | None, after: GdkPixbuf.Pixbuf) -> None:
        """Show a finished preview against the photo (scaled to the preview's size)."""
        self.before, self.after = before, after
        self._compose()

    def show_photo(self, before: GdkPixbuf.Pixbuf | None) -> None:
        """Before any preview: the photo alone, so the pane is never empty."""
        self.before = before
        self._compose()

    def set_status(self, text: str) -> None:
        self.status.set_text(text)

    def _compose(self) -> None:
        """One pixbuf: the photo left of the split, the preview right of it, a white line."""
        after, before = self.after, self.before
        if after is None:
            self.area.set_from_pixbuf(before)
            return
        width, height = after.get_width(), after.get_height()
        picture = after.copy()
        if before is not None:
            if (before.get_width(), before.get_height()) != (width, height):
                before = before.scale_simple(width, height, GdkPixbuf.InterpType.BILINEAR)
            if before.get_has_alpha() != picture.get_has_alpha():
                before = before.add_alpha(False, 0, 0, 0) if picture.get_has_alpha() else \
                    _opaque(before)
            split = round(width * self.split.get_value())
            if split > 0:
                before.copy_area(0, 0, split, height, picture, 0, 0)
            if 0 < split < width:
                picture.new_subpixbuf(split, 0, 1, height).fill(0xFFFFFFFF)
        self.area.set_from_pixbuf(picture)


def _opaque(pixbuf: GdkPixbuf.Pixbuf) -> GdkPixbuf.Pixbuf:
    """An RGBA pixbuf flattened onto grey as RGB (the preview is RGB)."""
    out = GdkPixbuf.Pixbuf.new(GdkPixbuf.Colorspace.RGB, False, 8, pixbuf.get_width(),
                               pixbuf.get_height())
    out.fill(0x808080FF)
    pixbuf.composite(out, 0, 0, pixbuf.get_width(), pixbuf.get_height(), 0, 0, 1, 1,
                     GdkPixbuf.InterpType.NEAREST, 255)
    return out
