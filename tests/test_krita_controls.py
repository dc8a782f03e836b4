"""The Krita docker's knobs, live preview and gallery, used as an artist would (issue 21).

Real Krita under Xvfb with the installed plug-in and a real daemon (magenta
engine). The probe plug-in (tests/krita_scripts/controls_probe/) reads the
knob widgets, presses "Reset to defaults", clicks a painting in the gallery
grid, turns the live preview on, changes a knob five times in a row, toggles
before/after, and clicks Apply. This file judges what it saw:

- the widgets are the knob table's controls: same names, ranges, steps and
  defaults per region; no "preset" placeholder; Reset brings the defaults back;
- the preview arrives without anything written to the document, changes after
  the knob change (five quick changes ask the daemon at most twice), and Krita's
  event loop is never blocked meanwhile;
- the preview is the applied result scaled down (within a few levels);
- the gallery painting is the one Apply uses and the recent list remembers.

``PORTRAIT_STYLE_UPDATE_SCREENSHOT=1`` refreshes docs/krita-preview.png (from Krita 5.2).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import daemon_harness
import editors
import pytest
from test_krita import (
    PHOTO,
    _enable_in_kritarc,
    _lower_priority,
    _start_krita,
    _wait_for_probe,
    editor_python,
    write_endpoint_config,
)

pytestmark = [pytest.mark.editors, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "krita_scripts" / "controls_probe"
SAMPLES = REPO / "portrait_style" / "samples"
SIZE = 512  # the photo's width in the test's document
PAINTING = "van_gogh_wheatfield_with_crows"  # far enough down the grid to need a scroll
SCREENSHOT = REPO / "docs" / "krita-preview.png"
UPDATE_SCREENSHOT_ENV = "PORTRAIT_STYLE_UPDATE_SCREENSHOT"
#: what a preview may differ from the applied result scaled down (mean levels; issue 21)
FIDELITY_LEVELS = 6.0
#: the most one preview step may hold Krita's GUI thread (ms), and the event loop's lateness
GUI_THREAD_MS = 100
LATENESS_MS = 600


@pytest.fixture(scope="module")
def root(krita_env: editors.EditorEnv) -> Path:
    return krita_env.require()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("daemon")
    with daemon_harness.running(home, "--engine", "magenta") as running:
        _lower_priority(running.proc.pid)
        yield running


@pytest.fixture(scope="module")
def probe(krita_env: editors.EditorEnv, root: Path, daemon: Any,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run the probe in a real Krita window once per Krita; (what it saw, folder of its files).

    Module-scoped, so it activates its Krita's root itself (conftest does it per test).
    """
    with editors.activate(krita_env):
        return _run_probe(krita_env, root, daemon, tmp_path_factory)


def _run_probe(krita_env: editors.EditorEnv, root: Path, daemon: Any,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("krita-controls")
    home = tmp / "home"
    env = editors.isolated_env(home)
    resources = Path(env["XDG_DATA_HOME"]) / "krita"
    kritarc = Path(env["XDG_CONFIG_HOME"]) / "kritarc"
    done = subprocess.run(
        [sys.executable, "-m", "portrait_style", "install-plugin", "krita", "--profile",
         str(resources), "--python", editor_python(root), "--kritarc", str(kritarc)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    package = "portrait_style_controls_probe"
    shutil.copytree(PROBE / package, resources / "pykrita" / package)
    shutil.copy(PROBE / f"{package}.desktop", resources / "pykrita")
    _enable_in_kritarc(kritarc, package)
    (kritarc.parent / "kritadisplayrc").write_text("[General]\nOpenGLRenderer=none\n")
    write_endpoint_config(home, daemon.endpoint)
    env.update(PROBE_PHOTO=str(PHOTO), PROBE_SIZE=str(SIZE), PROBE_PAINTING=PAINTING)
    result = Path(env[editors.RESULT_ENV])
    log = tmp / "krita.log"
    with editors.xvfb_session(log_dir=tmp, size="1440x900x24") as display:
        krita = _start_krita(env, display, [home, SAMPLES], log)
        try:
            seen = _wait_for_probe(result, krita, log, timeout=420, display=display,
                                   shots=tmp)
            (result.parent / "final.done").touch()
            with contextlib.suppress(subprocess.TimeoutExpired):
                krita.wait(timeout=30)
        finally:
            editors.kill_tree(krita)
    assert "error" not in seen, f"{seen.get('error')}\n{seen.get('traceback')}\n" \
        f"{log.read_text(errors='replace')[-3000:]}"
    assert seen["krita"].startswith(f"{krita_env.krita}."), (seen["krita"], krita_env.krita)
    if os.environ.get(UPDATE_SCREENSHOT_ENV) and krita_env is editors.ENVIRONMENTS[0]:
        from PIL import Image

        with Image.open(tmp / "preview.png") as image:
            image.save(SCREENSHOT, optimize=True)
    print(f"Krita {seen.get('krita')}: first preview {seen.get('first_preview_ms')} ms, after "
          f"the knob change {seen.get('second_preview_ms')} ms, worst lateness "
          f"{seen.get('preview_lateness_ms')} ms; shots in {tmp}")
    return seen, result.parent


def _knob_table() -> Any:
    from portrait_style.protocol import knobs

    return knobs


def test_knob_widgets_are_the_knob_tables_controls(probe: tuple[dict[str, Any], Path]) -> None:
    seen, _ = probe
    controls = _knob_table().controls()
    assert list(seen["knobs"]) == [c.name for c in controls], "one widget per control, in order"
    for control in controls:
        widget = seen["knobs"][control.name]
        if control.kind is bool:
            assert widget["kind"] == "bool" and widget["value"] is control.default, control.name
            continue
        assert (widget["low"], widget["high"]) == (control.low, control.high), control.name
        assert widget["step"] == pytest.approx(control.step) and widget["digits"] == \
            control.digits, control.name
        assert widget["value"] == pytest.approx(control.default), (
            f"{control.name} starts at {widget['value']}, its default is {control.default}")
        assert widget["special"] == "" and "preset" not in widget["text"], widget
        # advanced knobs start folded away; the rest are on show
        assert widget["visible"] is not control.advanced, control.name
    assert seen["advanced_folded"]


def test_reset_brings_back_the_defaults(probe: tuple[dict[str, Any], Path]) -> None:
    seen, _ = probe
    defaults = {c.name: c.default for c in _knob_table().controls()}
    assert seen["changed_values"]["portrait-strength"] == 0.25
    assert seen["changed_values"]["preserve-color"] is True
    assert seen["after_reset"] == pytest.approx(defaults)
    assert "reset_knobs" in seen["buttons"]
    assert seen["options_controls"] == pytest.approx(defaults), "Apply sends what is shown"


def test_gallery_painting_picked_by_thumbnail(probe: tuple[dict[str, Any], Path]) -> None:
    from portrait_style.plugin import gallery

    seen, _ = probe
    painting = gallery.find(PAINTING)
    assert seen["gallery_error"] == "" and seen["gallery_count"] == len(gallery.paintings())
    assert Path(seen["picked_path"]).name == painting.image.name
    assert "_core/gallery" in seen["picked_path"], "the plug-in's own copy, no download"
    assert seen["style_label"] == painting.title
    assert painting.title in seen["gallery_tooltip"] and painting.artist in seen["gallery_tooltip"]


def test_live_preview_updates_after_a_knob_change_without_touching_the_image(
        probe: tuple[dict[str, Any], Path]) -> None:
    import numpy as np
    from PIL import Image

    seen, out = probe
    assert seen["tree_while_previewing"] == seen["tree_before"], "nothing written"
    first = np.asarray(Image.open(out / "preview_first_after.png").convert("RGB"), np.int16)
    second = np.asarray(Image.open(out / "preview_second_after.png").convert("RGB"), np.int16)
    before = np.asarray(Image.open(out / "preview_first_before.png").convert("RGB"), np.int16)
    assert max(first.shape[:2]) == 384 and first.shape == second.shape == before.shape
    changed = float(np.abs(first - second).mean())
    styled = float(np.abs(first - before).mean())
    print(f"preview: styled vs photo {styled:.1f} levels; after background-strength 1 → 0 it "
          f"moved {changed:.1f} levels; {seen['requests_for_five_changes']} request(s) for "
          f"five changes; states {seen['preview_states'][-6:]}")
    assert styled > 10, "the preview shows the style, not the photo"
    assert changed > 3, "the preview changed after the knob change"
    assert seen["second_controls"]["background-strength"] == 0.0
    # background strength 0: the background is the photo again
    assert float(np.abs(second - before).mean()) < styled
    assert seen["requests_for_five_changes"] <= 2, "a drag through five values asks once"
    # never freezes Krita: what the docker itself does on the GUI thread (read the layer,
    # hand over the request, show a result) is timed in the plug-in and must be short; the
    # event loop's lateness also counts the daemon's torch threads competing with Krita and
    # Xvfb for the CPU (30–110 ms on an idle 2-core box, up to ~450 ms when 8 test runs
    # share it), so it only catches a real stall
    costs = seen["gui_ms"]
    assert costs and any(what == "fire" for what, _ in costs), costs
    assert max(ms for _, ms in costs) <= GUI_THREAD_MS, costs
    assert seen["preview_lateness_ticks"] >= 50
    assert seen["preview_lateness_ms"] <= LATENESS_MS, "Krita's event loop was blocked"


def test_before_after_split_and_toggle(probe: tuple[dict[str, Any], Path]) -> None:
    import numpy as np
    from PIL import Image

    seen, out = probe
    x, y, w, h = seen["view_target"]
    split = np.asarray(Image.open(out / "view_split.png").convert("RGB"), np.int16)
    only = np.asarray(Image.open(out / "view_before.png").convert("RGB"), np.int16)
    left = (slice(y + h // 4, y + 3 * h // 4), slice(x + 2, x + w // 2 - 4))
    right = (slice(y + h // 4, y + 3 * h // 4), slice(x + w // 2 + 4, x + w - 2))
    # the left half shows "before" in both; the right half differs (after vs before)
    assert float(np.abs(split[left] - only[left]).mean()) < 2
    assert float(np.abs(split[right] - only[right]).mean()) > 5


def test_preview_is_the_applied_result_scaled_down(probe: tuple[dict[str, Any], Path]) -> None:
    import numpy as np
    from PIL import Image

    seen, out = probe
    w, h = seen["doc_size"]
    applied = np.frombuffer((out / "applied.bgra").read_bytes(), np.uint8).reshape(h, w, 4)
    rgb = Image.fromarray(np.ascontiguousarray(applied[..., 2::-1]))
    preview = Image.open(out / "preview_last_after.png").convert("RGB")
    small = np.asarray(rgb.resize(preview.size, Image.BOX), np.int16)
    levels = float(np.abs(small - np.asarray(preview, np.int16)).mean())
    print(f"preview vs applied result scaled down: {levels:.2f} levels")
    assert seen["last_controls"] == seen["second_controls"], "Apply had the preview's knobs"
    assert len(seen["groups"]) == 1 and seen["tree"][-1][1] == "grouplayer"
    assert levels <= FIDELITY_LEVELS


def test_apply_uses_the_gallery_painting_and_remembers_it(
        probe: tuple[dict[str, Any], Path]) -> None:
    seen, _ = probe
    assert seen["groups"] == [seen["tree"][-1][0]]
    assert Path(seen["recent_styles"][0]).name == Path(seen["picked_path"]).name


def test_preview_follows_the_selection(probe: tuple[dict[str, Any], Path]) -> None:
    """A selection on the layer: the preview shows just that part, at the preview's size."""
    seen, _ = probe
    x, y, w, h = seen["selection_rect"]
    pw, ph = seen["preview_selection_size"]
    scale = min(1.0, 384 / max(w, h))  # a preview is never larger than its source
    assert abs(pw - w * scale) <= 1 and abs(ph - h * scale) <= 1, (pw, ph, w, h)
    assert seen["preview_last_size"] == seen["preview_second_size"], "deselected: whole layer"
    assert seen["tree_after_previews"] == seen["tree_before"], "previews write nothing"


def test_endpoint_is_not_in_the_docker(probe: tuple[dict[str, Any], Path]) -> None:
    """The daemon's address is configuration: the status line says ready/device/engine, and
    the endpoint shows only on hover."""
    seen, _ = probe
    assert seen["status_text"].startswith("Daemon: ready") and "magenta" in seen["status_text"]
    assert not any("tcp://" in text or "ipc://" in text for text in seen["labels"]), seen["labels"]
    assert "Daemon endpoint: tcp://127.0.0.1:" in seen["status_tooltip"]
