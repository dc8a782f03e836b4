"""The GIMP 3 plug-in, installed by ``portrait-style install-plugin gimp``, in REAL GIMP 3.

Every GIMP test runs in GIMP 3.0 and in GIMP 3.2 (``[gimp-3.0]``, ``[gimp-3.2]``:
the Debian 13 and Debian testing roots of ``.ci/editors-chroot.sh``, which have
no python3-zmq/msgpack: the installer's ``_wire`` must provide them). GIMP's
batch mode runs the batch scripts in ``tests/gimp_scripts/``; they call the installed
procedures through the PDB, as any script would, against a real daemon on the
host (magenta engine, embedded models) over loopback TCP. The scripts only
report and dump pixels; every judgement is made here, against the daemon's own
answer to the same pixels, asked for directly over the wire.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import editors
import numpy as np
import pytest
from daemon_harness import Daemon, running
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "portrait_style" / "samples"
SCRIPTS = Path(__file__).resolve().parent / "gimp_scripts"
PLUGIN_SOURCE = REPO / "plugin" / "gimp" / "portrait-style"
#: CI time: the bundled portrait at a modest size is enough to see every edge case
SIZE = 384
GROUP_NAME = "Portrait style — Starry Night"


# --------------------------------------------------------------------- no GIMP needed


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_plugin_never_imports_torch_numpy_or_pillow() -> None:
    sources = sorted(PLUGIN_SOURCE.rglob("*.py"))
    assert len(sources) >= 5, sources
    for source in sources:
        found = _imports(source) & {"torch", "numpy", "PIL", "cv2"}
        assert not found, f"{source.relative_to(REPO)} imports {found}"


def test_wire_libraries_are_not_imported_at_module_level_of_the_entry() -> None:
    """GIMP queries the plug-in at start-up; a top-level zmq import failing there hides it."""
    for name in ("portrait-style.py", "portrait_style_gimp/plugin.py",
                 "portrait_style_gimp/dialog.py", "portrait_style_gimp/recent.py"):
        tree = ast.parse((PLUGIN_SOURCE / name).read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        modules = {(n.module or "") if isinstance(n, ast.ImportFrom) else n.names[0].name
                   for n in top}
        assert not {m for m in modules if "runner" in m or "zmq" in m or "msgpack" in m
                    or "_core" in m}, (name, modules)


def test_recent_styles_keep_newest_first_without_duplicates(tmp_path: Path) -> None:
    sys.path.insert(0, str(PLUGIN_SOURCE))
    try:
        from portrait_style_gimp import recent
    finally:
        sys.path.remove(str(PLUGIN_SOURCE))
    store = tmp_path / "profile" / recent.FILE_NAME
    paintings = []
    for i in range(recent.LIMIT + 2):
        paintings.append(tmp_path / f"style{i}.png")
        paintings[-1].write_bytes(b"x")
    for painting in paintings:
        recent.remember(store, painting)
    recent.remember(store, paintings[3])
    listed = recent.load(store)
    assert listed[0] == str(paintings[3].resolve())
    assert len(listed) == recent.LIMIT and len(set(listed)) == recent.LIMIT
    paintings[-1].unlink()
    assert str(paintings[-1].resolve()) not in recent.load(store), "gone files drop out"
    store.write_text("{not json")
    assert recent.load(store) == []


def damaged_paintings(folder: Path) -> dict[str, Path]:
    """The bundled painting as files that decode only partly (and what each is)."""
    folder.mkdir(parents=True, exist_ok=True)
    painting = Image.open(SAMPLES / "starry_night.jpg").convert("RGB")
    whole = folder / "whole.jpg"
    painting.save(whole, quality=92)
    out = {"truncated-jpeg": folder / "cut at 30 kB.jpg", "corrupt-png": folder / "corrupt.png",
           "truncated-png": folder / "cut.png"}
    out["truncated-jpeg"].write_bytes(whole.read_bytes()[:30_000])
    png = folder / "whole.png"
    painting.save(png)
    data = bytearray(png.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 + 5000] ^= 0x5A  # one flipped byte inside the image data
    out["corrupt-png"].write_bytes(bytes(data))
    out["truncated-png"].write_bytes(png.read_bytes()[: len(data) * 2 // 3])
    return out


def test_style_file_check_refuses_partial_jpeg_and_png_naming_the_file(tmp_path: Path) -> None:
    """The stdlib check both plug-ins run before their editor decodes a painting."""
    from portrait_style.plugin import image_integrity as style_file

    painting = Image.open(SAMPLES / "starry_night.jpg").convert("RGB").resize((300, 200))
    good = {"baseline.jpg": {"quality": 90}, "progressive.jpg": {"progressive": True},
            "plain.png": {}, "interlaced.png": {"interlace": 1}}
    for name, options in good.items():
        painting.save(tmp_path / name, **options)
        style_file.check_complete(tmp_path / name)  # whole files pass
    odd = tmp_path / "grey-alpha.png"  # another colour type and a width not a multiple of 8
    painting.convert("LA").resize((33, 17)).save(odd)
    style_file.check_complete(odd)
    with_tail = tmp_path / "tail.jpg"  # bytes after the end marker (cameras add them) are fine
    with_tail.write_bytes((tmp_path / "baseline.jpg").read_bytes() + b"\0" * 64)
    style_file.check_complete(with_tail)
    for kind, path in damaged_paintings(tmp_path / "bad").items():
        with pytest.raises(OSError) as refused:
            style_file.check_complete(path)
        assert refused.value.filename == str(path), kind
        assert "only part of this image can be read" in refused.value.strerror, kind
    progressive = (tmp_path / "progressive.jpg").read_bytes()
    (tmp_path / "cut-progressive.jpg").write_bytes(progressive[: len(progressive) // 2])
    with pytest.raises(OSError):
        style_file.check_complete(tmp_path / "cut-progressive.jpg")


# ------------------------------------------------------------------------ fixtures


@dataclass
class GimpHome:
    """An isolated HOME with the plug-in installed the way a user installs it."""

    home: Path
    plugin_dir: Path
    install_output: str
    env: editors.EditorEnv

    def batch(self, script: str, params: dict[str, Any], *, binds: list[Path],
              timeout: float = 300) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        code = f"PARAMS = {json.dumps(params)}\n" + (SCRIPTS / script).read_text()
        proc = editors.gimp_batch(code, home=self.home, timeout=timeout, binds=binds,
                                  within=self.env)
        return editors.load_result(self.home, proc), proc


@pytest.fixture(scope="module")
def gimp(gimp_env: editors.EditorEnv, tmp_path_factory: pytest.TempPathFactory) -> GimpHome:
    """Once per GIMP version (the test id names it: ``[gimp-3.0]``, ``[gimp-3.2]``)."""
    home = tmp_path_factory.mktemp(f"gimp-home-{gimp_env.gimp}")
    # The folder this GIMP reads (GIMP/3.2 for 3.2: it reads nothing from GIMP/3.0), named
    # explicitly so the plug-in lands there whichever folders the installer picks by itself.
    profile = gimp_env.gimp_profile(home)
    # The editors' GIMP runs its own Python without pyzmq/msgpack: the install must bundle them.
    done = subprocess.run([sys.executable, "-m", "portrait_style", "install-plugin", "gimp",
                           "--profile", str(profile), "--python", gimp_env.python_version()],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    plugin_dir = profile / "plug-ins" / "portrait-style"
    return GimpHome(home, plugin_dir, done.stdout, gimp_env)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("gimp-daemon"), "--engine", "magenta",
                 "--device", "cpu") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled portrait and painting as 8-bit PNGs (GIMP and the test read the same pixels)."""
    folder = tmp_path_factory.mktemp("gimp-samples")
    out = {}
    for name in ("astronaut", "starry_night"):
        image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
        image.thumbnail((SIZE, SIZE))
        out[name] = folder / f"{name}.png"
        image.save(out[name])
    return out


@dataclass
class Run:
    report: dict[str, Any]
    out: Path
    proc: subprocess.CompletedProcess[str]
    seconds: float

    def pixels(self, entry: dict[str, Any]) -> np.ndarray:
        data = np.fromfile(self.out / entry["file"], np.uint8)
        return data.reshape(entry["height"], entry["width"], entry["channels"])


def _run_case(gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], case: str,
              tmp_path: Path, style: Path | None = None, endpoint: str | None = None) -> Run:
    out = tmp_path / f"out-{case}"
    out.mkdir()
    style = style or samples["starry_night"]
    params = {"case": case, "content": str(samples["astronaut"]), "style": str(style),
              "endpoint": endpoint or daemon.endpoint, "out": str(out)}
    started = time.monotonic()
    report, proc = gimp.batch("stylize.py", params,
                              binds=[out, samples["astronaut"].parent, style.parent])
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Run(report, out, proc, seconds)


def _daemon_answer(daemon: Daemon, content: np.ndarray, style: Path, **fields: Any,
                   ) -> dict[str, np.ndarray]:
    """What the daemon itself returns for these pixels (the reference for GIMP's layers)."""
    from portrait_style.protocol.client import DaemonClient

    painting = np.asarray(Image.open(style).convert("RGB"))
    with DaemonClient(daemon.endpoint, timeout_s=120) as client:
        reply = client.stylize(np.ascontiguousarray(content), painting, **fields)
    return {name: np.asarray(layer) for name, layer in reply.layers.items()}


def _level_diff(a: np.ndarray, b: np.ndarray) -> int:
    a = a.reshape(a.shape[0], a.shape[1], -1)
    b = b.reshape(b.shape[0], b.shape[1], -1)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in 8-bit levels (what "looks the same" means here)."""
    a = a.reshape(a.shape[0], a.shape[1], -1).astype(np.float64)
    b = b.reshape(b.shape[0], b.shape[1], -1).astype(np.float64)
    return float(np.abs(a - b).mean())


def _composite(portrait: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The Portrait over the Background through the mask, in perceptual sRGB like the daemon."""
    blend = mask.reshape(mask.shape[0], mask.shape[1], 1) / 255.0
    out = blend * portrait[..., :3] + (1 - blend) * background[..., :3]
    return np.round(out).astype(np.uint8)


def _check_group(result: dict[str, Any]) -> None:
    assert result["group_name"] == GROUP_NAME
    assert result["position"] == 0, "the group sits directly above the source"
    assert set(result["layers"]) == {"Portrait", "Background"}
    portrait, background = result["layers"]["Portrait"], result["layers"]["Background"]
    assert result["children"][0] == portrait["name"] == "Portrait", "Portrait on top"
    # GIMP keeps names unique: our "Background" may be "Background #1" beside the photo's
    assert background["name"].startswith("Background")
    assert portrait["mask"] is not None and background["mask"] is None
    for entry in (portrait, background):
        assert entry["mode"] == "normal"
        assert entry["spaces"][1] == "rgb-perceptual", "composited like the daemon"
    assert result["group_spaces"][1] == "rgb-perceptual"


# ---------------------------------------------------------------------- GIMP tests


@pytest.mark.editors
@pytest.mark.slow
def test_install_bundles_the_wire_for_gimps_python(gimp: GimpHome) -> None:
    package = gimp.plugin_dir / "portrait_style_gimp"
    entry = gimp.plugin_dir / "portrait-style.py"
    assert entry.stat().st_mode & 0o111, "GIMP only runs an executable plug-in"
    assert (package / "_core" / "plugin" / "job.py").is_file()
    assert any((package / "_wire").glob("zmq/__init__.py"))
    assert any((package / "_wire").glob("msgpack/__init__.py"))
    assert "bundled pyzmq and msgpack" in gimp.install_output


@pytest.mark.editors
@pytest.mark.slow
def test_gimp_document_keeps_the_contract_at_every_precision(gimp: GimpHome) -> None:
    report, _ = gimp.batch("contract.py", {"plugin_dir": str(gimp.plugin_dir)}, binds=[])
    assert set(report) == {"u8 full canvas", "u8 small moved alpha", "u16 linear",
                           "float linear"}
    broken = {case: rules for case, rules in report.items() if rules}
    assert not broken, json.dumps(broken, indent=1)


@pytest.mark.editors
@pytest.mark.slow
def test_stylize_rerun_and_xcf_round_trip(gimp: GimpHome, daemon: Daemon,
                                          samples: dict[str, Path], tmp_path: Path) -> None:
    run = _run_case(gimp, daemon, samples, "main", tmp_path)
    report, steps = run.report, run.report["steps"]
    assert steps["stylize"]["status"] == "success", steps["stylize"]
    result = report["result"]
    _check_group(result)

    source = run.pixels(report["source_before"])
    assert np.array_equal(run.pixels(report["source_after"]), source), "source untouched"
    assert report["source_name"] == "Background", "the photo's layer keeps its name"
    record = json.loads(result["record"])
    assert record["style_path"] == str(samples["starry_night"])
    assert record["engine"] == "magenta" and record["source_name"] == "Background"

    expected = _daemon_answer(daemon, source, samples["starry_night"],
                              outputs=["background", "portrait", "mask", "composite"])
    layers = result["layers"]
    mask = run.pixels(layers["Portrait"]["mask"])[..., 0]
    assert np.array_equal(mask, expected["mask"]), "the layer mask is the daemon's mask"
    assert 0.15 < (mask > 127).mean() < 0.85, "the astronaut is found"
    assert _level_diff(run.pixels(layers["Portrait"]), expected["portrait"]) == 0
    assert _level_diff(run.pixels(layers["Background"]), expected["background"]) == 0
    for entry in (layers["Portrait"], layers["Background"], layers["Portrait"]["mask"]):
        assert (entry["width"], entry["height"], entry["offset"]) == (
            source.shape[1], source.shape[0], [0, 0])
    flat = run.pixels(report["flat"])
    assert _level_diff(flat, expected["composite"][..., :3]) <= 1, (
        "GIMP shows exactly the daemon's composite")

    # re-run portrait: the artist's edited mask is kept, and sent instead of a new one
    assert steps["rerun-portrait"]["status"] == "success", steps["rerun-portrait"]
    edited = run.pixels(report["edited_mask"])[..., 0]
    assert not np.array_equal(edited, mask)
    rerun = report["after_rerun"]
    _check_group(rerun)
    assert np.array_equal(run.pixels(rerun["layers"]["Portrait"]["mask"])[..., 0], edited)
    again = _daemon_answer(daemon, source, samples["starry_night"], mask=edited,
                           outputs=["portrait"])
    assert _level_diff(run.pixels(rerun["layers"]["Portrait"]), again["portrait"]) == 0
    assert np.array_equal(run.pixels(rerun["layers"]["Background"]),
                          run.pixels(layers["Background"])), "only the Portrait is redone"
    blend = edited[..., None] / 255.0
    composite = blend * again["portrait"][..., :3] + (1 - blend) * expected["background"][..., :3]
    assert _level_diff(run.pixels(report["flat_rerun"]), np.round(composite).astype(np.uint8)) <= 1

    # .xcf: group, mask and record survive; the reopened file re-runs its background
    assert report["saved"]
    reloaded = report["reloaded"]
    assert reloaded is not None, "the group is found again in the reopened .xcf"
    _check_group(reloaded)
    assert reloaded["record"] == rerun["record"]
    assert np.array_equal(run.pixels(reloaded["layers"]["Portrait"]["mask"])[..., 0], edited)
    assert steps["rerun-background"]["status"] == "success", steps["rerun-background"]
    after = report["after_background_rerun"]
    assert np.array_equal(run.pixels(after["layers"]["Portrait"]["mask"])[..., 0], edited)
    assert np.array_equal(run.pixels(after["layers"]["Portrait"]),
                          run.pixels(rerun["layers"]["Portrait"])), "only the Background is redone"

    # the status bar reads as words, never the daemon's stage ids
    stages = [line.split("progress: ", 1)[1] for line in run.proc.stderr.splitlines()
              if line.startswith("portrait-style: progress: ")]
    assert any(line.endswith(": painting") for line in stages), stages
    assert any(line.endswith(": finding the person") for line in stages), stages
    assert not [line for line in stages if re.search(r"transform|segment|encode_reply|_", line)]

    # scripts get a sentence, not a traceback, and the image is left as it was
    assert steps["no-style"]["status"] == "execution-error"
    assert "choose a style painting" in steps["no-style"]["error"]
    assert steps["no-style"]["new_layers"] == 0
    print(f"\nGIMP batch run: {run.seconds:.1f} s in all; stylize call "
          f"{steps['stylize']['seconds']:.2f} s, re-runs {steps['rerun-portrait']['seconds']:.2f}"
          f" / {steps['rerun-background']['seconds']:.2f} s; plug-in timings: "
          + "; ".join(line.split(": ", 1)[1] for line in run.proc.stderr.splitlines()
                      if line.startswith("portrait-style: ")))


@pytest.mark.editors
@pytest.mark.slow
def test_small_moved_layer_with_alpha(gimp: GimpHome, daemon: Daemon, samples: dict[str, Path],
                                      tmp_path: Path) -> None:
    run = _run_case(gimp, daemon, samples, "moved", tmp_path)
    report = run.report
    assert report["steps"]["stylize"]["status"] == "success", report["steps"]
    source = run.pixels(report["source_before"])
    assert source.shape[2] == 4 and source.shape[0] < SIZE
    assert np.array_equal(run.pixels(report["source_after"]), source)
    result = report["result"]
    _check_group(result)
    expected = _daemon_answer(daemon, source, samples["starry_night"],
                              outputs=["background", "portrait", "mask"])
    for name in ("Portrait", "Background"):
        entry = result["layers"][name]
        assert entry["offset"] == [37, 23] == report["source_before"]["offset"]
        assert (entry["width"], entry["height"]) == (source.shape[1], source.shape[0])
        pixels = run.pixels(entry)
        assert np.array_equal(pixels[..., 3], source[..., 3]), f"{name} keeps the alpha"
        opaque = source[..., 3] > 0
        assert _level_diff(pixels[..., :3][opaque][None],
                           expected[name.lower()][..., :3][opaque][None]) == 0
    mask = result["layers"]["Portrait"]["mask"]
    assert mask["offset"] == [37, 23]
    assert np.array_equal(run.pixels(mask)[..., 0], expected["mask"])
    # what the artist sees: inside the layer's opaque part, the daemon's composite
    flat = run.pixels(report["flat"])[23:23 + source.shape[0], 37:37 + source.shape[1]]
    shown = _composite(expected["portrait"], expected["background"], expected["mask"])
    opaque = source[..., 3] == 255
    assert _mean_diff(flat[opaque][None], shown[opaque][None]) <= 1.0


@pytest.mark.editors
@pytest.mark.slow
def test_sixteen_bit_linear_image(gimp: GimpHome, daemon: Daemon, samples: dict[str, Path],
                                  tmp_path: Path) -> None:
    run = _run_case(gimp, daemon, samples, "u16", tmp_path)
    report = run.report
    assert report["steps"]["stylize"]["status"] == "success", report["steps"]
    assert report["precision"] == report["precision_after"] == "u16-linear"
    source = run.pixels(report["source_before"])
    assert np.array_equal(run.pixels(report["source_after"]), source)
    photo = np.asarray(Image.open(samples["astronaut"]).convert("RGB"))
    assert _level_diff(source, photo) == 0, "8-bit content survives the 16-bit round trip"
    _check_group(report["result"])
    expected = _daemon_answer(daemon, source, samples["starry_night"],
                              outputs=["background", "portrait", "mask", "composite"])
    layers = report["result"]["layers"]
    assert _level_diff(run.pixels(layers["Portrait"]["mask"])[..., 0], expected["mask"]) <= 1
    assert _level_diff(run.pixels(layers["Portrait"]), expected["portrait"]) <= 1
    assert _level_diff(run.pixels(report["flat"]), expected["composite"][..., :3]) <= 1


@pytest.mark.editors
@pytest.mark.slow
def test_each_selected_layer_gets_its_own_group(gimp: GimpHome, daemon: Daemon,
                                                samples: dict[str, Path], tmp_path: Path) -> None:
    run = _run_case(gimp, daemon, samples, "two", tmp_path)
    assert run.report["steps"]["stylize"]["status"] == "success", run.report["steps"]
    stack = run.report["stack"]  # top first
    assert [entry["record"] is not None for entry in stack] == [True, False, True, False]
    for group, layer in ((stack[0], stack[1]), (stack[2], stack[3])):
        record = json.loads(group["record"])
        assert record["source_id"] == str(layer["tattoo"]), "each group sits above its layer"
        assert record["source_name"] == layer["name"]
    assert {stack[1]["name"], stack[3]["name"]} == {"Second photo", "Background"}
    # what the artist sees: the second photo's result, moved by (15, 9), over the first's
    source = run.pixels(run.report["source_before"])
    composite = _daemon_answer(daemon, source, samples["starry_night"],
                               outputs=["composite"])["composite"][..., :3]
    flat = run.pixels(run.report["flat"])
    assert _mean_diff(flat[9:, 15:], composite[:-9, :-15]) <= 1.0
    assert _mean_diff(flat[:9], composite[:9]) <= 1.0
    assert _mean_diff(flat[:, :15], composite[:, :15]) <= 1.0


@pytest.mark.editors
@pytest.mark.slow
def test_a_huge_style_scan_is_scaled_down_before_sending(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """17 MP is over the daemon's 16 MP limit for a style; GIMP scales its own copy first."""
    scan = tmp_path / "scan" / "huge_scan.png"
    scan.parent.mkdir()
    Image.open(samples["starry_night"]).resize((4700, 3700), Image.NEAREST).save(
        scan, compress_level=1)
    run = _run_case(gimp, daemon, samples, "huge-style", tmp_path, style=scan)
    assert run.report["steps"]["stylize"]["status"] == "success", run.report["steps"]
    assert run.report["result"]["group_name"] == "Portrait style — Huge Scan"
    assert scan.stat().st_size > 0 and json.loads(run.report["result"]["record"])[
        "style_path"] == str(scan), "the record names the painting, not the scaled copy"
    layers = run.report["result"]["layers"]
    shown = _composite(run.pixels(layers["Portrait"]), run.pixels(layers["Background"]),
                       run.pixels(layers["Portrait"]["mask"]))
    flat = run.pixels(run.report["flat"])
    assert _mean_diff(flat, shown) <= 1.0
    photo = run.pixels(run.report["source_before"])
    assert _mean_diff(flat, photo) > 10, "the restyled image is what GIMP shows"


@pytest.mark.editors
@pytest.mark.slow
def test_apply_again_lands_on_top_and_a_layer_in_a_group_stands_for_its_photo(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """A second Apply to the same photo lands above the first result (not under it, where
    it would be hidden); Apply with a layer of a result group selected restyles that group's
    photo (never the styled layer, never a group in the group); with the photo gone it is
    refused in words. Each time the flattened image is the newest result."""
    run = _run_case(gimp, daemon, samples, "again", tmp_path)
    report, steps = run.report, run.report["steps"]
    source = run.pixels(report["source_before"])
    photo_tattoo = report["stack"][-1]["tattoo"]
    painting = samples["starry_night"]
    expected = {
        "again-source": _daemon_answer(daemon, source, painting, outputs=["composite"], regions={
            "background": {"preserve_color": True}, "portrait": {"preserve_color": True}}),
        "again-inside": _daemon_answer(daemon, source, painting, outputs=["composite"],
                                       regions={"background": {"strength": 0.3}}),
    }
    for count, name in enumerate(("again-source", "again-inside"), start=3):
        assert steps[name]["status"] == "success", steps[name]
        stack = report[name]["stack"]
        assert len(stack) == count, [entry["name"] for entry in stack]
        assert stack[-1]["tattoo"] == photo_tattoo and stack[-1]["record"] is None
        for group in stack[:-1]:
            assert group["visible"] and json.loads(group["record"])["source_id"] == str(
                photo_tattoo), "every result is made from the photo, none nested"
        assert report[name]["top"]["position"] == 0, "the newest result is on top"
        assert all(not child.startswith("Portrait style")
                   for child in report[name]["top"]["children"])
        composite = expected[name]["composite"][..., :3]
        flat = run.pixels(report[name]["flat"])
        assert _mean_diff(flat, composite) <= 1.0, f"{name}: GIMP shows the newest result"
    first = run.pixels(report["flat"])
    assert _mean_diff(first, expected["again-source"]["composite"][..., :3]) > 3, (
        "the settings differ enough to tell the results apart")
    gone = steps["source-gone"]
    assert gone["status"] == "execution-error" and gone["new_layers"] == 0, gone
    assert "is gone" in gone["error"] and "Background" in gone["error"], gone


@pytest.mark.editors
@pytest.mark.slow
def test_a_painting_that_decodes_only_partly_is_refused_naming_it(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """A JPEG cut at 30 kB loads in GIMP with its lower part grey, a PNG with a flipped byte
    up to the damage: both refused in words naming the file; the image is not touched."""
    bad = damaged_paintings(tmp_path / "paintings")
    out = tmp_path / "out-bad-styles"
    out.mkdir()
    params = {"case": "bad-styles", "content": str(samples["astronaut"]),
              "style": str(samples["starry_night"]), "endpoint": daemon.endpoint,
              "out": str(out), "bad_styles": {k: str(v) for k, v in bad.items()}}
    report, proc = gimp.batch("stylize.py", params,
                              binds=[out, samples["astronaut"].parent, bad["corrupt-png"].parent])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, step in report["bad_styles"].items():
        assert step["status"] == "execution-error", (name, step)
        assert str(bad[name]) in step["error"], (name, step["error"])
        assert "only part of this image can be read" in step["error"], (name, step["error"])
        assert step["new_layers"] == 0 and not step["dirty"], (name, step)
    assert report["steps"]["stylize"]["status"] == "success", "a whole painting still works"


def _plugin_pids() -> list[int]:
    """Host pids of running portrait-style GIMP plug-in processes (the chroot's are visible)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"plug-ins/portrait-style/portrait-style.py" in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.editors
@pytest.mark.slow
def test_cancel_kills_the_plugin_and_the_daemon_drops_the_job(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """GIMP's Cancel on a plug-in's progress bar kills the plug-in process (SIGKILL): the
    image must stay as it was, and the daemon must stop working on the orphaned job."""
    log = daemon.home / "state" / "logs" / "serve.log"
    seen = len(log.read_text())
    runs: list[Run] = []
    worker = threading.Thread(target=lambda: runs.append(
        _run_case(gimp, daemon, samples, "cancel", tmp_path)))
    worker.start()
    deadline = time.monotonic() + 120
    job = None
    while job is None and time.monotonic() < deadline and worker.is_alive():
        match = re.search(r"job (\S+) from \S+ queued: 3072x3072", log.read_text()[seen:])
        job = match.group(1) if match else None
        time.sleep(0.05)
    assert job, "the plug-in never sent its job"
    pids = _plugin_pids()
    assert pids, "the plug-in process is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    worker.join(timeout=120)
    report = runs[0].report
    assert report["steps"]["stylize"]["status"] != "success"
    assert report["layer_count"] == 1, "nothing was added to the image"
    assert not report["dirty"], "the untouched image is not marked modified"
    assert "inconsistent" not in runs[0].proc.stderr, runs[0].proc.stderr[-2000:]
    source = runs[0].pixels(report["source_before"])
    assert np.array_equal(runs[0].pixels(report["flat"]), source), "the image shows the photo"
    while time.monotonic() < deadline and f"job {job} cancelled" not in log.read_text():
        time.sleep(0.1)
    assert f"job {job} cancelled" in log.read_text(), log.read_text()[seen:][-2000:]


@pytest.mark.editors
@pytest.mark.slow
def test_daemon_stopped_mid_job_is_said_in_the_cores_words(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """`portrait-style stop` (SIGTERM) while GIMP waits: the artist reads that the daemon was
    stopped — not "Cancelled", which they did not do — and the image is unchanged."""
    from daemon_harness import start_daemon, stop_daemon

    own = start_daemon(tmp_path / "own-daemon", "--engine", "magenta", "--device", "cpu")
    try:
        log = own.home / "state" / "logs" / "serve.log"
        runs: list[Run] = []
        worker = threading.Thread(target=lambda: runs.append(
            _run_case(gimp, daemon, samples, "cancel", tmp_path, endpoint=own.endpoint)))
        worker.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.is_alive() and not (
                log.exists() and re.search(r"job \S+ from \S+ queued: 3072x3072", log.read_text())):
            time.sleep(0.05)
        assert worker.is_alive(), "the job ended before the daemon could be stopped"
        stop_daemon(own)
        worker.join(timeout=120)
    finally:
        stop_daemon(own)
    report = runs[0].report
    step = report["steps"]["stylize"]
    assert step["status"] == "execution-error", step
    assert "daemon was stopped" in step["error"] and "unchanged" in step["error"], step
    assert "Cancelled" not in step["error"], step
    assert report["layer_count"] == 1 and not report["dirty"]
    assert "inconsistent" not in runs[0].proc.stderr


@pytest.mark.editors
@pytest.mark.slow
def test_no_daemon_is_reported_in_words(gimp: GimpHome, daemon: Daemon,
                                        samples: dict[str, Path], tmp_path: Path) -> None:
    """Nothing answers and this machine has no daemon command to start one with."""
    run = _run_case(gimp, daemon, samples, "unreachable", tmp_path,
                    endpoint="tcp://127.0.0.1:9")
    step = run.report["steps"]["stylize"]
    assert step["status"] == "execution-error"
    assert "daemon could not start" in step["error"] and "installer" in step["error"], step
    assert "Traceback" not in step["error"] and "Traceback" not in run.proc.stderr
    assert run.report["layer_count"] == 1 and not run.report["dirty"]
    assert np.array_equal(run.pixels(run.report["flat"]),
                          run.pixels(run.report["source_before"]))


@pytest.mark.editors
@pytest.mark.slow
def test_greyscale_image_gets_grey_layers_and_says_so(gimp: GimpHome, daemon: Daemon,
                                                    samples: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """A greyscale photo (old prints often are) is served, in grey, with a notice on colour."""
    run = _run_case(gimp, daemon, samples, "gray", tmp_path)
    report = run.report
    assert report["steps"]["stylize"]["status"] == "success", report["steps"]["stylize"]
    assert report["base_type"] == "gray"
    result = report["result"]
    _check_group(result)
    source = run.pixels(report["source_before"])
    assert np.array_equal(source[..., 0], source[..., 2]), "GIMP hands over R' = G' = B'"
    assert np.array_equal(run.pixels(report["source_after"]), source), "the photo is untouched"
    expected = _daemon_answer(daemon, source, samples["starry_night"],
                              outputs=["background", "portrait", "mask"])
    layers = result["layers"]
    assert layers["Portrait"]["is_gray"] and layers["Background"]["is_gray"]
    assert np.array_equal(run.pixels(layers["Portrait"]["mask"])[..., 0], expected["mask"])
    for role in ("Portrait", "Background"):
        grey = run.pixels(layers[role]).astype(float)
        ours = expected[role.lower()][..., :3].astype(float)
        luma = ours @ np.array([0.2126, 0.7152, 0.0722])  # what a grey layer keeps, roughly
        assert np.abs(grey[..., 0] - luma).mean() < 12, role
    assert not np.array_equal(run.pixels(layers["Portrait"]), run.pixels(layers["Background"]))
    # what the artist sees: the grey layers through the mask (GIMP's own grey conversion)
    shown = _composite(run.pixels(layers["Portrait"]), run.pixels(layers["Background"]),
                       run.pixels(layers["Portrait"]["mask"]))
    assert _mean_diff(run.pixels(report["flat"]), shown) <= 1.0
    assert "greyscale" in run.proc.stdout + run.proc.stderr, "the colour notice is shown"


@pytest.mark.editors
@pytest.mark.slow
def test_indexed_image_is_refused_in_words(gimp: GimpHome, daemon: Daemon,
                                           samples: dict[str, Path], tmp_path: Path) -> None:
    run = _run_case(gimp, daemon, samples, "indexed", tmp_path)
    step = run.report["steps"]["stylize"]
    assert step["status"] == "execution-error"
    assert "indexed" in step["error"] and "Image ▸ Mode ▸ RGB" in step["error"], step
    assert run.report["layer_count"] == 1, "nothing was added"
    assert np.array_equal(run.pixels(run.report["flat"]),
                          run.pixels(run.report["source_before"])), "the image is unchanged"


def _crop_to_content(shot: Path) -> np.ndarray:
    """The screen without Xvfb's empty black margin (no window manager: windows sit top-left)."""
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    used = np.argwhere(pixels.max(axis=2) > 8)
    (top, left), (bottom, right) = used.min(axis=0), used.max(axis=0) + 1
    return pixels[top:bottom, left:right]


#: GIMP draws the layer's dashed boundary over the image's outermost pixels
_EDGE = 4


def _find_on_screen(screen: np.ndarray, picture: np.ndarray, tolerance: float = 3.0,
                    ) -> tuple[int, int]:
    """Top-left (y, x) where ``picture`` is shown at 100 % on ``screen`` (a canvas at 1:1).

    Found by its inner part: the outermost ``_EDGE`` pixels carry GIMP's layer boundary.
    """
    picture = picture[_EDGE:-_EDGE, _EDGE:-_EDGE]
    height, width = picture.shape[:2]
    first = picture[0, 0].astype(np.int16)
    near = np.abs(screen.astype(np.int16) - first).max(axis=2) <= tolerance
    for y, x in np.argwhere(near):
        if y + height > screen.shape[0] or x + width > screen.shape[1]:
            continue
        if _mean_diff(screen[y:y + 1, x:x + width], picture[:1]) > tolerance:
            continue
        if _mean_diff(screen[y:y + height, x:x + width], picture) <= tolerance:
            return int(y) - _EDGE, int(x) - _EDGE
    raise AssertionError("the picture is not on the screen at 100 %")


def _locate(display: str, picture: Path, shot: Path, timeout: float = 60.0,
            ) -> tuple[np.ndarray, int, int]:
    """A screenshot once ``picture`` shows at 100 % (GIMP draws its canvas when it can)."""
    wanted = np.asarray(Image.open(picture).convert("RGB"))
    deadline = time.monotonic() + timeout
    while True:
        screen = np.asarray(Image.open(editors.screenshot(display, shot)).convert("RGB"))
        try:
            return (screen, *_find_on_screen(screen, wanted))
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _gui_gimp(gimp: GimpHome, daemon: Daemon, tmp_path: Path, script: str,
              params: dict[str, Any], binds: list[Path], display: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start GIMP's GUI on ``display`` running ``script`` as its batch code."""
    home = gimp.home
    profile = gimp.plugin_dir.parents[1]
    (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
    settings = home / ".config" / "portrait-style"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "config.json").write_text(json.dumps({"endpoint": daemon.endpoint}))
    code = f"PARAMS = {json.dumps(params)}\n" + (SCRIPTS / script).read_text()
    batch = home / "gui_batch.py"
    batch.write_text(code)
    (home / editors.RESULT_NAME).unlink(missing_ok=True)
    full_env = {**editors.isolated_env(home), "DISPLAY": display, **(env or {})}
    argv = ["gimp", "--no-splash", "--batch-interpreter=python-fu-eval",
            "-b", f"exec(open({str(batch)!r}).read())", "--quit"]
    return editors.popen_in_editors(argv, env=full_env, binds=[home, tmp_path, *binds],
                                    log=tmp_path / "gimp.log")


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while not path.exists():
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.1)


@pytest.mark.editors
@pytest.mark.slow
def test_canvas_shows_apply_rerun_and_undo_in_gimps_gui(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """The real GUI under Xvfb: the canvas shows the photo, then after Apply the daemon's
    composite (screenshots before and after); after a Re-run with an edited mask the new
    composite; Ctrl+Z (real key presses) undoes the Re-run, then the Apply — the photo
    again, unmodified. The flattened image is checked at every step."""
    import x11_input

    out = tmp_path / "canvas"
    out.mkdir()
    photo = samples["astronaut"]
    params = {"content": str(photo), "style": str(samples["starry_night"]),
              "endpoint": daemon.endpoint, "out": str(out)}
    log = tmp_path / "gimp.log"
    shots: dict[str, np.ndarray] = {}
    with editors.xvfb_session(size="1280x800x24", log_dir=tmp_path / "x") as display:
        proc = _gui_gimp(gimp, daemon, tmp_path, "canvas.py", params, [photo.parent], display)
        try:
            deadline = time.monotonic() + 240
            with x11_input.XInput(display) as keys:
                for step in ("photo", "apply", "rerun", "undo1"):
                    _wait_for(out / f"{step}.ready", proc, log, deadline)
                    shot = tmp_path / f"screen-{step}.png"
                    if step == "photo":
                        shots[step], top, left = _locate(display, photo, shot)
                    else:
                        time.sleep(1.5)  # let the canvas draw
                        shots[step] = np.asarray(Image.open(
                            editors.screenshot(display, shot)).convert("RGB"))
                    if step in ("rerun", "undo1"):  # the artist's Ctrl+Z over the canvas
                        keys.move(left + 40, top + 40)
                        keys.chord("Control_L", "z")
                        keys.move(1200, 760)  # off GIMP's window: no brush outline on the canvas
                        time.sleep(1.0)
                    (out / f"{step}.go").write_text("go\n")
            result = tmp_path / "home-result.json"
            _wait_for(gimp.home / editors.RESULT_NAME, proc, log, deadline)
            shutil.copyfile(gimp.home / editors.RESULT_NAME, result)
        finally:
            editors.kill_tree(proc)
    report = json.loads(result.read_text())
    assert report["steps"]["apply"]["status"] == "success", report["steps"]
    assert report["steps"]["rerun"]["status"] == "success", report["steps"]

    def pixels(entry: dict[str, Any]) -> np.ndarray:
        data = np.fromfile(out / entry["file"], np.uint8)
        return data.reshape(entry["height"], entry["width"], entry["channels"])

    source = pixels(report["photo"]["flat"])
    expected = _daemon_answer(daemon, source, samples["starry_night"],
                              outputs=["background", "portrait", "mask", "composite"])
    composite = expected["composite"][..., :3]
    assert np.array_equal(pixels(report["apply_mask"])[..., 0], expected["mask"])
    assert _mean_diff(pixels(report["apply"]["flat"]), composite) <= 1.0
    assert report["apply"]["layers"] == 2 and report["apply"]["dirty"]

    # the canvas itself: where the photo was, the composite now is
    height, width = source.shape[:2]

    def canvas(step: str) -> np.ndarray:
        return shots[step][top + _EDGE:top + height - _EDGE, left + _EDGE:left + width - _EDGE]

    def inner(picture: np.ndarray) -> np.ndarray:
        return picture[_EDGE:-_EDGE, _EDGE:-_EDGE]

    before, after = canvas("photo"), canvas("apply")
    assert _mean_diff(before, inner(source)) <= 3.0
    assert _mean_diff(after, before) > 15, "the canvas changed"
    assert _mean_diff(after, inner(composite)) <= 3.0, "the canvas shows the daemon's composite"
    Image.fromarray(np.concatenate([before, after], axis=1)).save(tmp_path / "canvas.png")
    if os.environ.get("PORTRAIT_STYLE_UPDATE_DOCS"):
        Image.fromarray(shots["apply"][:610, :860]).save(REPO / "docs" / "gimp-canvas.png",
                                                         optimize=True)

    edited = pixels(report["edited_mask"])[..., 0]
    again = _daemon_answer(daemon, source, samples["starry_night"], mask=edited,
                           outputs=["portrait"])["portrait"]
    rerun = _composite(again, expected["background"], edited)
    assert _mean_diff(pixels(report["rerun"]["flat"]), rerun) <= 1.0
    assert _mean_diff(canvas("rerun"), inner(rerun)) <= 3.0, "the canvas shows the re-run"
    assert _mean_diff(canvas("undo1"), inner(undone := _composite(
        expected["portrait"], expected["background"], edited))) <= 3.0

    # one Ctrl+Z: the re-run is gone (the first Portrait, with the mask as edited)
    assert report["undo1"]["layers"] == 2
    assert _mean_diff(pixels(report["undo1"]["flat"]), undone) <= 1.0
    # another: the Apply is gone, the photo is back and the image is as it was loaded
    assert report["undo2"]["layers"] == 1 and not report["undo2"]["dirty"]
    assert _mean_diff(pixels(report["undo2"]["flat"]), source) <= 1.0


@pytest.mark.editors
@pytest.mark.slow
def test_reshow_last_after_a_rerun_opens_the_dialog_with_the_last_values(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path], tmp_path: Path) -> None:
    """The real GUI, driven by key presses: Portrait Style… from GIMP's action search, then
    Re-run Portrait the same way, then Filters ▸ Re-Show Last (Shift+Ctrl+F): the Portrait
    Style dialog opens again with the painting chosen before — not the re-run."""
    import x11_input

    if gimp.env.gimp != "3.0":
        # GIMP 3.2's action search lists the Layers-dock twin of the re-run among the
        # matches and, under Xvfb without a window manager, its popup did not always run
        # the first match on Return: the typed path is not reliable there yet
        pytest.skip(f"the typed action-search path is proven in GIMP 3.0 only, not "
                    f"{gimp.env.gimp}")

    out = tmp_path / "reshow"
    out.mkdir()
    photo = samples["astronaut"]
    profile = gimp.plugin_dir.parents[1]
    (profile / "portrait-style-recent-styles.json").write_text(
        json.dumps([str(samples["starry_night"])]))
    prefix = tmp_path / "dialog"
    log = tmp_path / "gimp.log"
    with editors.xvfb_session(size="1280x800x24", log_dir=tmp_path / "x") as display:
        proc = _gui_gimp(gimp, daemon, tmp_path, "reshow.py",
                         {"content": str(photo), "out": str(out)}, [photo.parent], display,
                         env={"PORTRAIT_STYLE_DIALOG_TEST": str(prefix)})
        try:
            deadline = time.monotonic() + 240
            with x11_input.XInput(display) as keys:
                _wait_for(out / "ready", proc, log, deadline)
                _, top, left = _locate(display, photo, tmp_path / "screen.png")

                def search(words: str) -> None:  # the artist's "/" (Search Actions), words, ⏎
                    keys.move(left + 60, top + 60)
                    before = np.asarray(Image.open(editors.screenshot(
                        display, tmp_path / "before-search.png")).convert("RGB"))
                    keys.chord("/")
                    time.sleep(1.5)
                    after = np.asarray(Image.open(editors.screenshot(
                        display, tmp_path / "search.png")).convert("RGB"))
                    # no window manager: keys go to the window under the pointer, so the
                    # pointer goes onto the search popup (where the screen changed)
                    # (a new window shows black until it is drawn, without a compositor)
                    fresh = np.argwhere((after.max(axis=2) == 0) & (before.max(axis=2) > 0))
                    if len(fresh) <= 1000:  # already drawn: where the canvas area changed
                        changed = np.abs(after.astype(int) - before).max(axis=2) > 0
                        changed[top + 300:] = False  # not the status bar below the canvas
                        fresh = np.argwhere(changed)
                    assert len(fresh) > 1000, "the action search did not open"
                    y, x = np.median(fresh, axis=0).astype(int)
                    keys.move(int(x), int(y))
                    keys.focus_under_pointer()
                    time.sleep(0.3)
                    keys.type_text(words)
                    time.sleep(1.5)
                    editors.screenshot(display, tmp_path / f"search-{words[:7]}.png")
                    keys.chord("Return")

                def dialog_ok() -> None:
                    _wait_for(prefix.with_suffix(".shown"), proc, log, time.monotonic() + 30)
                    prefix.with_suffix(".shown").unlink()
                    prefix.with_suffix(".ok").write_text("ok\n")

                search("restyle a photo")  # the tooltip of Portrait Style… only
                dialog_ok()
                _wait_for(out / "grouped", proc, log, deadline)
                prefix.with_suffix(".ok").unlink()
                search("re-run portrait")
                _wait_for(out / "rerun", proc, log, deadline)
                time.sleep(1.0)
                keys.move(left + 60, top + 60)
                keys.chord("Control_L", "Shift_L", "f")  # Filters ▸ Re-Show Last
                dialog_ok()
                (out / "finish").write_text("1\n")
                _wait_for(gimp.home / editors.RESULT_NAME, proc, log, deadline)
        finally:
            editors.kill_tree(proc)
    report = json.loads((gimp.home / editors.RESULT_NAME).read_text())
    records = [group["record"] for group in report["groups"]]
    assert len(records) == 2, report
    assert [r["style_path"] for r in records] == [str(samples["starry_night"])] * 2, records


@pytest.mark.editors
@pytest.mark.slow
def test_dialog_in_gimps_gui_then_last_values(gimp: GimpHome, daemon: Daemon,
                                              samples: dict[str, Path], tmp_path: Path) -> None:
    """The real GUI under Xvfb: Filters ▸ Artistic ▸ Portrait Style… INTERACTIVE, then again
    WITH_LAST_VALS. The endpoint comes from the config file, as for a user."""
    home = gimp.home
    profile = gimp.plugin_dir.parents[1]
    (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
    (profile / "portrait-style-recent-styles.json").write_text(
        json.dumps([str(samples["starry_night"])]))
    settings = home / ".config" / "portrait-style"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "config.json").write_text(json.dumps({"endpoint": daemon.endpoint}))
    code = (f"PARAMS = {json.dumps({'content': str(samples['astronaut'])})}\n"
            + (SCRIPTS / "dialog.py").read_text())
    script = home / "gui_batch.py"
    script.write_text(code)
    result = home / editors.RESULT_NAME
    result.unlink(missing_ok=True)
    prefix = tmp_path / "dialog"
    shot = tmp_path / "screen.png"
    with editors.xvfb_session(size="1280x800x24", log_dir=tmp_path / "x") as display:
        env = {**editors.isolated_env(home), "DISPLAY": display,
               "PORTRAIT_STYLE_DIALOG_TEST": str(prefix)}
        argv = ["gimp", "--no-splash", "--batch-interpreter=python-fu-eval",
                "-b", f"exec(open({str(script)!r}).read())", "--quit"]
        proc = editors.popen_in_editors(argv, env=env, binds=[home, tmp_path,
                                                              samples["astronaut"].parent],
                                        log=tmp_path / "gimp.log")
        try:
            deadline = time.monotonic() + 180
            while not prefix.with_suffix(".shown").exists():
                assert proc.poll() is None, (tmp_path / "gimp.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the dialog never appeared"
                time.sleep(0.2)
            time.sleep(1.5)  # let it draw
            editors.screenshot(display, shot)
            prefix.with_suffix(".ok").write_text("ok\n")
            while not result.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert result.exists(), (tmp_path / "gimp.log").read_text()[-3000:]
        finally:
            editors.kill_tree(proc)
    report = json.loads(result.read_text())
    assert report["menu_paths"] == ["<Image>/Filters/Artistic"]
    assert report["menu_label"] == "Portrait _Style…"
    for region in ("portrait", "background"):
        label, paths = report["reruns"][f"plug-in-portrait-style-rerun-{region}"]
        assert label == f"Portrait Style: Re-run _{region.capitalize()}"
        assert paths == ["<Image>/Filters/Artistic"]
        label, paths = report["reruns"][f"plug-in-portrait-style-rerun-{region}-from-layers"]
        assert label == f"Portrait Style: Re-run _{region.capitalize()}"
        assert paths == ["<Layers>/Portrait Style"], "the Layers dock's right-click menu"
    assert report["interactive"]["status"] == "success", report
    assert report["interactive"]["groups"] == [GROUP_NAME], "started from the recent style"
    last = report["last_values"]
    assert last["status"] == "success", last
    assert len(last["groups"]) == 2 and all(g.startswith(GROUP_NAME) for g in last["groups"])

    screen = _crop_to_content(shot)
    assert screen.shape[0] > 300 and screen.shape[1] > 400
    assert len(np.unique(screen.reshape(-1, 3), axis=0)) > 200, "a drawn window, not a blank"
    Image.fromarray(screen).save(tmp_path / "gimp-dialog.png", optimize=True)
    if os.environ.get("PORTRAIT_STYLE_UPDATE_DOCS"):
        shutil.copyfile(tmp_path / "gimp-dialog.png", REPO / "docs" / "gimp-dialog.png")
