"""How long GIMP 3 and Krita 5.2 take to create the result layers of a big photo.

Why: the daemon computes a 24 MP layer in seconds; the artist waits for that
*plus* the editor building the group (two full-frame layers and a mask). This
measures the second part alone, with the installed plug-ins' own document
adapters (the code artists run), in the real editors of the test environment
(``.ci/editors-chroot.sh``), on a plan made without a daemon
(``plugin/contract.contract_plan``: the same sizes and channels a reply has).

    .venv/bin/python bench/editor_layers.py [--width 6000 --height 4000]

Prints a table: read the source layer, build the plan, create the group.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

#: the measured part, the same in both editors: ``document`` (the plug-in's adapter)
#: and ``photo`` (its source layer) are set by each editor's script before it
_MEASURE = """
t0 = time.perf_counter(); source = document.read_layer(photo)
t1 = time.perf_counter(); plan = contract_plan(source)
t2 = time.perf_counter(); document.add_result_group(plan, photo)
t3 = time.perf_counter()
json.dump({"read_s": t1 - t0, "plan_s": t2 - t1, "create_s": t3 - t2},
          open(os.environ["PORTRAIT_STYLE_RESULT"], "w"))
"""

_GIMP = """
import json, os, sys, time
from pathlib import Path
import gi
gi.require_version("Gimp", "3.0"); gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp
plugin = Path(os.environ["BENCH_PLUGIN"])
sys.path.insert(0, str(plugin))
from portrait_style_gimp._core.plugin.wire import ensure_wire
ensure_wire(plugin / "portrait_style_gimp" / "_wire")
from portrait_style_gimp._core.plugin.contract import contract_plan
from portrait_style_gimp.document import GimpDocument
w, h = int(os.environ["BENCH_W"]), int(os.environ["BENCH_H"])
image = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(image, "Photo", w, h, Gimp.ImageType.RGBA_IMAGE, 100.0,
                       Gimp.LayerMode.NORMAL)
image.insert_layer(layer, None, 0)
row = bytes(range(256)) * (w * 4 // 256 + 1)
layer.get_buffer().set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", row[:w * 4] * h)
document, photo = GimpDocument(image), layer
""" + _MEASURE

_KRITA = """
import json, os, time
from krita import Krita
from PyQt5.QtCore import QByteArray

def main(*args):
    import portrait_style_krita.runtime as runtime
    modules = runtime.core()
    from portrait_style_krita._core.plugin.contract import contract_plan
    from portrait_style_krita.document import KritaDocument
    w, h = int(os.environ["BENCH_W"]), int(os.environ["BENCH_H"])
    doc = Krita.instance().createDocument(w, h, "bench", "RGBA", "U8", "", 72.0)
    doc.setBatchmode(True)
    node = doc.createNode("Photo", "paintlayer")
    doc.rootNode().addChildNode(node, None)
    row = bytes(range(256)) * (w * 4 // 256 + 1)
    node.setPixelData(QByteArray(row[:w * 4] * h), 0, 0, w, h)
    document, photo = KritaDocument(doc), node
""" + textwrap.indent(_MEASURE, "    ")


def main() -> int:
    import editors

    from portrait_style.installer.plugins import install_plugin

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--python", default="3.13", help="the editors' Python (chroot: 3.13)")
    args = parser.parse_args()
    if editors.editor_root() is None:
        raise SystemExit("no editors environment: run 'bash .ci/editors-chroot.sh' first")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ps-bench-") as tmp:
        base = Path(tmp)
        profiles = {host: base / f"{host}-profile" for host in ("gimp", "krita")}
        for host, profile in profiles.items():
            install_plugin(host, profile, args.python, log=lambda _: None,
                           kritarc=base / "kritarc")
        size = {"BENCH_W": str(args.width), "BENCH_H": str(args.height)}
        gimp_plugin = profiles["gimp"] / "plug-ins" / "portrait-style"
        proc = editors.gimp_batch(_GIMP, home=base / "gimp-home", timeout=900,
                                  env={**size, "BENCH_PLUGIN": str(gimp_plugin)},
                                  binds=[profiles["gimp"]])
        rows.append(("GIMP 3", _result(base / "gimp-home", proc)))
        scripts = base / "scripts"
        scripts.mkdir()
        (scripts / "bench_krita.py").write_text(_KRITA)
        pykrita = profiles["krita"] / "pykrita"
        proc = editors.krita_run(scripts, "bench_krita", "main", home=base / "krita-home",
                                 timeout=900, env={**size, "PYTHONPATH": f"{pykrita}:{scripts}"},
                                 binds=[profiles["krita"]])
        rows.append(("Krita 5.2", _result(base / "krita-home", proc)))
    mp = args.width * args.height / 1e6
    print(f"{args.width}×{args.height} ({mp:.0f} MP) RGBA 8-bit, result group of Portrait "
          "(+ mask) and Background\n")
    print("| editor | read layer s | make plan s | create group s |")
    print("|---|---|---|---|")
    for name, result in rows:
        print(f"| {name} | {result['read_s']:.2f} | {result['plan_s']:.2f} | "
              f"{result['create_s']:.2f} |")
    return 0


def _result(home: Path, proc: object) -> dict[str, float]:
    path = home / "result.json"
    if not path.exists():
        raise SystemExit(f"the editor wrote no result: {getattr(proc, 'stderr', '')[-2000:]}")
    return json.loads(path.read_text())


if __name__ == "__main__":
    sys.exit(main())
