"""Smoke tests for the editors' test environments (tests/editors.py).

They prove, in every environment CI installs (GIMP 3.0 + Krita 5.2 in trixie,
GIMP 3.2 + Krita 5.3 in forky), what other tests rely on: GIMP batch mode and
kritarunner run Python 3 code in the version the test id names, GIMP reads
plug-ins from the profile folder the tests install into, the wire libraries are
absent (the plug-ins must bring their own), host folders and Unix sockets are
shared at the same path, and Krita's GUI draws under Xvfb.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import editors
import pytest

GIMP_CODE = """
import json, os
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp
image = Gimp.Image.new(64, 48, Gimp.ImageBaseType.RGB)
layer = Gimp.Layer.new(image, "smoke", 64, 48, Gimp.ImageType.RGBA_IMAGE, 100.0,
                       Gimp.LayerMode.NORMAL)
image.insert_layer(layer, None, 0)
result = {"width": image.get_width(), "height": image.get_height(),
          "layers": [l.get_name() for l in image.get_layers()],
          "version": Gimp.version()}
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump(result, out)
image.delete()
"""

KRITA_MODULE = """
import json, os
from krita import Krita

def main(*args):
    doc = Krita.instance().createDocument(40, 30, "smoke", "RGBA", "U8", "", 72.0)
    root = doc.rootNode()
    result = {"width": doc.width(), "height": doc.height(),
              "layers": [node.name() for node in root.childNodes()],
              "version": Krita.instance().version()}
    doc.close()
    with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
        json.dump(result, out)
"""

PLUGIN_NAME = "ps-env-probe"
#: a minimal GIMP 3 plug-in; registering proves GIMP read the folder it sits in
PROBE_PLUGIN = """#!/usr/bin/env python3
import sys
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp


class Probe(Gimp.PlugIn):
    def do_query_procedures(self):
        return ["plug-in-ps-env-probe"]

    def do_create_procedure(self, name):
        proc = Gimp.Procedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_documentation("env probe", "env probe", name)
        return proc

    def run(self, procedure, config, data):
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)


Gimp.main(Probe.__gtype__, sys.argv)
"""

LOOKUP_CODE = """
import json, os
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp
found = Gimp.get_pdb().lookup_procedure("plug-in-ps-env-probe") is not None
with open(os.environ["PORTRAIT_STYLE_RESULT"], "w") as out:
    json.dump({"found": found}, out)
"""


def test_ci_installs_every_editor_version() -> None:
    """The versions artists run and CI proves; each editor test runs in each."""
    assert [e.gimp_id for e in editors.ENVIRONMENTS] == ["gimp-3.0", "gimp-3.2"]
    assert [e.krita_id for e in editors.ENVIRONMENTS] == ["krita-5.2", "krita-5.3"]
    assert editors.FORKY.gimp_profile(Path("/h")) == Path("/h/.config/GIMP/3.2")


def test_a_missing_environment_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = editors.EditorEnv("nowhere", gimp="3.9", krita="5.9",
                               gimp_consoles=("gimp-console-3.9",))
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set but the nowhere editors"):
        absent.require()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="editors-chroot.sh nowhere"):
        absent.require()


@pytest.mark.editors
@pytest.mark.slow
def test_gimp_batch_creates_image(gimp_env: editors.EditorEnv, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = editors.gimp_batch(GIMP_CODE, home=tmp_path / "home", timeout=120)
    result = editors.load_result(tmp_path / "home", proc)
    assert proc.returncode == 0, proc.stderr
    assert (result["width"], result["height"]) == (64, 48)
    assert result["layers"] == ["smoke"]
    assert result["version"].startswith(f"{gimp_env.gimp}."), result
    print(f"GIMP {result['version']} batch run: {time.monotonic() - started:.1f} s")


@pytest.mark.editors
@pytest.mark.slow
def test_gimp_batch_reports_python_errors(gimp_env: editors.EditorEnv, tmp_path: Path) -> None:
    proc = editors.gimp_batch("raise RuntimeError('boom')", home=tmp_path / "home", timeout=120)
    assert proc.returncode != 0


@pytest.mark.editors
@pytest.mark.slow
def test_gimp_reads_plugins_from_its_version_profile(gimp_env: editors.EditorEnv,
                                                     tmp_path: Path) -> None:
    """The folder the editor tests install the plug-in into is the one this GIMP reads."""
    home = tmp_path / "home"
    folder = gimp_env.gimp_profile(home) / "plug-ins" / PLUGIN_NAME
    folder.mkdir(parents=True)
    (folder / f"{PLUGIN_NAME}.py").write_text(PROBE_PLUGIN)
    (folder / f"{PLUGIN_NAME}.py").chmod(0o755)
    proc = editors.gimp_batch(LOOKUP_CODE, home=home, timeout=120)
    assert editors.load_result(home, proc) == {"found": True}, proc.stderr[-2000:]


@pytest.mark.editors
@pytest.mark.slow
def test_kritarunner_creates_document(krita_env: editors.EditorEnv, tmp_path: Path) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "smoke_krita.py").write_text(KRITA_MODULE)
    started = time.monotonic()
    proc = editors.krita_run(module_dir, "smoke_krita", "main", home=tmp_path / "home", timeout=180)
    result = editors.load_result(tmp_path / "home", proc)
    assert (result["width"], result["height"]) == (40, 30)
    assert result["version"].startswith(f"{krita_env.krita}."), result
    print(f"Krita {result['version']} kritarunner: {time.monotonic() - started:.1f} s")


@pytest.mark.editors
@pytest.mark.slow
@pytest.mark.parametrize("module", ["zmq", "msgpack"])
def test_wire_libraries_are_absent(editor_env: editors.EditorEnv, module: str) -> None:
    """The plug-ins' installer must vendor these; the editors must not provide them."""
    proc = editors.run_in_editors(
        ["python3", "-c", f"import {module}"], env={}, binds=[], timeout=30
    )
    assert proc.returncode != 0
    assert "ModuleNotFoundError" in proc.stderr


@pytest.mark.editors
@pytest.mark.slow
def test_clean_environment(editor_env: editors.EditorEnv,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTRAIT_STYLE_LEAK_CHECK", "1")
    proc = editors.run_in_editors(["env"], env={"ONLY": "this"}, binds=[], timeout=30)
    names = {line.split("=", 1)[0] for line in proc.stdout.splitlines()}
    fsync_skipped = {"LD_PRELOAD"} if editor_env.preload(editor_env.require()) else set()
    assert names == {"PATH", "LANG", "ONLY"} | fsync_skipped


@pytest.mark.editors
@pytest.mark.slow
def test_bind_mounted_folder_is_shared(editor_env: editors.EditorEnv, tmp_path: Path) -> None:
    (tmp_path / "from_host.txt").write_text("hello chroot")
    code = (
        "import pathlib, sys; d = pathlib.Path(sys.argv[1]);"
        "print(d.joinpath('from_host.txt').read_text());"
        "d.joinpath('from_chroot.txt').write_text('hello host')"
    )
    proc = editors.run_in_editors(
        ["python3", "-c", code, str(tmp_path)],
        env={},
        binds=[tmp_path],
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello chroot"
    assert (tmp_path / "from_chroot.txt").read_text() == "hello host"


@pytest.mark.editors
@pytest.mark.slow
def test_unix_socket_in_bind_mount_reaches_host(editor_env: editors.EditorEnv,
                                                tmp_path: Path) -> None:
    path = tmp_path / "daemon.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(30)
    received: list[bytes] = []

    def serve() -> None:
        with server, server.accept()[0] as conn:
            received.append(conn.recv(64))
            conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        "s.sendall(b'ping'); print(s.recv(64).decode())"
    )
    proc = editors.run_in_editors(
        ["python3", "-c", code, str(path)], env={}, binds=[tmp_path], timeout=30
    )
    thread.join(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pong"
    assert received == [b"ping"]


@pytest.mark.editors
@pytest.mark.slow
def test_krita_gui_draws_under_xvfb(krita_env: editors.EditorEnv, tmp_path: Path) -> None:
    pytest.importorskip("PIL.Image")
    home = tmp_path / "home"
    env = editors.isolated_env(home)
    log = tmp_path / "krita.log"
    with editors.xvfb_session(log_dir=tmp_path) as display:
        krita = editors.popen_in_editors(
            ["krita", "--nosplash"], env={**env, "DISPLAY": display}, binds=[home], log=log
        )
        try:
            shot = _screenshot_when_drawn(display, tmp_path / "krita.png", krita, log)
        finally:
            editors.kill_tree(krita)
    assert _colour_count(shot) > 16, "Krita's window never showed up on the screenshot"


def _screenshot_when_drawn(
    display: str, out_png: Path, krita: subprocess.Popen[bytes], log: Path, timeout: float = 300.0
) -> Path:
    """Screenshot every 2 s until the screen shows a window.

    Krita 5.2 starts in 5-25 s; Krita 5.3's first start on an empty HOME builds
    its resource database for about 100 s on a busy 2-core machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(2)
        assert krita.poll() is None, f"krita exited early:\n{log.read_text(errors='replace')}"
        editors.screenshot(display, out_png)
        if _colour_count(out_png) > 16 or time.monotonic() > deadline:
            return out_png


def _colour_count(png: Path) -> int:
    """Distinct colours; a blank X screen has one, a drawn window thousands."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return len(colours) if colours is not None else 1 << 16
