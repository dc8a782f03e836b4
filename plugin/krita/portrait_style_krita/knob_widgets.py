"""The docker's knob widgets, built from the core's knob table (``protocol/knobs.py``).

Why built, not written: every range, step, default, label and tooltip is in
the knob table, which the daemon, the command line and GIMP read too. The
docker used to copy the ranges by hand and start every box at "preset" (the
artist could not see the defaults); now each widget starts at the knob's
default for its region, and "Reset to defaults" puts them all back. A knob
added to the table appears here with no change to this file; advanced knobs
go into a collapsed "Advanced" section.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .qt import QtWidgets, Signal

__all__ = ["KnobPanel", "knob_table"]


def knob_table() -> ModuleType:
    """The bundled core's ``protocol.knobs`` (standard library only: safe to import early)."""
    package = __package__ or "portrait_style_krita"
    return importlib.import_module(f"{package}._core.protocol.knobs")


class KnobPanel(QtWidgets.QWidget):
    """One widget per knob-table control; ``values()`` is what Apply and the preview send.

    Signal ``changed()``: any value changed (the preview restarts its debounce).
    """

    changed = Signal()

    def __init__(self, knobs: ModuleType | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.knobs = knobs or knob_table()
        self.controls = list(self.knobs.controls())
        self.widgets: dict[str, Any] = {}
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        main = QtWidgets.QFormLayout()
        layout.addLayout(main)
        self.advanced_box = QtWidgets.QGroupBox("Advanced")
        self.advanced_box.setObjectName("advanced_knobs")
        self.advanced_box.setCheckable(True)  # unchecked = folded away
        self.advanced_box.setToolTip("Fine controls most portraits never need")
        advanced_inner = QtWidgets.QWidget()
        advanced = QtWidgets.QFormLayout(advanced_inner)
        advanced.setContentsMargins(0, 0, 0, 0)
        QtWidgets.QVBoxLayout(self.advanced_box).addWidget(advanced_inner)
        self.advanced_box.toggled.connect(advanced_inner.setVisible)
        for control in self.controls:
            widget = self._widget(control)
            self.widgets[control.name] = widget
            form = advanced if control.advanced else main
            if control.kind is bool:
                form.addRow(widget)
            else:
                form.addRow(control.label, widget)
        if advanced.rowCount():
            self.advanced_box.setChecked(False)
            advanced_inner.setVisible(False)
            layout.addWidget(self.advanced_box)
        reset = QtWidgets.QPushButton("Reset to defaults")
        reset.setObjectName("reset_knobs")
        reset.setToolTip("Put every control back to the daemon's default for its region")
        reset.clicked.connect(self.reset)
        row = QtWidgets.QHBoxLayout()
        row.addStretch(1)
        row.addWidget(reset)
        layout.addLayout(row)

    def _widget(self, control: Any) -> Any:
        if control.kind is bool:
            box = QtWidgets.QCheckBox(control.label)
            box.setChecked(bool(control.default))
            box.toggled.connect(lambda _on: self.changed.emit())
        else:
            box = QtWidgets.QDoubleSpinBox()
            box.setRange(control.low, control.high)
            box.setSingleStep(control.step)
            box.setDecimals(control.digits)
            box.setValue(float(control.default))
            box.setKeyboardTracking(False)  # typing "0.45" is one change, not three
            box.valueChanged.connect(lambda _value: self.changed.emit())
        box.setObjectName(control.attr)
        box.setToolTip(f"{control.tooltip} Default: {_shown(control.default)}.")
        return box

    def values(self) -> dict[str, float | bool]:
        """{control name: value}, every control (defaults included: what the artist sees)."""
        out: dict[str, float | bool] = {}
        for control in self.controls:
            widget = self.widgets[control.name]
            out[control.name] = (widget.isChecked() if control.kind is bool
                                 else round(widget.value(), control.digits))
        return out

    def set_value(self, name: str, value: float | bool) -> None:
        """Set one control by name ("portrait-strength"), checked against the table."""
        control = next((c for c in self.controls if c.name == name), None)
        if control is None:
            raise KeyError(f"no control {name!r}; known: {', '.join(self.widgets)}")
        checked = control.check(value)
        widget = self.widgets[name]
        widget.setChecked(checked) if control.kind is bool else widget.setValue(checked)

    def reset(self) -> None:
        """Every control back to its default, one ``changed`` for all of them."""
        self.blockSignals(True)
        try:
            for control in self.controls:
                widget = self.widgets[control.name]
                widget.blockSignals(True)
                if control.kind is bool:
                    widget.setChecked(bool(control.default))
                else:
                    widget.setValue(float(control.default))
                widget.blockSignals(False)
        finally:
            self.blockSignals(False)
        self.changed.emit()

    def at_defaults(self) -> bool:
        return all(self.values()[c.name] == c.default for c in self.controls)


def _shown(value: float | bool) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"
