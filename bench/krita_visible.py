"""What it costs Krita to *show* a new result group, on a big photo.

Why: a group assembled while detached is shown only once Krita re-renders the
image (``Document.refreshProjection``, plugin/krita/…/document.py explains
why); that runs on Krita's GUI thread, so its time is time the canvas is
frozen after Apply. Measured with the installed plug-in's own adapter
(``KritaDocument.add_result_group``, the code artists run) on a plan made
without a daemon (``contract_plan``), in Krita 5.2 (the editors' root) and,
where installed, Debian 12's Krita 5.1, with 0 and 3 earlier result groups
in the document (the re-render covers the whole image). Each cell is the
median of ``--repeat`` runs.

    .venv/bin/python bench/krita_visible.py [--width 4000 --height 3000]

Prints a table: the whole group creation, the re-render alone, and how far the
projection (what the canvas shows) is from the group's own layers afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

_KRITA = """
import json, os, time
from krita import Krita
from PyQt5.QtCore import QByteArray


def main(*args):
    import portrait_style_krita.runtime as runtime
    runtime.core()
    from portrait_style_krita._core.plugin.contract import contract_plan
    from portrait_style_krita.document import KritaDocument
    w, h = int(os.environ["BENCH_W"]), int(os.environ["BENCH_H"])
    out = {"krita": Krita.instance().version(), "runs": []}
    for earlier in (0, 3):
        for _ in range(int(os.environ["BENCH_REPEAT"])):
            doc = Krita.instance().createDocument(w, h, "bench", "RGBA", "U8", "", 72.0)
            doc.setBatchmode(True)
            node = doc.createNode("Photo", "paintlayer")
            doc.rootNode().addChildNode(node, None)
            row = b"".join(bytes((x % 251, x % 239, x % 233, 255)) for x in range(w))  # opaque
            node.setPixelData(QByteArray(row * h), 0, 0, w, h)
            kdoc = KritaDocument(doc)
            plan = contract_plan(kdoc.read_layer(node))
            for _ in range(earlier):
                kdoc.add_result_group(plan, node)
            doc.waitForDone()
            t0 = time.perf_counter()
            group = kdoc.add_result_group(plan, node)
            doc.waitForDone()
            t1 = time.perf_counter()
            doc.refreshProjection()  # the same re-render add_result_group ends with, alone
            t2 = time.perf_counter()
            # what is shown on the top row band vs the group's own rendering of it
            band = min(h, 64)
            seen = bytes(doc.pixelData(0, 0, w, band))
            own = bytes(group.projectionPixelData(0, 0, w, band))
            diff = sum(abs(a - b) for a, b in zip(seen[::97], own[::97])) / len(seen[::97])
            out["runs"].append({"earlier": earlier, "create_s": t1 - t0, "render_s": t2 - t1,
                                "shown_levels": diff})
            doc.close()
    json.dump(out, open(os.environ["PORTRAIT_STYLE_RESULT"], "w"))
"""


def main() -> int:
    import editors
    from machine import machine_line

    from portrait_style.installer.plugins import install_plugin

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = {"BENCH_W": str(args.width), "BENCH_H": str(args.height),
            "BENCH_REPEAT": str(args.repeat)}
    results = []
    with tempfile.TemporaryDirectory(prefix="ps-bench-") as tmp:
        base = Path(tmp)
        scripts = base / "scripts"
        scripts.mkdir()
        (scripts / "bench_krita.py").write_text(_KRITA)
        if editors.editor_root() is not None:
            profile = base / "krita-52"
            install_plugin("krita", profile, "3.13", log=lambda _: None, kritarc=base / "rc52")
            env = {**size, "PYTHONPATH": f"{profile / 'pykrita'}:{scripts}"}
            proc = editors.krita_run(scripts, "bench_krita", "main", home=base / "home52",
                                     timeout=1800, env=env, binds=[profile])
            results.append(_result(base / "home52", proc))
        if Path("/usr/bin/kritarunner").exists():
            profile = base / "krita-51"
            install_plugin("krita", profile, "/usr/bin/python3", log=lambda _: None,
                           kritarc=base / "rc51")
            home = base / "home51"
            env = editors.isolated_env(home)
            env.update(size, QT_QPA_PLATFORM="offscreen", PATH="/usr/bin:/bin",
                       PYTHONPATH=f"{profile / 'pykrita'}:{scripts}")
            proc = subprocess.run(["/usr/bin/kritarunner", "-s", "bench_krita", "-f", "main"],
                                  env=env, cwd=home, capture_output=True, text=True,
                                  timeout=1800, check=False)
            results.append(_result(home, proc))
    print(f"{args.width}×{args.height} RGBA 8-bit photo; a new result group (Portrait + mask, "
          f"Background); median of {args.repeat}; {machine_line('cpu')}\n")
    print("| Krita | earlier groups | create group s (incl. re-render) | re-render alone s | "
          "shown vs group, levels |")
    print("|---|---|---|---|---|")
    for result in results:
        for earlier in (0, 3):
            runs = [r for r in result["runs"] if r["earlier"] == earlier]
            print(f"| {result['krita']} | {earlier} | "
                  f"{statistics.median(r['create_s'] for r in runs):.2f} | "
                  f"{statistics.median(r['render_s'] for r in runs):.2f} | "
                  f"{max(r['shown_levels'] for r in runs):.2f} |")
    return 0


def _result(home: Path, proc: object) -> dict:
    path = home / "result.json"
    if not path.exists():
        raise SystemExit(f"Krita wrote no result: {getattr(proc, 'stderr', '')[-2000:]}")
    return json.loads(path.read_text())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
