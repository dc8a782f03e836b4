"""Putting portrait-style in place for a user: install-plugin, the installer, doctor.

Everything runs in a temporary HOME with empty GIMP and Krita profile folders,
as on an artist's fresh machine, and checks what lands on disk — and that an
uninstall leaves that HOME exactly as it was. The editors themselves run the
installed plug-ins in test_gimp.py and test_krita.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import isolated_env, run_cli, running

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` with its mode and content hash (folders: "dir")."""
    out: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (info.st_mode, kind)
    return out


def _artist_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A HOME with GIMP 3 and Krita profiles, and a kritarc Krita already wrote."""
    home = tmp_path / "artist"
    (home / ".config" / "GIMP" / "3.0").mkdir(parents=True)
    (home / ".local" / "share" / "krita").mkdir(parents=True)
    (home / ".config" / "kritarc").write_text("[General]\nDontUseNativeFileDialog=true\n\n"
                                              "[python]\nenable_other_plugin=true\n")
    env = isolated_env(tmp_path / "ps-home")
    env.update(HOME=str(home))
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "GIMP3_DIRECTORY"):
        env.pop(key, None)
    return home, env


def _install(host: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("install-plugin", [host, *extra], env, 300)


def test_install_plugin_puts_both_plugins_in_place_and_uninstall_undoes_it(
        tmp_path: Path) -> None:
    home, env = _artist_home(tmp_path)
    before = _snapshot(home)
    venv_python = sys.executable  # has pyzmq and msgpack: nothing to bundle
    for host in ("gimp", "krita"):
        res = _install(host, env, "--python", venv_python)
        assert res.returncode == 0, res.stderr
        assert "installed the" in res.stdout
    gimp = home / ".config" / "GIMP" / "3.0" / "plug-ins" / "portrait-style"
    entry = gimp / "portrait-style.py"
    assert entry.stat().st_mode & 0o111, "GIMP only runs executable plug-ins"
    assert (gimp / "portrait_style_gimp" / "_core" / "plugin" / "job.py").exists()
    assert not (gimp / "portrait_style_gimp" / "_wire").exists()
    krita = home / ".local" / "share" / "krita" / "pykrita"
    assert (krita / "portrait_style_krita.desktop").exists()
    core = krita / "portrait_style_krita" / "_core"
    assert (core / "protocol" / "client.py").exists() and (core / "plugin" / "wire.py").exists()
    assert not (core / "plugin" / "cli_host.py").exists()  # the numpy/Pillow host stays out
    kritarc = (home / ".config" / "kritarc").read_text()
    assert "enable_portrait_style_krita=true" in kritarc
    assert "enable_other_plugin=true" in kritarc and "DontUseNativeFileDialog" in kritarc
    installed = _snapshot(home)
    for host in ("gimp", "krita"):  # again: a repair leaves the same files
        assert _install(host, env, "--python", venv_python).returncode == 0
    assert _snapshot(home) == installed
    for host in ("gimp", "krita"):
        res = _install(host, env, "--uninstall")
        assert res.returncode == 0 and "removed" in res.stdout, res.stderr
    assert _snapshot(home) == before


_EDITOR = """
import json, sys
from pathlib import Path
package = Path(sys.argv[1])
sys.path.insert(0, str(package.parent))
plugin = __import__(package.name + "._core.plugin.wire", fromlist=["ensure_wire"])
plugin.ensure_wire(package / "_wire")
job = __import__(package.name + "._core.plugin.job", fromlist=["Connection"])
client = __import__(package.name + "._core.protocol.client", fromlist=["DaemonClient"])
import zmq
with client.DaemonClient(sys.argv[2]) as c:
    hello = c.hello()
    reply = c.stylize((bytes(range(48)), (4, 4, 3)), (bytes(12), (2, 2, 3)),
                      outputs=["background"])
print(json.dumps({"zmq_from": zmq.__file__, "engine": hello["engines"]["active"],
                  "layers": sorted(reply.layers), "numpy": "numpy" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs the system /usr/bin/python3")
def test_bundled_wire_libraries_let_a_bare_python_run_the_plugin(tmp_path: Path) -> None:
    """The editor's Python without pyzmq/msgpack (``-S``: no site packages at all)."""
    home, env = _artist_home(tmp_path)
    version = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print('%d.%d' % "
                              "sys.version_info[:2])"], capture_output=True, text=True,
                             check=True).stdout.strip()
    res = _install("krita", env, "--python", version)
    assert res.returncode == 0, res.stderr
    assert "bundled pyzmq" in res.stdout
    package = home / ".local" / "share" / "krita" / "pykrita" / "portrait_style_krita"
    assert any((package / "_wire" / "zmq").rglob("*.so"))
    with running(tmp_path / "daemon", "--engine", "noop") as daemon:
        done = subprocess.run([str(SYSTEM_PYTHON), "-S", "-c", _EDITOR, str(package),
                               daemon.endpoint], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["zmq_from"].startswith(str(package / "_wire"))
    assert out == {**out, "engine": "noop", "layers": ["background"], "numpy": False}


def test_installer_dry_run_lists_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    home, env = _artist_home(tmp_path)
    env.pop("PORTRAIT_STYLE_HOME")
    before = _snapshot(home)
    done = subprocess.run([sys.executable, str(REPO / "installer" / "install.py"),
                           "--dry-run", "--service"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    steps = done.stdout.splitlines()
    text = done.stdout
    assert steps[0].startswith("1. create the virtual environment")
    assert str(home / ".local" / "share" / "portrait-style" / "venv") in text
    assert "install PyTorch" in text and "fetch the embedded model files" in text
    assert "install the plug-in into gimp" in text and "install the plug-in into krita" in text
    assert "systemd user unit" in text
    assert _snapshot(home) == before


@pytest.mark.slow
def test_installer_end_to_end_then_uninstall_leaves_home_as_it_was(tmp_path: Path) -> None:
    """The artist's one command, for real (PyTorch from this machine's wheel cache)."""
    home, env = _artist_home(tmp_path)
    env.pop("PORTRAIT_STYLE_HOME")
    env["PORTRAIT_STYLE_TORCH"] = os.environ.get("PORTRAIT_STYLE_TEST_TORCH",
                                                 "torch==2.14.1 torchvision==0.29.1")
    env["PIP_PROGRESS_BAR"] = "off"
    # an artist's PATH: this Python and the system's, none of this machine's dev tools
    # (a rustup proxy on PATH writes ~/.rustup when any build step probes for it)
    env["PATH"] = f"{Path(sys._base_executable).parent}:/usr/bin:/bin"
    before = _snapshot(home)
    install = subprocess.run(["sh", str(REPO / "installer" / "install.sh"), "--hosts", "gimp",
                              "krita"], capture_output=True, text=True, env=env, timeout=1500)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # each step numbered, and pip's own lines (what it fetches, with sizes) shown, not hidden
    assert "[1/" in install.stdout and "] install PyTorch (" in install.stdout
    assert "Collecting torch" in install.stdout, install.stdout[-3000:]
    product = home / ".local" / "share" / "portrait-style" / "venv" / "bin" / "portrait-style"
    config = json.loads((home / ".config" / "portrait-style" / "config.json").read_text())
    assert config["daemon_command"][0].startswith(str(home))
    assert (home / ".config" / "GIMP" / "3.0" / "plug-ins" / "portrait-style").is_dir()
    assert "enable_portrait_style_krita=true" in (home / ".config" / "kritarc").read_text()
    doctor = subprocess.run([str(product), "doctor", "--no-daemon"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    again = subprocess.run(["sh", str(REPO / "installer" / "install.sh"), "--hosts", "gimp",
                            "krita"], capture_output=True, text=True, env=env, timeout=1500)
    assert again.returncode == 0 and "exists: reusing it" in again.stdout, again.stderr[-2000:]
    remove = subprocess.run(["sh", str(REPO / "installer" / "install.sh"), "--uninstall"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert remove.returncode == 0, remove.stdout + remove.stderr
    assert _snapshot(home) == before


_NO_COMPILED = """
import importlib.abc, json, sys
from pathlib import Path
class NoZmq(importlib.abc.MetaPathFinder):  # as in MSYS2 or a signed macOS Python
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "zmq":
            raise ImportError("compiled extensions refused")
sys.meta_path.insert(0, NoZmq())
package = Path(sys.argv[1])
sys.path.insert(0, str(package.parent))
wire = __import__(package.name + "._core.plugin.wire", fromlist=["ensure_wire"])
wire.ensure_wire(package / "_wire")
client = __import__(package.name + "._core.protocol.client", fromlist=["DaemonClient"])
with client.DaemonClient(sys.argv[2]) as c:
    reply = c.stylize((bytes(range(48)), (4, 4, 3)), (bytes(12), (2, 2, 3)),
                      outputs=["background", "mask"])
import msgpack
print(json.dumps({"layers": sorted(reply.layers), "zmq": "zmq" in sys.modules,
                  "background": reply.layers["background"].tobytes() == bytes(range(48)),
                  "msgpack_pure": msgpack.Packer.__module__}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs the system /usr/bin/python3")
def test_an_editor_that_cannot_load_pyzmq_works_through_the_bridge(tmp_path: Path) -> None:
    """No compiled code at all on the editor's side: pure-Python msgpack + the bridge."""
    home, env = _artist_home(tmp_path)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert _install("krita", env, "--python", version).returncode == 0
    config = home / ".config" / "portrait-style" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"daemon_command": [sys.executable, "-m", "portrait_style",
                                                     "serve"]}))
    package = home / ".local" / "share" / "krita" / "pykrita" / "portrait_style_krita"
    with running(tmp_path / "daemon", "--engine", "noop") as daemon:
        done = subprocess.run([str(SYSTEM_PYTHON), "-S", "-c", _NO_COMPILED, str(package),
                               daemon.endpoint], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(home),
                                   "MSGPACK_PUREPYTHON": "1"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"layers": ["background", "mask"], "zmq": False, "background": True,
                   "msgpack_pure": "msgpack.fallback"}


def _gimp_bin(tmp_path: Path) -> Path:
    """GIMP binaries as Debian forky names them, plus a future minor behind a symlink."""
    folder = tmp_path / "gimp-bin"
    folder.mkdir()
    for name in ("gimp-console-3.2", "gimp-3.4"):
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    (folder / "gimp").symlink_to("gimp-3.4")
    return folder


def test_gimp_plugin_goes_to_every_gimp_version_folder_and_uninstall_takes_it_all_back(
        tmp_path: Path) -> None:
    """GIMP 3.2 reads only GIMP/3.2: install into each installed version's folder (and 3.0's)."""
    home, env = _artist_home(tmp_path)
    env["PATH"] = f"{_gimp_bin(tmp_path)}:{env['PATH']}"
    before = _snapshot(home)
    res = _install("gimp", env, "--python", sys.executable)
    assert res.returncode == 0, res.stderr
    for version in ("3.0", "3.2", "3.4"):
        entry = home / ".config" / "GIMP" / version / "plug-ins" / "portrait-style" / \
            "portrait-style.py"
        assert entry.stat().st_mode & 0o111, f"no plug-in for GIMP {version}"
    res = _install("gimp", env, "--uninstall")
    assert res.returncode == 0, res.stderr
    assert _snapshot(home) == before


def test_doctor_says_when_the_plugin_sits_only_where_the_installed_gimp_does_not_look(
        tmp_path: Path) -> None:
    home, env = _artist_home(tmp_path)
    assert _install("gimp", env, "--python", sys.executable,
                    "--profile", str(home / ".config" / "GIMP" / "3.0")).returncode == 0
    env["PATH"] = f"{_gimp_bin(tmp_path)}:{env['PATH']}"
    (home / ".config" / "GIMP" / "3.0" / "plug-ins").rename(tmp_path / "kept")
    (home / ".config" / "GIMP" / "3.0").rmdir()
    (home / ".config" / "GIMP" / "3.0").mkdir()  # GIMP 3.0 gone; its folder and our copy stay
    (tmp_path / "kept").rename(home / ".config" / "GIMP" / "3.0" / "plug-ins")
    env["PATH"] = env["PATH"].replace(f"{tmp_path / 'gimp-bin'}:", "")
    bin_32 = tmp_path / "bin-3.2"
    bin_32.mkdir()
    (bin_32 / "gimp-console-3.2").symlink_to(tmp_path / "gimp-bin" / "gimp-console-3.2")
    env["PATH"] = f"{bin_32}:{env['PATH']}"
    done = run_cli("doctor", ["--no-daemon"], env, 300)
    text = done.stdout
    assert done.returncode == 1, text
    assert f"{home / '.config' / 'GIMP' / '3.0'}, which the installed GIMP" in text, text
    assert str(home / ".config" / "GIMP" / "3.2" / "plug-ins" / "portrait-style") in text
    assert "fix: portrait-style install-plugin gimp" in text


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs the system /usr/bin/python3")
def test_a_bundle_for_another_python_falls_back_to_the_bridge(tmp_path: Path) -> None:
    """The wire bundled for the wrong Python (3.13) does not load in 3.11: the bridge works."""
    home, env = _artist_home(tmp_path)
    system = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print('%d.%d' % "
                             "sys.version_info[:2])"], capture_output=True, text=True,
                            check=True).stdout.strip()
    other = "3.13" if system != "3.13" else "3.11"
    assert _install("krita", env, "--python", other).returncode == 0
    config = home / ".config" / "portrait-style" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"daemon_command": [sys.executable, "-m", "portrait_style",
                                                     "serve"]}))
    package = home / ".local" / "share" / "krita" / "pykrita" / "portrait_style_krita"
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib; "
             "w = importlib.import_module('portrait_style_krita._core.plugin.wire'); "
             "from pathlib import Path; w.ensure_wire(Path(sys.argv[1]) / "
             "'portrait_style_krita' / '_wire'); import zmq")
    bundle = subprocess.run([str(SYSTEM_PYTHON), "-S", "-c", probe, str(package.parent)],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert bundle.returncode != 0, "the 3.13 pyzmq must not load here for this test to mean it"
    with running(tmp_path / "daemon", "--engine", "noop") as daemon:
        done = subprocess.run([str(SYSTEM_PYTHON), "-S", "-c", _NO_COMPILED.replace(
            "sys.meta_path.insert(0, NoZmq())", ""), str(package), daemon.endpoint],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["layers"] == ["background", "mask"] and out["background"] is True
    assert out["zmq"] is False, "the client talked through the bridge, not pyzmq"


def test_a_bridge_that_cannot_run_is_explained_with_the_fix(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from portrait_style.protocol.bridge import BridgeSocket
    from portrait_style.protocol.errors import DaemonUnreachable

    monkeypatch.setenv("FLATPAK_ID", "org.gimp.GIMP")
    with pytest.raises(DaemonUnreachable) as caught:
        BridgeSocket.open("ipc:///nowhere.sock", "/home/artist/.local/share/venv/bin/python")
    text = str(caught.value)
    assert "Flatpak sandbox (org.gimp.GIMP)" in text and "pyzmq does not load" in text
    assert "portrait-style install-plugin gimp|krita --python" in text


def test_in_a_flatpak_the_config_comes_from_the_host_when_the_app_has_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portrait_style.config import load_config

    home = tmp_path / "artist"
    host = home / ".config" / "portrait-style" / "config.json"
    host.parent.mkdir(parents=True)
    host.write_text(json.dumps({"daemon_command": ["/host/venv/bin/python"],
                                "endpoint": "tcp://127.0.0.1:5599"}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PORTRAIT_STYLE_HOME", raising=False)
    monkeypatch.delenv("HOST_XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".var" / "app" / "org.gimp.GIMP" / "config"))
    monkeypatch.delenv("FLATPAK_ID", raising=False)
    if not Path("/.flatpak-info").exists():
        assert load_config().endpoint is None, "outside a sandbox the app's folder is used"
    monkeypatch.setenv("FLATPAK_ID", "org.gimp.GIMP")
    assert load_config().endpoint == "tcp://127.0.0.1:5599"
    own = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "portrait-style" / "config.json"
    own.parent.mkdir(parents=True)
    own.write_text(json.dumps({"endpoint": "tcp://127.0.0.1:5600"}))
    assert load_config().endpoint == "tcp://127.0.0.1:5600", "the installer's copy wins"


def _dry_run_torch_line(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, str(REPO / "installer" / "install.py"), "--dry-run",
                           "--no-plugins"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.splitlines() if "install PyTorch" in line)


@pytest.mark.skipif(Path("/proc/driver/nvidia/version").exists(), reason="an NVIDIA GPU is here")
def test_without_a_gpu_the_cpu_build_is_chosen_and_an_unreachable_index_is_said(
        tmp_path: Path) -> None:
    import http.server
    import threading

    home, env = _artist_home(tmp_path)
    env.pop("PORTRAIT_STYLE_HOME")
    env.pop("PORTRAIT_STYLE_TORCH", None)
    index = tmp_path / "cpu-index"
    (index / "torch").mkdir(parents=True)
    (index / "torch" / "index.html").write_text("<html></html>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(index))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        env["PORTRAIT_STYLE_TORCH_CPU_INDEX"] = url
        line = _dry_run_torch_line(env)
        assert f"no NVIDIA GPU: the CPU-only build from {url}" in line and "MB" in line, line
    finally:
        server.shutdown()
        server.server_close()
    env["PORTRAIT_STYLE_TORCH_CPU_INDEX"] = url  # now nothing listens there
    line = _dry_run_torch_line(env)
    assert f"CPU-only index {url} cannot be reached" in line, line
    assert "the default build from your package index instead" in line
