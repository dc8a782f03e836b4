"""The Krita plug-in, installed by ``portrait-style install-plugin krita``, in real Krita.

Every test that takes the ``root`` fixture runs in Krita 5.2 and in Krita 5.3
(``[krita-5.2]``, ``[krita-5.3]``: the Debian 13 and Debian testing roots of
``.ci/editors-chroot.sh``); Debian 12's own Krita 5.1 runs the headless suite
on the host (``test_host_krita_51_…``).

Headless: one kritarunner session (tests/krita_scripts/headless_suite.py)
runs every scenario against a real daemon (magenta engine) on the bundled
portrait; each test below judges one scenario from the JSON it wrote. The
chroot has no python3-zmq/msgpack, so these runs also prove the installer's
``_wire`` vendoring. The GUI test starts real Krita under Xvfb with the plug-in
enabled and checks its docker and actions (tests/krita_scripts/gui_probe.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import daemon_harness
import editors
import pytest

pytestmark = [pytest.mark.editors, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "krita_scripts"
SAMPLES = REPO / "portrait_style" / "samples"
PHOTO = SAMPLES / "astronaut.jpg"
STYLE = SAMPLES / "starry_night.jpg"
SIZE = 384  # modest, so the whole suite takes seconds on a CPU daemon
PACKAGE = "portrait_style_krita"
#: the GUI test's bound on how late Krita's event loop may run while a job runs (see its use)
GUI_BLOCKED_MS = 500


def editor_python(root: Path) -> str:
    """The X.Y of the Python Krita embeds in the editors' root (what _wire must match)."""
    return editors.environment_at(root).python_version()


def install(profile: Path, python: str) -> subprocess.CompletedProcess[str]:
    """Install the plug-in exactly as a user would (the CLI), into ``profile``."""
    return subprocess.run(
        [sys.executable, "-m", "portrait_style", "install-plugin", "krita",
         "--profile", str(profile / "krita"), "--python", python,
         "--kritarc", str(profile / "kritarc")],
        capture_output=True, text=True, timeout=300, check=False)


def write_endpoint_config(home: Path, endpoint: str) -> None:
    """The plug-in finds the daemon through the config file in Krita's HOME."""
    folder = home / ".config" / "portrait-style"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"endpoint": endpoint}))


@pytest.fixture(scope="module")
def root(krita_env: editors.EditorEnv) -> Path:
    """The root of the Krita under test, once per version (``[krita-5.2]``, ``[krita-5.3]``)."""
    return krita_env.require()


@pytest.fixture(scope="module")
def profile(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    profile = tmp_path_factory.mktemp("krita-profile")
    done = install(profile, editor_python(root))
    assert done.returncode == 0, done.stdout + done.stderr
    package = profile / "krita" / "pykrita" / PACKAGE
    assert (package / "__init__.py").is_file() and (package / "_core" / "plugin").is_dir()
    assert (profile / "krita" / "pykrita" / f"{PACKAGE}.desktop").is_file()
    assert f"enable_{PACKAGE}=true" in (profile / "kritarc").read_text()
    return profile


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("daemon")
    with daemon_harness.running(home, "--engine", "magenta") as running:
        _lower_priority(running.proc.pid)
        yield running


@pytest.fixture(scope="module")
def suite(krita_env: editors.EditorEnv, profile: Path, daemon: Any,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run every headless scenario in one Krita session; (results, folder of dumps)."""
    home = tmp_path_factory.mktemp("krita-home")
    out = home / "out"
    out.mkdir()
    write_endpoint_config(home, daemon.endpoint)
    env = {"KRITA_SUITE_OUT": str(out), "KRITA_SUITE_PHOTO": str(PHOTO),
           "KRITA_SUITE_STYLE": str(STYLE), "KRITA_SUITE_SIZE": str(SIZE),
           "PYTHONPATH": f"{profile / 'krita' / 'pykrita'}:{SCRIPTS}"}
    started = time.monotonic()
    proc = editors.krita_run(SCRIPTS, "headless_suite", "main", home=home, timeout=600,
                             env=env, binds=[profile, SAMPLES], within=krita_env)
    results = editors.load_result(home, proc)
    print(f"headless suite in Krita {results.get('krita')}: {time.monotonic() - started:.1f} s")
    return results, out


def scenario(suite: tuple[dict[str, Any], Path], name: str) -> dict[str, Any]:
    results, _ = suite
    res = results.get(name)
    assert res is not None, f"scenario {name} did not run: {sorted(results)}"
    assert res["ok"], res.get("traceback") or res.get("exception")
    return res


def test_runs_in_the_krita_of_the_test_id(krita_env: editors.EditorEnv,
                                          suite: tuple[dict[str, Any], Path]) -> None:
    assert suite[0]["krita"].startswith(f"{krita_env.krita}."), suite[0]["krita"]


def test_contract_checks_pass_in_krita(suite: tuple[dict[str, Any], Path]) -> None:
    assert scenario(suite, "contract")["failures"] == []


def test_result_group_follows_the_layer_contract(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "main")
    assert res["group_name"] == "Portrait style — Starry Night"
    assert res["group_type"] == "grouplayer"
    assert res["directly_above_source"]
    assert res["children"] == [["Background", "paintlayer"], ["Portrait", "paintlayer"]]
    portrait = next(n for n in res["tree"] if n["name"] == "Portrait")
    assert [(c["name"], c["type"]) for c in portrait["children"]] == [
        ("Person mask", "transparencymask")]
    assert res["source_bounds"] == [0, 0, SIZE, SIZE]
    assert res["layer_bounds"] == {"Portrait": res["source_bounds"],
                                   "Background": res["source_bounds"]}
    record = json.loads(res["record"])
    assert record["style_name"] == "Starry Night" and record["source_name"] == "Photo"
    assert record["engine"] == "magenta"
    assert res["params"]["outputs"] == ["background", "portrait", "mask"]
    stages = [e["stage"] for e in res["events"] if e["state"] == "running"]
    assert len(stages) >= 3 and res["events"][-1]["state"] == "done", res["events"]


def _rgba(bgra: bytes) -> bytes:
    out = bytearray(bgra)
    out[0::4], out[2::4] = bgra[2::4], bgra[0::4]
    return bytes(out)


def test_mask_is_the_daemons_mask_and_portrait_is_uncut(
        suite: tuple[dict[str, Any], Path], daemon: Any) -> None:
    """Ask the daemon directly with the same pixels: Krita's mask is exactly its mask."""
    from PIL import Image

    from portrait_style.protocol.client import DaemonClient
    from portrait_style.protocol.messages import Pixels
    from portrait_style.protocol.request import JobParams

    res = scenario(suite, "main")
    assert res["mask_equals_job_mask"] and res["portrait_equals_job"]
    assert res["source_unchanged"]
    out = suite[1]
    w, h = res["size"]
    source = Pixels.from_buffer(_rgba((out / "main_source.bgra").read_bytes()), (h, w, 4))
    style_image = Image.open(STYLE).convert("RGB")
    style = Pixels.from_buffer(style_image.tobytes(), (style_image.height,
                                                       style_image.width, 3))
    params = JobParams(outputs=("background", "portrait", "mask")).check()
    with DaemonClient(daemon.endpoint, as_arrays=False) as client:
        reply = client.stylize(source, style, params)
    theirs = reply.layers["mask"].tobytes()
    ours = (out / "main_mask.gray").read_bytes()
    assert len(ours) == w * h
    assert ours == theirs
    assert 0 < sum(1 for v in ours if v > 127) < w * h, "a real person mask: some in, some out"
    portrait = (out / "main_portrait.bgra").read_bytes()
    assert set(portrait[3::4]) == {255}, "Portrait is whole-frame opaque, not cut by the mask"


#: what the artist sees may differ from the daemon's composite by this much (mean, 8-bit levels)
SEEN_LEVELS = 1.0


def daemon_composite(daemon: Any, photo: Path, w: int, h: int,
                     mask: bytes | None = None) -> Any:
    """The daemon's own composite for ``photo`` (a B,G,R,A dump; R,G,B,A array), asked directly.

    ``mask``: the artist's edited mask, sent as a re-run sends it.
    """
    import numpy as np
    from PIL import Image

    from portrait_style.protocol.client import DaemonClient
    from portrait_style.protocol.messages import Pixels
    from portrait_style.protocol.request import JobParams

    source = Pixels.from_buffer(_rgba(photo.read_bytes()), (h, w, 4))
    style_image = Image.open(STYLE).convert("RGB")
    style = Pixels.from_buffer(style_image.tobytes(), (style_image.height,
                                                       style_image.width, 3))
    sent = None if mask is None else Pixels.from_buffer(mask, (h, w, 1))
    with DaemonClient(daemon.endpoint, as_arrays=False) as client:
        reply = client.stylize(source, style, JobParams().check(), mask=sent)
    return np.frombuffer(reply.layers["composite"].tobytes(), np.uint8).reshape(h, w, -1)


def seen_levels(bgra: bytes, composite: Any) -> float:
    """Mean level difference between a B,G,R,A dump of what Krita shows and an RGB(A) array."""
    import numpy as np

    seen = np.frombuffer(bgra, np.uint8).reshape(composite.shape[0], composite.shape[1], 4)
    return float(np.abs(seen[..., 2::-1].astype(int) - composite[..., :3].astype(int)).mean())


def test_canvas_shows_the_daemons_composite(suite: tuple[dict[str, Any], Path],
                                            daemon: Any) -> None:
    """What the artist sees (the document's projection once Krita is idle, never refreshed
    by the test) is the daemon's composite: after Apply, after a re-run with an edited mask,
    in the .kra's merged image, and after reopening it — and the group's thumbnail too."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    res = scenario(suite, "main")
    out = suite[1]
    w, h = res["size"]
    applied = daemon_composite(daemon, out / "main_source.bgra", w, h)
    edited = daemon_composite(daemon, out / "main_source.bgra", w, h,
                              (out / "rerun_mask.gray").read_bytes())
    photo = _rgba((out / "main_source.bgra").read_bytes())
    photo_rgb = np.frombuffer(photo, np.uint8).reshape(h, w, 4)
    seen = {"apply": seen_levels((out / "main_shown_apply.bgra").read_bytes(), applied),
            "rerun": seen_levels((out / "main_shown_rerun.bgra").read_bytes(), edited),
            "reopened": seen_levels((out / "reopened_shown.bgra").read_bytes(), edited)}
    with zipfile.ZipFile(out / "main.kra") as kra:
        merged = Image.open(io.BytesIO(kra.read("mergedimage.png"))).convert("RGBA")
    merged_bgra = _rgba(merged.tobytes())  # R,G,B,A → B,G,R,A (the swap is its own inverse)
    seen["kra_merged"] = seen_levels(merged_bgra, edited)
    print(f"seen vs the daemon's composite (levels): {seen}; photo vs composite "
          f"{seen_levels(_rgba(photo), applied):.1f}")
    assert seen_levels(_rgba(photo), applied) > 10 * SEEN_LEVELS, "the style must show"
    assert photo_rgb.shape == applied.shape
    for moment, levels in seen.items():
        assert levels <= SEEN_LEVELS, f"{moment}: the artist sees {levels:.1f} levels off"
    assert res["view_apply"]["diff"] <= SEEN_LEVELS, res["view_apply"]
    assert res["rerun"]["view"]["diff"] <= SEEN_LEVELS, res["rerun"]["view"]
    assert res["reopened"]["view_on_open"]["diff"] <= SEEN_LEVELS
    assert res["reopened"]["view_after_rerun"]["diff"] <= SEEN_LEVELS
    assert res["thumbnail_vs_view"] <= SEEN_LEVELS, "the group's thumbnail shows the result"


def test_rerun_portrait_keeps_the_painted_mask(suite: tuple[dict[str, Any], Path]) -> None:
    rerun = scenario(suite, "main")["rerun"]
    assert rerun["outputs"] == ["portrait"]
    assert rerun["sent_mask_is_edit"], "the request carried the artist's mask"
    assert rerun["mask_kept"]
    assert rerun["portrait_replaced"] and rerun["scribble_gone"]
    assert rerun["background_untouched"], "only Portrait was replaced"
    assert rerun["same_group"] and rerun["background_id_kept"]
    assert rerun["portrait_is_new_node"], "swapped in as a new node, so Ctrl+Z can restore it"
    assert rerun["children"] == [["Background", "paintlayer"], ["Portrait", "paintlayer"]]


def test_kra_save_and_reopen_keeps_group_record_and_mask(
        suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "main")
    assert res["saved"]
    reopened = res["reopened"]
    assert reopened["group_found"] and reopened["is_result"]
    assert reopened["name"] == "Portrait style — Starry Night"
    assert reopened["record_same"] and reopened["mask_same"] and reopened["source_found"]
    assert reopened["children"] == [["Background", "paintlayer"], ["Portrait", "paintlayer"]]
    assert reopened["rerun_background_ok"] and reopened["mask_after_rerun"]


def test_event_loop_never_blocked_over_100ms(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "main")
    print(f"job {res['wall_s'] * 1000:.0f} ms (daemon round trip "
          f"{res['timings']['run_s'] * 1000:.0f} ms, layers {res['timings']['apply_s'] * 1000:.1f}"
          f" ms); worst timer lateness {res['lateness_ms']} ms over {res['ticks']} ticks; "
          f"re-run lateness {res['rerun']['lateness_ms']} ms")
    assert res["ticks"] >= 5, "the timer must have run during the job to measure anything"
    assert res["lateness_ms"] <= 100
    assert res["rerun"]["lateness_ms"] <= 100


def test_moved_smaller_layer_keeps_bounds_and_alpha(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "moved")
    x, y, w, h = res["source_bounds"]
    assert (x, y, w) == (150, 90, 160)
    assert res["layer_bounds"] == {"Portrait": res["source_bounds"],
                                   "Background": res["source_bounds"]}
    assert res["directly_above_source"]
    assert res["alpha_kept"] == {"Portrait": True, "Background": True}
    assert res["source_unchanged"]
    assert res["view"]["diff"] <= SEEN_LEVELS and res["view"]["outside_same"], res["view"]
    assert res["view"]["vs_photo"] > 10 * SEEN_LEVELS, res["view"]
    assert {region: knobs["strength"] for region, knobs in res["params"]["regions"].items()} \
        == {"background": 0.8, "portrait": 0.5}


def test_16bit_document_converted_with_notice(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "u16")
    assert res["depths"] == {"Portrait": "U16", "Background": "U16"}
    assert res["portrait_matches_8bit_result"]
    assert any("16-bit" in n and "8-bit" in n for n in res["notices"]), res["notices"]
    assert res["source_unchanged"] and res["mask_type"] == "transparencymask"
    assert res["view"]["diff"] <= SEEN_LEVELS < res["view"]["vs_photo"], res["view"]


def test_grey_cmyk_and_float_documents_are_served_in_srgb(
        suite: tuple[dict[str, Any], Path]) -> None:
    """Other colour models are read through Krita's own conversion, not refused."""
    res = scenario(suite, "other_models")
    spaces = {k: v for k, v in res.items() if "/" in k}
    assert set(spaces) == {"GRAYA/U8", "CMYKA/U8", "RGBA/F32"}, res
    for space, entry in spaces.items():
        assert entry["error"] is None, (space, entry.get("traceback"))
        assert entry["source_space"] == space.split("/")
        assert entry["layers_added"] == 1 and entry["directly_above_source"], space
        assert entry["spaces"] == {"Portrait": ["RGBA", "U8"], "Background": ["RGBA", "U8"]}
        assert entry["portrait_is_the_result"] and entry["mask_type"] == "transparencymask"
        assert entry["rerun_spaces"] == entry["spaces"] and entry["rerun_mask_kept"], space
        assert any("read as 8-bit sRGB" in n for n in entry["notices"]), entry["notices"]
        assert entry["source_unchanged"], f"{space}: the photo was modified"
        assert 40 < entry["sent_mean"] < 215, f"{space}: the photo arrived blank or clipped"
        for moment in ("view", "view_rerun"):  # what the canvas shows, through Krita's sRGB
            assert entry[moment]["diff"] <= SEEN_LEVELS < entry[moment]["vs_photo"], (
                space, moment, entry[moment])
    assert res["GRAYA/U8"]["sent_grey"], "a grey photo arrives as R = G = B"
    assert not res["CMYKA/U8"]["sent_grey"], "a CMYK photo keeps its colour"
    # scratch documents are closed: only the test's own document is open each time
    assert {e["documents_left"] for e in spaces.values()} == {1}


def test_daemon_errors_in_plain_words(suite: tuple[dict[str, Any], Path]) -> None:
    """No daemon on a local endpoint: the plug-in tries to start one, and says why it cannot."""
    res = scenario(suite, "unreachable")
    assert res["error"].startswith("The portrait-style daemon could not start"), res["error"]
    assert "installer" in res["error"] and "Traceback" not in res["error"]
    assert res["layers_added"] == 0 and res["view_unchanged"]
    assert res["seconds"] < 10


def test_cancel_leaves_the_document_unchanged(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "cancel")
    assert res["error_type"] == "PortraitStyleError" and res["error"] == "cancelled"
    assert res["final_state"] == "cancelled"
    assert "running" in res["states"] and "done" not in res["states"], res["states"]
    assert res["layers_added"] == 0 and res["view_unchanged"]


def test_damaged_painting_refused_in_words(suite: tuple[dict[str, Any], Path]) -> None:
    """A painting that decodes only partly: the scripting API refuses it, naming the file;
    nothing is added and the canvas still shows the photo (the docker: the GUI test)."""
    res = scenario(suite, "damaged_style")
    for name in ("cut_painting.jpg", "corrupt_painting.png"):
        entry = res[name]
        assert entry["error_type"] == "PortraitStyleError", entry
        assert name in entry["error"] and "damaged" in entry["error"], entry["error"]
        assert "Traceback" not in entry["error"]
        assert entry["layers_added"] == 0 and entry["view_unchanged"], entry
    assert "30,000 bytes" in res["cut_painting.jpg"]["error"]
    assert res["whole_painting.png"]["error"] is None, res["whole_painting.png"]


def test_apply_inside_a_result_group_restyles_its_photo(
        suite: tuple[dict[str, Any], Path]) -> None:
    """The core's one rule, in Krita: a layer inside a result group stands for the group's
    photo; the new group lands directly above the earlier one, visible, shown on the canvas;
    with the photo gone, refused in words and nothing changes."""
    res = scenario(suite, "inside_group")
    assert res["made_from_photo"], "restyled the photo, not the styled layer"
    assert res["second_above_first"] and res["second_visible"], res["top_level"]
    assert res["nested"] == ["paintlayer", "paintlayer"], "no group nested in the group"
    assert [t for _, t in res["top_level"]].count("grouplayer") == 2, res["top_level"]
    assert res["view"]["diff"] <= SEEN_LEVELS < res["view"]["vs_photo"], res["view"]
    assert res["orphan_error_type"] == "PortraitStyleError", res
    assert "Photo" in res["orphan_error"] and "gone" in res["orphan_error"], res["orphan_error"]
    assert res["orphan_layers_added"] == 0 and res["orphan_view_unchanged"]


def test_daemon_line_tells_a_dead_daemon_within_seconds(
        suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "status")
    assert res["alive"].startswith("Daemon: ") and "magenta" in res["alive"], res["alive"]
    assert "not running" in res["dead"] and "127.0.0.1:9" in res["dead"], res["dead"]
    assert res["dead_seconds"] + res["every_s"] <= 5, "the docker asks every few seconds"


def test_mask_from_selection_and_back(suite: tuple[dict[str, Any], Path]) -> None:
    res = scenario(suite, "selection")
    assert res["mask_sum"] == 200
    assert res["mask_from_selection"] and res["selection_from_mask"]
    for moment in ("view_added", "view_mask_from_selection"):
        assert res[moment]["diff"] <= SEEN_LEVELS < res[moment]["vs_photo"], res[moment]


def test_missing_wire_libraries_reported_not_fatal(profile: Path, tmp_path: Path) -> None:
    """Without _wire (and no pyzmq in the chroot) the plug-in still loads and explains."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(profile / "krita", broken / "krita")
    shutil.rmtree(broken / "krita" / "pykrita" / PACKAGE / "_wire")
    home = tmp_path / "home"
    env = {"KRITA_SUITE_ONLY": "nowire", "KRITA_SUITE_STYLE": str(STYLE),
           "PYTHONPATH": f"{broken / 'krita' / 'pykrita'}:{SCRIPTS}"}
    proc = editors.krita_run(SCRIPTS, "headless_suite", "main", home=home, timeout=300,
                             env=env, binds=[broken, SAMPLES])
    res = scenario((editors.load_result(home, proc), home), "nowire")
    assert res["registered_import_ok"]
    assert res["error_type"] == "CoreUnavailable", res
    assert "msgpack" in res["error"] and "install-plugin" in res["error"], res["error"]
    assert res["status_line"].startswith("Daemon: unavailable"), res["status_line"]
    assert "install-plugin" in res["status_line"]


def test_plugin_never_imports_torch_numpy_or_pillow() -> None:
    """Source check: the editor side stays importable in any Krita Python."""
    banned = ("torch", "numpy", "PIL")
    qt_users = set()
    for path in (REPO / "plugin" / "krita" / PACKAGE).rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                top = words[1].split(".")[0]
                assert top not in banned, f"{path.name}: {line.strip()}"
                if top.startswith("PyQt") and path.name != "qt.py":
                    qt_users.add(path.name)
    assert not qt_users, f"Qt imported outside qt.py: {sorted(qt_users)}"


# ----------------------------------------------------------------- the host's Krita 5.1

HOST_KRITARUNNER = Path("/usr/bin/kritarunner")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_host_krita_51_with_daemon_started_on_demand(tmp_path: Path) -> None:
    """Debian 12's own Krita 5.1, where installed: the same suite, and the plug-in starts
    the daemon itself from the config's command (no daemon runs beforehand).

    5.1 has no ``createTransparencyMask``; the plug-in's workaround (masks51.py)
    must give the same layers, masks and .kra round trip as 5.2.
    """
    import signal

    from portrait_style.plugin.launcher import probe

    if not HOST_KRITARUNNER.exists():
        reason = "no Krita on this host (apt-get install krita python3-pyqt5)"
        if os.environ.get("CI"):  # .ci/editors-chroot.sh installs it on Debian 12
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    profile = tmp_path / "profile"
    done = install(profile, "/usr/bin/python3")
    assert done.returncode == 0, done.stdout + done.stderr
    home = tmp_path / "home"
    env = editors.isolated_env(home)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    assert probe(endpoint, timeout_s=0.5) is None, "nothing may answer before the job"
    folder = Path(env["XDG_CONFIG_HOME"]) / "portrait-style"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "endpoint": endpoint, "engine": "magenta",
        "daemon_command": [sys.executable, "-m", "portrait_style", "serve"]}))
    out = home / "out"
    out.mkdir()
    env.update(QT_QPA_PLATFORM="offscreen", KRITA_SUITE_OUT=str(out),
               KRITA_SUITE_PHOTO=str(PHOTO), KRITA_SUITE_STYLE=str(STYLE),
               KRITA_SUITE_SIZE=str(SIZE), PATH="/usr/bin:/bin",
               # not "unreachable": with a daemon command configured it would start one
               KRITA_SUITE_ONLY="contract,main,moved,u16,other_models,selection,cancel,"
               "damaged_style,inside_group",
               PYTHONPATH=f"{profile / 'krita' / 'pykrita'}:{SCRIPTS}",
               PORTRAIT_STYLE_WEIGHTS_CACHE=os.environ["PORTRAIT_STYLE_WEIGHTS_CACHE"])
    (home / editors.RESULT_NAME).unlink(missing_ok=True)
    hello = None
    try:
        proc = subprocess.run([str(HOST_KRITARUNNER), "-s", "headless_suite", "-f", "main"],
                              env=env, cwd=home, capture_output=True, text=True, timeout=600,
                              check=False)
        results = editors.load_result(home, proc)
        hello = probe(endpoint, timeout_s=2.0)
    finally:
        hello = hello or probe(endpoint, timeout_s=2.0)
        if hello and hello.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(hello["pid"]), signal.SIGTERM)
    assert results["krita"].startswith("5.1"), results["krita"]
    main = scenario((results, out), "main")
    assert hello is not None and main["daemon_pid"] == hello["pid"], "the plug-in started it"
    assert scenario((results, out), "contract")["failures"] == []
    assert main["mask_type"] == "transparencymask" and main["mask_equals_job_mask"]
    assert main["portrait_equals_job"] and main["source_unchanged"]
    assert all(main["rerun"][k] for k in ("sent_mask_is_edit", "mask_kept",
                                          "background_untouched", "portrait_replaced"))
    reopened = main["reopened"]
    assert reopened["record_same"] and reopened["mask_same"] and reopened["rerun_background_ok"]
    assert scenario((results, out), "moved")["alpha_kept"] == {"Portrait": True,
                                                               "Background": True}
    assert scenario((results, out), "selection")["mask_from_selection"]
    assert scenario((results, out), "u16")["portrait_matches_8bit_result"]
    assert scenario((results, out), "cancel")["layers_added"] == 0
    # what the artist sees, in 5.1 as in 5.2: every Apply and re-run shows on the canvas
    views = {"apply": main["view_apply"], "rerun": main["rerun"]["view"],
             "reopened": main["reopened"]["view_on_open"],
             "reopened_rerun": main["reopened"]["view_after_rerun"],
             "moved": scenario((results, out), "moved")["view"],
             "u16": scenario((results, out), "u16")["view"],
             "selection": scenario((results, out), "selection")["view_added"]}
    for space, entry in scenario((results, out), "other_models").items():
        if "/" in space:
            views[space] = entry.get("view", {"diff": None, "error": entry.get("error")})
    print("Krita 5.1, seen vs composed:", {k: v.get("diff") for k, v in views.items()})
    for moment, view in views.items():
        assert view["diff"] is not None and view["diff"] <= SEEN_LEVELS < view["vs_photo"], (
            moment, view)
    assert main["thumbnail_vs_view"] <= SEEN_LEVELS
    assert scenario((results, out), "cancel")["view_unchanged"]
    test_damaged_painting_refused_in_words((results, out))
    test_apply_inside_a_result_group_restyles_its_photo((results, out))


# ------------------------------------------------------------------- PyQt6 (Krita 6)

#: a root with Debian's python3-pyqt6 (the forky root of .ci/editors-chroot.sh)
PYQT6_ROOT_FILE = Path("/var/tmp/portrait-style-editors/ROOT.forky")


def _pyqt6_root() -> Path | None:
    value = os.environ.get("PORTRAIT_STYLE_PYQT6_ROOT", "").strip()
    if not value and PYQT6_ROOT_FILE.is_file():
        value = PYQT6_ROOT_FILE.read_text().strip()
    root = Path(value) if value else None
    if root is None or not any((root / "usr/lib/python3/dist-packages/PyQt6").glob("QtWidgets*")):
        return None
    return root


def _run_in_root(root: Path, argv: list[str], env: dict[str, str], binds: list[Path],
                 timeout: float) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``root`` the way tests/editors.py enters the editors' root (private
    mount and PID namespace, binds at the same path), for a root other than the default."""
    paths = editors._bind_paths(binds)
    command = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation",
               "private", "--", "/bin/sh", "-c", editors._ENTER_CHROOT, "sh", str(root),
               str(len(paths)), *paths, "/usr/bin/env", "-i",
               *[f"{k}={v}" for k, v in editors._clean_env(env).items()], *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_docker_under_pyqt6_as_in_krita_6(tmp_path: Path) -> None:
    """Krita 6 embeds PyQt6 and refuses PyQt5: the plug-in's real docker, controller, event
    loop and painting decoding run under Debian's PyQt6 (Python 3.14), offscreen.

    Real: every module of the installed plug-in, PyQt6/Qt 6, the paintings. A stand-in:
    only the ``krita`` module (no Krita 6 package exists) — see krita_scripts/pyqt6_docker.py.
    """
    from PIL import Image

    root = _pyqt6_root()
    if root is None or os.geteuid() != 0:
        reason = ("no root with Debian's python3-pyqt6 (the forky root of "
                  "`bash .ci/editors-chroot.sh`), or not root to enter it")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    probe = _run_in_root(root, ["python3", "-c", "import sys; print('%d.%d' % "
                                "sys.version_info[:2])"], {}, [], 60)
    assert probe.returncode == 0, probe.stderr
    python = probe.stdout.strip().splitlines()[-1]
    profile = tmp_path / "profile"
    done = install(profile, python)
    assert done.returncode == 0, done.stdout + done.stderr
    home = tmp_path / "home"
    env = editors.isolated_env(home)
    env.update(QT_QPA_PLATFORM="offscreen", PYQT6_OUT=str(home), PYQT6_STYLE=str(STYLE),
               PYTHONPATH=str(profile / "krita" / "pykrita"))
    proc = _run_in_root(root, ["python3", str(SCRIPTS / "pyqt6_docker.py")], env,
                        [home, profile, SCRIPTS, SAMPLES], 300)
    res = editors.load_result(home, proc)
    assert res["ok"], res.get("traceback")
    print(f"PyQt6 {res['pyqt']} / Qt {res['qt']} / Python {res['python']}: docker built")
    assert res["qt_major"] == 6, "qt.py must take its PyQt6 branch when PyQt5 is refused"
    assert res["registered"] is False, "no Krita: nothing registered, nothing raised"
    assert set(res["buttons"]) >= {"apply", "cancel", "choose_style", "rerun_portrait",
                                   "rerun_background", "mask_from_selection",
                                   "selection_from_mask"}
    assert res["style_label"] == "Starry Night" and max(res["thumbnail"]) == 48
    assert res["chooser_folder"] == str(STYLE.parent)
    assert res["progress_text"] == "painting… 40 %"
    assert res["message_area_fixed"] and res["message_wraps"] and res["apply_still"]
    said = res["apply_without_document"]
    assert [level for level, _ in said] == ["error"] and "open an image" in said[0][1].lower()
    assert res["event_loop_turns"]
    with Image.open(STYLE) as style:
        assert res["style_shape"][:2] == [style.height, style.width]
    for name in ("cut_painting.jpg", "corrupt_painting.png"):
        assert res[name] and name in res[name] and "damaged" in res[name], res[name]
    shot = home / "docker-pyqt6.png"
    with Image.open(shot) as image:
        assert image.width > 200 and image.height > 400, image.size


# ------------------------------------------------------------------------------- GUI

PROBE = SCRIPTS / "gui_probe"
PROBE_SIZE = 512  # the photo's width in the GUI test's document
SCREENSHOT = REPO / "docs" / "krita-docker.png"
#: set to 1 to refresh the README's screenshot from this run
UPDATE_SCREENSHOT_ENV = "PORTRAIT_STYLE_UPDATE_SCREENSHOT"


def _enable_in_kritarc(kritarc: Path, package: str) -> None:
    """Add ``enable_<package>=true`` under [python] (kritarc is edited as text)."""
    lines = kritarc.read_text().splitlines()
    index = lines.index("[python]")
    lines.insert(index + 1, f"enable_{package}=true")
    kritarc.write_text("\n".join(lines) + "\n")


def _wait_for_probe(path: Path, krita: subprocess.Popen[bytes], log: Path,
                    timeout: float, display: str | None = None,
                    shots: Path | None = None) -> dict[str, Any]:
    """Until the probe is ready; meanwhile take each screenshot it asks for.

    The probe names a shot in ``shot_request`` and waits for ``<name>.done``
    beside its result file; the shot is saved as ``shots/<name>.png``.
    """
    deadline = time.monotonic() + timeout
    taken: set[str] = set()
    while time.monotonic() < deadline:
        assert krita.poll() is None, f"krita exited early:\n{log.read_text(errors='replace')}"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("phase") == "ready":
            return data
        name = data.get("shot_request")
        if name and name not in taken and display is not None and shots is not None:
            time.sleep(1.5)  # let the canvas and the layer panel repaint
            editors.screenshot(display, shots / f"{name}.png")
            (path.parent / f"{name}.done").touch()
            taken.add(name)
            continue
        time.sleep(0.5)
    pytest.fail(f"the probe never got ready: {path.read_text() if path.exists() else ''}\n"
                f"{log.read_text(errors='replace')[-3000:]}")


def _start_krita(env: dict[str, str], display: str, binds: list[Path],
                 log: Path) -> subprocess.Popen[bytes]:
    """Start Krita on ``display`` once the X server answers."""
    _wait_for_x(display)
    return editors.popen_in_editors(["krita", "--nosplash"], env={**env, "DISPLAY": display},
                                    binds=binds, log=log)


def _wait_for_x(display: str, timeout: float = 20.0) -> None:
    """Until an X client gets an answer from ``display`` (xwd of the root window)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = editors.run_in_editors(["xwd", "-root", "-silent", "-display", display,
                                        "-out", "/dev/null"], env={}, binds=[], timeout=30)
        if probe.returncode == 0:
            return
        time.sleep(0.5)


def _lower_priority(pid: int, niceness: int = 10) -> None:
    """Renice every thread of the daemon (threads it starts later inherit it).

    The daemon is batch work beside an interactive editor: on a small shared
    CI machine its torch threads otherwise starve Krita's GUI thread and the
    X server, and the lateness test would measure the machine, not the plug-in.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


def test_gui_docker_actions_apply_and_rerun(root: Path, daemon: Any, tmp_path: Path) -> None:
    """Real Krita under Xvfb: the docker and actions exist; Apply and Re-run by click."""
    import shutil

    home = tmp_path / "home"
    env = editors.isolated_env(home)
    resources = Path(env["XDG_DATA_HOME"]) / "krita"  # Krita's default resource folder
    kritarc = Path(env["XDG_CONFIG_HOME"]) / "kritarc"
    done = subprocess.run(
        [sys.executable, "-m", "portrait_style", "install-plugin", "krita", "--profile",
         str(resources), "--python", editor_python(root), "--kritarc", str(kritarc)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.copytree(PROBE / "portrait_style_probe", resources / "pykrita" / "portrait_style_probe")
    shutil.copy(PROBE / "portrait_style_probe.desktop", resources / "pykrita")
    _enable_in_kritarc(kritarc, "portrait_style_probe")
    # Xvfb has no GPU: Krita's OpenGL canvas would run on llvmpipe, whose render threads
    # compete with everything else on a small CI machine; the QPainter canvas is cheap
    (kritarc.parent / "kritadisplayrc").write_text("[General]\nOpenGLRenderer=none\n")
    write_endpoint_config(home, daemon.endpoint)
    shot_done = home / "shot.done"
    env.update(PROBE_PHOTO=str(PHOTO), PROBE_STYLE=str(STYLE), PROBE_SIZE=str(PROBE_SIZE),
               PROBE_SHOT_DONE=str(shot_done))
    log = tmp_path / "krita.log"
    shot = tmp_path / "krita-docker.png"
    with editors.xvfb_session(log_dir=tmp_path, size="1440x900x24") as display:
        krita = _start_krita(env, display, [home, SAMPLES], log)
        try:
            probe = _wait_for_probe(Path(env[editors.RESULT_ENV]), krita, log, timeout=300,
                                    display=display, shots=tmp_path)
            time.sleep(1.5)  # let the canvas and the layer panel repaint
            editors.screenshot(display, shot)
            shot_done.touch()
            with contextlib.suppress(subprocess.TimeoutExpired):
                krita.wait(timeout=60)  # the probe checks a CMYK Apply, then quits Krita
        finally:
            editors.kill_tree(krita)
    after_shot = json.loads(Path(env[editors.RESULT_ENV]).read_text())
    if os.environ.get(UPDATE_SCREENSHOT_ENV):
        from PIL import Image

        with Image.open(shot) as image:  # re-encoded: a fraction of the size of the raw dump
            image.save(SCREENSHOT, optimize=True)
    print(f"GUI: Apply {probe.get('apply_s', 0):.1f} s, re-run {probe.get('rerun_s', 0):.1f} s, "
          f"worst lateness {probe.get('lateness_ms')} ms over {probe.get('lateness_ticks')} "
          f"ticks (idle baseline {probe.get('baseline_lateness_ms')} ms); "
          f"stages {probe.get('stages')}")
    assert "error" not in probe, probe.get("traceback")
    assert probe["krita"].startswith(f"{editors.active().krita}.")
    assert all(probe["actions"].values()), probe["actions"]
    assert probe["docker_found"] and probe["docker_title"] == "Portrait Style"
    assert set(probe["buttons"]) >= {"apply", "cancel", "choose_style", "rerun_portrait",
                                     "rerun_background", "mask_from_selection",
                                     "selection_from_mask"}
    assert probe["style_label"] == "Starry Night"
    assert probe["thumbnail_size"] and max(probe["thumbnail_size"]) == 48
    assert probe["recent_styles"] == [str(STYLE)], "Apply remembers the painting"
    assert probe["cancel_enabled_while_busy"] and probe["apply_enabled_after_cancel"]
    assert probe["cancel_message"] == "Cancelled: the image is unchanged."
    damaged = probe["damaged"]  # a painting cut short, picked in the docker
    assert not damaged["started"] and damaged["tree_same"], damaged
    assert "cut_painting.jpg" in damaged["label"] and "damaged" in damaged["label"], damaged
    assert not damaged["apply_moved"], "Apply moved when the message appeared"
    assert damaged["wraps_inside"], "the message must wrap inside the docker"
    assert probe["chooser_folder"] != "/", "the painting chooser opens at the last folder"
    assert Path(probe["chooser_folder"]) == STYLE.parent, probe["chooser_folder"]
    assert probe["tree_after_cancel_same"]
    assert probe["groups"] == ["Portrait style — Starry Night"]
    assert probe["tree"][-1] == ["Portrait style — Starry Night", "grouplayer"]
    assert probe["tree_after_undo"] == probe["tree"][:-1], "Apply is one undo step"
    assert probe["tree_after_redo"] == probe["tree"]
    assert probe["rerun_changed_portrait"]
    # the re-run is Add Layer + Remove Layer in Krita's history, nothing else (a carried-over
    # blend mode used to add a "Composition Mode Change" step, in either order)
    assert probe["history"][-3:] == ["Add Layer", "Add Layer", "Remove Layer"], probe["history"]
    # in a CMYK document (read through a scratch document's conversion) Apply is one step too
    assert after_shot.get("cmyk_history_added") == ["Add Layer"], (
        after_shot.get("cmyk_history_added"), after_shot.get("error"))
    # Ctrl+Z brings the old Portrait back; the probe presses it the moment the result lands,
    # and Krita now and then ignores that first press, hence the one spare
    assert probe["rerun_undo_restores"] and probe["rerun_undo_steps"] <= 3, {
        k: v for k, v in probe.items() if "undo" in k or k in ("krita", "history")}
    assert probe["rerun_undo_children"] == ["Background", "Portrait"]
    assert probe["rerun_redo_restores"]
    assert all(probe["group_tools_enabled"].values())
    assert probe["rerun_groups"] == ["Portrait style — Starry Night"]
    # progress in words, never the daemon's stage ids ("transform — 40%")
    words = " | ".join(probe["stages"])
    assert "finding the person…" in words and "painting…" in words, probe["stages"]
    assert not {"segment", "transform", "encode_reply"} & {
        part.split("…")[0].split(" — ")[0] for part in probe["stages"]}, probe["stages"]
    import re

    assert any(re.fullmatch(r"painting… \d+ %", t) for t in probe["bar_texts"]), (
        probe["bar_texts"])
    assert probe["status_line"].startswith("Daemon: ") and "magenta" in probe["status_line"]
    assert probe["lateness_ticks"] >= 20
    # A job done on Krita's GUI thread would freeze it for seconds; under Xvfb the daemon's
    # painting shares the 2 cores with Krita, and the scheduler alone has delayed a 10 ms
    # timer by up to ~340 ms here (CI, 2026-12-03), with the plug-in's own steps at a few ms
    assert probe["lateness_ms"] <= GUI_BLOCKED_MS, "the canvas was blocked during a job"
    assert shot.stat().st_size > 10_000
    _assert_gui_shows_the_result(daemon, home, tmp_path, probe)


def _canvas_crop(png: Path, rect: list[int]) -> Any:
    import numpy as np
    from PIL import Image

    x, y, w, h = rect
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"), np.int16)[y:y + h, x:x + w]


def _assert_gui_shows_the_result(daemon: Any, home: Path, shots: Path,
                                 probe: dict[str, Any]) -> None:
    """In the real window: the pixels Krita shows and the screen itself show the result.

    Pixels: after Apply and after Redo the projection is the daemon's composite,
    after one Undo it is the photo again, after a re-run with a painted mask it
    is the daemon's composite through that mask. Screen: the canvas region of a
    screenshot changes at Apply, and where it changed it looks like the composite.
    """
    import numpy as np
    from PIL import Image

    photo = home / "gui_photo.bgra"
    size = len(photo.read_bytes()) // 4
    w = PROBE_SIZE
    h = size // w
    applied = daemon_composite(daemon, photo, w, h)
    edited = daemon_composite(daemon, photo, w, h, (home / "gui_mask.gray").read_bytes())
    photo_rgb = np.frombuffer(_rgba(photo.read_bytes()), np.uint8).reshape(h, w, 4)
    seen = {"apply": seen_levels((home / "gui_apply.bgra").read_bytes(), applied),
            "undo": seen_levels((home / "gui_undo.bgra").read_bytes(), photo_rgb),
            "redo": seen_levels((home / "gui_redo.bgra").read_bytes(), applied),
            "rerun": seen_levels((home / "gui_rerun.bgra").read_bytes(), edited)}
    print(f"GUI: seen vs expected (levels) {seen}; group thumbnail vs canvas "
          f"{probe['group_thumbnail']:.2f}")
    assert seen_levels(photo.read_bytes(), applied) > 10 * SEEN_LEVELS
    for moment, levels in seen.items():
        assert levels <= SEEN_LEVELS, f"{moment}: the artist sees {levels:.1f} levels off"
    assert probe["group_thumbnail"] <= SEEN_LEVELS, "the group's thumbnail shows the result"

    # the screen: the canvas region before and after Apply
    rect = probe["canvas_rect"]
    assert rect and rect[2] > 100 and rect[3] > 100, rect
    before = _canvas_crop(shots / "before_apply.png", rect)
    after = _canvas_crop(shots / "after_apply.png", rect)
    changed = np.abs(after - before).sum(axis=2) > 24
    assert changed.mean() > 0.05, f"the canvas barely changed at Apply ({changed.mean():.3f})"
    rows, cols = np.nonzero(changed)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    region = after[top:bottom, left:right]
    scaled = np.asarray(Image.fromarray(applied[..., :3]).resize(
        (right - left, bottom - top), Image.BILINEAR), np.int16)
    old = np.asarray(Image.fromarray(photo_rgb[..., :3]).resize(
        (right - left, bottom - top), Image.BILINEAR), np.int16)
    to_result = float(np.abs(region - scaled).mean())
    to_photo = float(np.abs(region - old).mean())
    print(f"GUI screen: changed region {right - left}×{bottom - top} px of the canvas "
          f"{rect[2]}×{rect[3]}; its mean distance to the composite {to_result:.1f}, to the "
          f"photo {to_photo:.1f} levels")
    assert to_result < 12 and to_result < to_photo / 2, (to_result, to_photo)
