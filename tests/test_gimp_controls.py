"""The GIMP dialog's controls, live preview and gallery, as an artist uses them.

Without GIMP: the procedure's knob arguments come from the knob table
(``knob_args``), each with a mnemonic of its own. In GIMP (batch): the
registered arguments have the table's names, ranges and defaults — no -1
sentinel. In GIMP's GUI under Xvfb, with real clicks: the dialog opens with a
live preview of the photo, the preview changes after a knob is moved, a
painting picked from the gallery's thumbnails is previewed and then applied
(the flattened image is the daemon's answer for those pixels and knobs).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import editors
import numpy as np
import pytest
from daemon_harness import Daemon
from PIL import Image
from test_gimp import (  # noqa: F401 - module fixtures shared with the GIMP tests
    REPO,
    SCRIPTS,
    GimpHome,
    _daemon_answer,
    _mean_diff,
    daemon,
    gimp,
    samples,
)

from portrait_style.plugin import gallery
from portrait_style.protocol import knobs

PLUGIN_SOURCE = REPO / "plugin" / "gimp" / "portrait-style"


def _knob_args() -> Any:
    sys.path.insert(0, str(PLUGIN_SOURCE))
    try:
        from portrait_style_gimp import knob_args
    finally:
        sys.path.remove(str(PLUGIN_SOURCE))
    return knob_args


class _Config:
    """A stand-in for GIMP's procedure config: a dict behind get/set_property."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get_property(self, name: str) -> Any:
        return self.values[name]

    def set_property(self, name: str, value: Any) -> None:
        self.values[name] = value


# --------------------------------------------------------------------- no GIMP needed


def test_every_knob_control_becomes_an_argument_with_a_mnemonic_of_its_own() -> None:
    knob_args = _knob_args()
    controls = knobs.controls()
    labels = knob_args.labels(controls)
    assert set(labels) == {c.name for c in controls}
    letters = [label[label.index("_") + 1].lower() for label in labels.values() if "_" in label]
    assert len(letters) == len(set(letters)), f"one Alt+letter opens two things: {labels}"
    assert not set(letters) & set(knob_args.TAKEN)
    for label in labels.values():  # none only when every letter of it is taken already
        assert "_" in label or set(label.lower()) - {" ", "-"} <= set(letters) | set(
            knob_args.TAKEN), label
    assert all("_" in labels[c.name] for c in controls if not c.advanced)
    for control in controls:
        assert labels[control.name].replace("_", "") == control.label
    # the names GIMP saved last values under before the table existed are all still there
    assert {"background-strength", "portrait-strength", "likeness", "stroke-size",
            "preserve-color"} <= set(labels)
    main, advanced = knob_args.main_names(controls), knob_args.advanced_names(controls)
    assert "endpoint" in advanced and "endpoint" not in main
    assert set(main) | set(advanced) == {c.name for c in controls} | {"endpoint"}


def test_only_knobs_moved_off_their_default_are_sent_and_reset_restores_them() -> None:
    knob_args = _knob_args()
    controls = knobs.controls()
    config = _Config({c.name: c.default for c in controls})
    assert knob_args.values(config, controls) == {}
    config.set_property("portrait-strength", 0.35)
    config.set_property("preserve-color", True)
    config.set_property("likeness", -1.0)  # an old "daemon's preset" value GIMP kept
    assert knob_args.values(config, controls) == {"portrait-strength": 0.35,
                                                  "preserve-color": True}
    assert knobs.regions_from_controls(knob_args.values(config, controls)) == {
        "portrait": {"strength": 0.35, "preserve_color": True},
        "background": {"preserve_color": True}}
    knob_args.reset(config, controls)
    assert config.values == {c.name: c.default for c in controls}


class _Procedure:
    """Records the argument calls ``knob_args.declare`` makes on a GIMP procedure."""

    def __init__(self) -> None:
        self.arguments: dict[str, tuple[Any, ...]] = {}

    def add_double_argument(self, name: str, *rest: Any) -> None:
        self.arguments[name] = ("double", *rest)

    def add_boolean_argument(self, name: str, *rest: Any) -> None:
        self.arguments[name] = ("boolean", *rest)


def test_a_knob_added_to_the_table_becomes_a_gimp_argument_with_no_edit_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    knob_args = _knob_args()
    grain = knobs.Knob("grain", float, {"background": 0.0, "portrait": 0.2}, 0.0, "grain",
                       "How much film grain the {region} gets", high=0.5)
    monkeypatch.setattr(knobs, "TABLE", (*knobs.TABLE, grain))
    procedure = _Procedure()
    knob_args.declare(procedure, knobs.controls(), "flags")
    kind, label, tooltip, low, high, default, flags = procedure.arguments["portrait-grain"]
    assert (kind, low, high, default, flags) == ("double", 0.0, 0.5, 0.2, "flags")
    assert label.replace("_", "") == "Portrait grain" and "0–0.5" in tooltip
    assert procedure.arguments["background-grain"][5] == 0.0
    assert procedure.arguments["preserve-color"][:4] == (
        "boolean", "Preser_ve colour",
        knobs.control("preserve-color").tooltip + " Default: off.", False)
    assert procedure.arguments["likeness"][2].endswith(" Default: 0.80.")


# ------------------------------------------------------------------------ in GIMP


@pytest.mark.editors
@pytest.mark.slow
def test_gimp_registers_the_knob_tables_arguments(gimp: GimpHome,  # noqa: F811
                                                  tmp_path: Path) -> None:
    """The procedure's arguments in real GIMP: the table's ranges and defaults, no -1."""
    report, proc = gimp.batch("arguments.py", {}, binds=[tmp_path])
    assert proc.returncode == 0, proc.stderr[-3000:]
    arguments = report["arguments"]
    assert arguments["style"]["type"] == "GFile"
    assert arguments["endpoint"]["type"] == "gchararray", "kept for scripts"
    for control in knobs.controls():
        found = arguments[control.name]
        assert found["label"].replace("_", "") == control.label
        assert found["tooltip"].startswith(control.tooltip)
        assert found["tooltip"].endswith(" Default: on." if control.default is True else
                                         " Default: off." if control.default is False else
                                         f" Default: {control.default:.{control.digits}f}.")
        if control.kind is bool:
            assert found["default"] is control.default
        else:
            assert (found["low"], found["high"]) == (control.low, control.high), control.name
            assert found["default"] == pytest.approx(control.default), control.name


def _wait(check: Any, proc: Any, log: Path, deadline: float, what: str) -> Any:
    while True:
        found = check()
        if found:
            return found
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.2)


def _previews(prefix: Path) -> list[dict[str, Any]]:
    path = Path(str(prefix) + ".previews.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _crop(shot: Path, place: list[int]) -> np.ndarray:
    x, y, w, h = place
    return np.asarray(Image.open(shot).convert("RGB"))[y:y + h, x:x + w]


@pytest.mark.editors
@pytest.mark.slow
def test_dialog_previews_a_knob_change_and_a_gallery_painting_then_applies(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path],  # noqa: F811
        tmp_path: Path) -> None:
    """Real GIMP GUI, real clicks: the preview appears, changes after the Portrait
    strength slider is clicked, shows a gallery painting picked by its thumbnail, and
    OK applies exactly that painting and knob (the daemon's answer), with the photo
    untouched until then."""
    import x11_input

    home = gimp.home
    profile = gimp.plugin_dir.parents[1]
    (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
    (profile / "portrait-style-recent-styles.json").write_text(
        json.dumps([str(samples["starry_night"])]))
    settings = home / ".config" / "portrait-style"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "config.json").write_text(json.dumps({"endpoint": daemon.endpoint}))
    out = tmp_path / "out"
    out.mkdir()
    params = {"content": str(samples["astronaut"]), "out": str(out)}
    script = home / "gui_batch.py"
    script.write_text(f"PARAMS = {json.dumps(params)}\n"
                      + (SCRIPTS / "dialog_controls.py").read_text())
    result = home / editors.RESULT_NAME
    result.unlink(missing_ok=True)
    prefix = tmp_path / "dialog"
    log = tmp_path / "gimp.log"
    painting = gallery.find("hokusai_great_wave")
    shots: dict[str, Path] = {}
    with editors.xvfb_session(size="1280x800x24", log_dir=tmp_path / "x",
                              within=gimp.env) as display:
        env = {**editors.isolated_env(home), "DISPLAY": display,
               "PORTRAIT_STYLE_DIALOG_TEST": str(prefix)}
        argv = ["gimp", "--no-splash", "--batch-interpreter=python-fu-eval",
                "-b", f"exec(open({str(script)!r}).read())", "--quit"]
        proc = editors.popen_in_editors(argv, env=env, binds=[home, tmp_path,
                                                              samples["astronaut"].parent],
                                        log=log, within=gimp.env)
        try:
            deadline = time.monotonic() + 300
            places = _wait(lambda: Path(str(prefix) + ".widgets.json").exists()
                           and json.loads(Path(str(prefix) + ".widgets.json").read_text()),
                           proc, log, deadline, "the dialog")
            first = _wait(lambda: _previews(prefix), proc, log, deadline, "the first preview")
            assert first[-1]["style"] == str(samples["starry_night"]), "the recent painting"
            assert first[-1]["controls"] == {}, "every knob starts at its default"
            time.sleep(1.0)
            shots["first"] = editors.screenshot(display, tmp_path / "first.png",
                                                within=gimp.env)
            with x11_input.XInput(display) as pointer:
                x, y, w, h = places["portrait-strength"]
                pointer.move(x + max(2, round(w * 0.15)), y + h // 2)  # the trough at ~15 %
                pointer.click()
                moved = _wait(lambda: [p for p in _previews(prefix)
                                       if "portrait-strength" in (p["controls"] or {})],
                              proc, log, deadline, "a preview after the knob change")
                strength = moved[-1]["controls"]["portrait-strength"]
                assert strength < 0.5, moved
                time.sleep(1.0)
                shots["knob"] = editors.screenshot(display, tmp_path / "knob.png",
                                                   within=gimp.env)
                seen = len(_previews(prefix))
                x, y, w, h = places["reset"]  # "Reset to defaults": back to the first look
                pointer.move(x + w // 2, y + h // 2)
                pointer.click()
                reset = _wait(lambda: _previews(prefix)[seen:], proc, log, deadline,
                              "a preview after Reset to defaults")
                assert reset[-1]["controls"] == {}, reset
                time.sleep(1.0)
                shots["reset"] = editors.screenshot(display, tmp_path / "reset.png",
                                                    within=gimp.env)
                x, y, w, h = places["portrait-strength"]  # the knob again, for the Apply
                pointer.move(x + max(2, round(w * 0.15)), y + h // 2)
                pointer.click()
                again = _wait(lambda: [p for p in _previews(prefix)[seen + 1:]
                                       if "portrait-strength" in p["controls"]],
                              proc, log, deadline, "the knob's preview again")
                strength = again[-1]["controls"]["portrait-strength"]
                assert strength < 0.5, again
                x, y, w, h = places[f"gallery:{painting.name}"]
                pointer.move(x + w // 2, y + h // 2)
                pointer.click()
                _wait(lambda: [p for p in _previews(prefix)
                               if Path(p["style"]).name == painting.image.name],
                      proc, log, deadline, "a preview of the gallery painting")
                time.sleep(1.0)
                shots["gallery"] = editors.screenshot(display, tmp_path / "gallery.png",
                                                      within=gimp.env)
                x, y, w, h = places["ok"]
                pointer.move(x + w // 2, y + h // 2)
                pointer.click()
            _wait(result.exists, proc, log, deadline, "the result")
        finally:
            editors.kill_tree(proc)
    report = json.loads(result.read_text())
    final = json.loads(Path(str(prefix) + ".final.json").read_text())
    assert report["status"] == "success", report
    assert Path(final["style"]).name == painting.image.name, "the plug-in's bundled copy"
    assert final["controls"]["portrait-strength"] == pytest.approx(strength)

    # the preview pane changed with the knob, then with the painting
    pane = places["preview"]
    first_pane, knob_pane, reset_pane, gallery_pane = (
        _crop(shots[k], pane) for k in ("first", "knob", "reset", "gallery"))
    assert len(np.unique(first_pane.reshape(-1, 3), axis=0)) > 500, "a picture, not a blank"
    assert _mean_diff(knob_pane, first_pane) > 2.0, "the preview followed the knob"
    assert _mean_diff(reset_pane, first_pane) < 1.0, "Reset to defaults: the first look again"
    assert _mean_diff(gallery_pane, knob_pane) > 8.0, "the preview shows the new painting"

    # OK applied exactly what the dialog showed: the gallery painting, the knob as clicked
    def pixels(entry: dict[str, Any]) -> np.ndarray:
        data = np.fromfile(out / entry["file"], np.uint8)
        return data.reshape(entry["height"], entry["width"], entry["channels"])

    photo = pixels(report["photo"])
    assert len(report["groups"]) == 1
    regions = report["records"][0]["params"]["regions"]
    assert regions["portrait"]["strength"] == pytest.approx(strength)
    expected = _daemon_answer(daemon, photo, painting.image, outputs=["composite"],
                              regions={"portrait": {"strength": strength}})["composite"]
    assert _mean_diff(pixels(report["after"]), expected[..., :3]) <= 3.0

    screen = np.asarray(Image.open(shots["gallery"]).convert("RGB"))
    if "dialog" in places:
        x, y, w, h = places["dialog"]
        screen = screen[y:y + h, x:x + w]
    Image.fromarray(screen).save(tmp_path / "gimp-dialog.png", optimize=True)
    if os.environ.get("PORTRAIT_STYLE_UPDATE_DOCS") and gimp.env.gimp == "3.0":
        shutil.copyfile(tmp_path / "gimp-dialog.png", REPO / "docs" / "gimp-dialog.png")


@pytest.mark.editors
@pytest.mark.slow
def test_last_values_saved_before_the_knob_table_still_run(
        gimp: GimpHome, daemon: Daemon, samples: dict[str, Path],  # noqa: F811
        tmp_path: Path) -> None:
    """An artist's last values from the old plug-in (-1: "the daemon's preset") keep
    working: WITH_LAST_VALS runs, the moved knob is kept, the -1 ones read as defaults."""
    profile = gimp.plugin_dir.parents[1]
    settings = profile / "plug-in-settings"
    settings.mkdir(exist_ok=True)
    style = samples["starry_night"]
    (settings / "GimpProcedureConfigRun-plug-in-portrait-style.last").write_text(
        "# settings\n\n"
        f'(style "file://{style}")\n(background-strength 0.5)\n(portrait-strength -1)\n'
        f'(preserve-color no)\n(likeness -1)\n(stroke-size -1)\n(endpoint "{daemon.endpoint}")'
        "\n\n# end of settings\n")
    out = tmp_path / "out"
    out.mkdir()
    params = {"content": str(samples["astronaut"]), "out": str(out),
              "run_mode": "with-last-vals"}
    report, proc = gimp.batch("dialog_controls.py", params,
                              binds=[out, samples["astronaut"].parent])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["status"] == "success", report
    regions = report["records"][0]["params"]["regions"]
    assert regions.get("background", {}).get("strength") == pytest.approx(0.5)
    sent = {(region, knob) for region, values in regions.items() for knob in values}
    assert sent == {("background", "strength")}, regions
