"""layers.ora from plugin/outputs.py opens in the real GIMP (3.0, 3.2) and Krita (5.2, 5.3).

Why: the fast writer stores the PNG files' own bytes as ORA members, so the
mask travels as a greyscale PNG and an opaque photo's layers as RGB ones; the
editors' ORA importers must take those as they take RGBA members.
"""

from __future__ import annotations

from pathlib import Path

import editors
import numpy as np
import pytest

from portrait_style.plugin.outputs import compose_bands, write_outputs

pytestmark = [pytest.mark.editors, pytest.mark.slow]

W, H = 48, 32
NAMES = ["Person mask", "Portrait", "Background"]

GIMP_CODE = """
import json, os
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ["ORA"]))
group = image.get_layers()[0]
result = {"size": [image.get_width(), image.get_height()],
          "top": [l.get_name() for l in image.get_layers()],
          "group": [l.get_name() for l in group.get_children()],
          "visible": [l.get_visible() for l in group.get_children()]}
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(result, out)
"""

KRITA_MODULE = """
import json, os
from krita import Krita

def main(*args):
    doc = Krita.instance().openDocument(os.environ["ORA"])
    top = doc.rootNode().childNodes()
    group = [n for n in top if n.type() == "grouplayer"][0]
    result = {"size": [doc.width(), doc.height()],
              "top": [n.name() for n in reversed(top)],
              "group": [n.name() for n in reversed(group.childNodes())],
              "visible": [n.visible() for n in reversed(group.childNodes())]}
    doc.close()
    with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
        json.dump(result, out)
"""


@pytest.fixture(scope="module")
def ora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)  # opaque photo: RGB members
    pt = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 2:] = 255
    out = tmp_path_factory.mktemp("ora")
    write_outputs(out, {"background": bg, "portrait": pt, "mask": mask,
                        "composite": compose_bands(bg, pt, mask)},
                  source_name="photo", source=bg, group_name="Portrait style — test", dpi=300)
    return out / "layers.ora"


def _check(result: dict) -> None:
    assert result["size"] == [W, H]
    assert result["top"] == ["Portrait style — test", "photo"]
    assert result["group"] == NAMES
    assert result["visible"] == [False, True, True]


def test_gimp_opens_the_layers(gimp_env: editors.EditorEnv, ora: Path, tmp_path: Path) -> None:
    proc = editors.gimp_batch(GIMP_CODE, home=tmp_path / "home", timeout=180,
                              env={"ORA": str(ora)}, binds=[ora.parent])
    _check(editors.load_result(tmp_path / "home", proc))


def test_krita_opens_the_layers(krita_env: editors.EditorEnv, ora: Path,
                                tmp_path: Path) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "open_ora.py").write_text(KRITA_MODULE)
    proc = editors.krita_run(module_dir, "open_ora", "main", home=tmp_path / "home",
                             timeout=240, env={"ORA": str(ora)}, binds=[ora.parent])
    _check(editors.load_result(tmp_path / "home", proc))
