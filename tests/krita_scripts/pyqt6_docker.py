"""The real Portrait Style docker built under PyQt6, as Krita 6 will run it (no Krita 6 yet).

Run by tests/test_krita.py with Debian's python3 and python3-pyqt6 (the forky
root), offscreen: ``python3 pyqt6_docker.py``, the installed plug-in on
PYTHONPATH. What is real: the plug-in's own modules (qt.py, docker.py,
controller.py, runner.py, styles.py, runtime.py and the
bundled core with its wire libraries), PyQt6 and Qt 6's widgets, and Qt 6
decoding real paintings. What stands in: the ``krita`` module only — Krita 6
is not packaged anywhere we can install it — reduced to what the docker
touches: ``DockWidget`` (a QDockWidget, as Krita's is), ``Krita.instance()``
with settings and no open document, and an empty ``Selection`` class.
PyQt5 is made unimportable first, as it is in Krita 6, so ``qt.py`` must
take its PyQt6 branch.

Writes what it saw to ``$PORTRAIT_STYLE_RESULT`` and a picture of the docker
to ``$PYQT6_OUT/docker-pyqt6.png``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

sys.modules["PyQt5"] = None  # type: ignore[assignment]  # Krita 6 refuses PyQt5 imports

OUT = Path(os.environ.get("PYQT6_OUT", "/tmp"))
STYLE = Path(os.environ["PYQT6_STYLE"])


def stand_in_krita() -> Any:
    """The ``krita`` module, reduced to what the docker and its controller call."""
    from PyQt6 import QtWidgets

    class DockWidget(QtWidgets.QDockWidget):
        def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 - Krita's API name
            pass

    class Krita:
        _instance: Krita | None = None

        def __init__(self) -> None:
            self.settings: dict[tuple[str, str], str] = {}

        @classmethod
        def instance(cls) -> Krita:
            cls._instance = cls._instance or cls()
            return cls._instance

        def readSetting(self, group: str, name: str, default: str) -> str:  # noqa: N802
            return self.settings.get((group, name), default)

        def writeSetting(self, group: str, name: str, value: str) -> None:  # noqa: N802
            self.settings[(group, name)] = value

        def activeDocument(self) -> None:  # noqa: N802
            return None

        def activeWindow(self) -> None:  # noqa: N802
            return None

    class Selection:  # imported by the plug-in's document adapter; no selection is made here
        pass

    module = types.ModuleType("krita")
    module.DockWidget = DockWidget  # type: ignore[attr-defined]
    module.Krita = Krita  # type: ignore[attr-defined]
    module.Selection = Selection  # type: ignore[attr-defined]
    sys.modules["krita"] = module
    return module


def run(res: dict[str, Any]) -> None:
    from PyQt6 import QtCore, QtWidgets

    app = QtWidgets.QApplication([])
    stand_in_krita()
    import portrait_style_krita
    from portrait_style_krita import qt
    from portrait_style_krita.controller import DockerOptions
    from portrait_style_krita.docker import MESSAGE_LINES, PortraitStyleDocker
    from portrait_style_krita.runner import wait_for
    from portrait_style_krita.styles import load_style

    res["qt_major"] = qt.QT_MAJOR
    res["pyqt"] = QtCore.PYQT_VERSION_STR
    res["qt"] = QtCore.QT_VERSION_STR
    res["python"] = "{}.{}".format(*sys.version_info[:2])
    res["registered"] = portrait_style_krita.register()  # no factory in the stand-in: False

    window = QtWidgets.QMainWindow()
    dock = PortraitStyleDocker()
    window.addDockWidget(qt.enum(QtCore.Qt, "DockWidgetArea", "RightDockWidgetArea"), dock)
    window.resize(420, 900)
    window.show()
    app.processEvents()
    res["buttons"] = sorted(b.objectName() for b in dock.findChildren(QtWidgets.QPushButton)
                            if b.objectName())

    dock.set_style(STYLE)
    res["style_label"] = dock.style_name.text()
    pixmap = dock.style_thumb.pixmap()
    res["thumbnail"] = [pixmap.width(), pixmap.height()] if pixmap is not None else None
    res["chooser_folder"] = str(dock.chooser_folder())

    dock._on_progress("painting… 40 %", 0.4)
    res["progress_text"] = dock.progress.text()

    area_height = dock.message_area.height()
    apply_at = dock.apply_button.mapToGlobal(QtCore.QPoint(0, 0))
    dock._on_message("error", "the style painting is damaged — " + "a long sentence " * 30)
    app.processEvents()
    res["message_area_fixed"] = dock.message_area.height() == area_height
    res["message_lines"] = MESSAGE_LINES
    res["message_wraps"] = dock.message_label.width() <= dock.message_area.viewport().width()
    res["apply_still"] = dock.apply_button.mapToGlobal(QtCore.QPoint(0, 0)) == apply_at

    # the controller's signals under PyQt6: Apply without a document says so in words
    messages: list[tuple[str, str]] = []
    dock.ctl.message.connect(lambda level, text: messages.append((level, text)))
    dock.ctl.apply(DockerOptions(style_path=STYLE))
    res["apply_without_document"] = messages

    # the local event loop the scripting API spins (QEventLoop.exec under PyQt6)
    fired: list[int] = []
    QtCore.QTimer.singleShot(50, lambda: fired.append(1))
    res["event_loop_turns"] = wait_for(lambda: bool(fired), 5.0)

    # decoding paintings with Qt 6: whole, cut short, corrupt
    res["style_shape"] = list(load_style(STYLE).shape)
    cut = OUT / "cut_painting.jpg"
    cut.write_bytes(STYLE.read_bytes()[:30_000])
    whole = OUT / "painting.png"
    qt.QImage(str(STYLE)).scaledToWidth(160).save(str(whole))
    broken = bytearray(whole.read_bytes())
    start = broken.index(b"IDAT") + 300
    broken[start:start + 64] = bytes(64)
    corrupt = OUT / "corrupt_painting.png"
    corrupt.write_bytes(bytes(broken))
    for path in (cut, corrupt):
        try:
            load_style(path)
            res[path.name] = None
        except Exception as exc:
            res[path.name] = f"{type(exc).__name__}: {exc}"
    dock.grab().save(str(OUT / "docker-pyqt6.png"))
    window.close()


def main() -> None:
    res: dict[str, Any] = {}
    try:
        run(res)
        res["ok"] = True
    except Exception as exc:
        res["ok"] = False
        res["exception"] = f"{type(exc).__name__}: {exc}"
        res["traceback"] = traceback.format_exc()
    Path(os.environ["PORTRAIT_STYLE_RESULT"]).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
