"""Smoke tests for the editors' test environment (tests/editors.py).

They prove the environment other tests rely on: GIMP 3 batch mode and
kritarunner run Python 3 code, the wire libraries are absent (the plug-ins must
bring their own), host folders and Unix sockets are shared at the same path,
and Krita's GUI draws under Xvfb.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import editors
import pytest

pytestmark = [pytest.mark.editors, pytest.mark.slow]

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


@pytest.fixture(autouse=True)
def _editors() -> None:
    editors.require_editors()


def test_gimp3_batch_creates_image(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = editors.gimp_batch(GIMP_CODE, home=tmp_path / "home", timeout=120)
    result = editors.load_result(tmp_path / "home", proc)
    assert proc.returncode == 0, proc.stderr
    assert (result["width"], result["height"]) == (64, 48)
    assert result["layers"] == ["smoke"]
    assert result["version"].startswith("3."), result
    print(f"GIMP {result['version']} batch run: {time.monotonic() - started:.1f} s")


def test_gimp3_batch_reports_python_errors(tmp_path: Path) -> None:
    proc = editors.gimp_batch("raise RuntimeError('boom')", home=tmp_path / "home", timeout=120)
    assert proc.returncode != 0


def test_kritarunner_creates_document(tmp_path: Path) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "smoke_krita.py").write_text(KRITA_MODULE)
    started = time.monotonic()
    proc = editors.krita_run(module_dir, "smoke_krita", "main", home=tmp_path / "home", timeout=180)
    result = editors.load_result(tmp_path / "home", proc)
    assert (result["width"], result["height"]) == (40, 30)
    assert result["version"].startswith("5.2"), result
    print(f"Krita {result['version']} kritarunner: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("module", ["zmq", "msgpack"])
def test_wire_libraries_are_absent(module: str) -> None:
    """The plug-ins' installer must vendor these; the editors must not provide them."""
    proc = editors.run_in_editors(
        ["python3", "-c", f"import {module}"], env={}, binds=[], timeout=30
    )
    assert proc.returncode != 0
    assert "ModuleNotFoundError" in proc.stderr


def test_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTRAIT_STYLE_LEAK_CHECK", "1")
    proc = editors.run_in_editors(["env"], env={"ONLY": "this"}, binds=[], timeout=30)
    names = {line.split("=", 1)[0] for line in proc.stdout.splitlines()}
    assert names == {"PATH", "LANG", "ONLY"}


def test_bind_mounted_folder_is_shared(tmp_path: Path) -> None:
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


def test_unix_socket_in_bind_mount_reaches_host(tmp_path: Path) -> None:
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


def test_krita_gui_draws_under_xvfb(tmp_path: Path) -> None:
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
    display: str, out_png: Path, krita: subprocess.Popen[bytes], log: Path, timeout: float = 60.0
) -> Path:
    """Screenshot every 2 s until the screen shows a window (Krita starts in 5-25 s)."""
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
