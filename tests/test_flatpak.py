"""GIMP from Flathub after the one command: a real GIMP in a Flatpak-shaped sandbox.

The sandbox is built with bubblewrap the way Flatpak builds one (NOTES-hosts):
``/usr`` is the runtime (an editors chroot's ``/usr``: GIMP 3.0 from Debian 13,
GIMP 3.2 from Debian forky when that chroot exists), the host's ``/usr`` is
hidden, ``/tmp`` and ``/run/user/UID`` are private, ``XDG_*`` point into
``~/.var/app/org.gimp.GIMP``, ``$FLATPAK_ID`` and ``/.flatpak-info`` are set.
The host's socket folder is mounted in only when the installer granted
``xdg-run/portrait-style`` in the app's Flatpak overrides — what ``flatpak
override`` does. The Flatpak installation itself (app + runtime deploy folders)
is laid out under ``$FLATPAK_USER_DIR``, so the installer finds GIMP, its
version and its Python by reading the same files it reads on an artist's machine.

The installer runs for real (``--editors-only`` on an environment of this
checkout), the daemon runs on the host from the systemd unit's ``ExecStart``
(no systemd user session here), and GIMP Applies the installed plug-in with no
endpoint set: the result is compared with the daemon's own answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import editors
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "gimp_scripts" / "flatpak.py"
SAMPLES = REPO / "portrait_style" / "samples"
APP = "org.gimp.GIMP"
KRITA_APP = "org.kde.krita"
KRITA_SCRIPTS = REPO / "tests" / "krita_scripts"
#: each app's runtime ref (Flathub's), laid out with the chroot's /usr as its files
RUNTIMES = {APP: "org.gnome.Platform/x86_64/49", KRITA_APP: "org.kde.Platform/x86_64/5.15-24.08"}
UID = os.getuid()


def _need(env: editors.EditorEnv) -> Path:
    """The environment's root (skips, or fails under $CI, when it or bubblewrap is missing)."""
    root = env.require()
    if shutil.which("bwrap") is None:
        reason = "bubblewrap is not installed (apt-get install bubblewrap)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return root


@dataclass
class Artist:
    """An artist's HOME after the installer, with GIMP installed from Flathub."""

    home: Path
    root: Path
    host_run: Path
    env: dict[str, str]
    install_output: str
    binary: str = ""
    version: str = ""
    app: str = APP

    @property
    def var(self) -> Path:
        return self.home / ".var" / "app" / self.app

    def overrides(self) -> str:
        path = Path(self.env["FLATPAK_USER_DIR"]) / "overrides" / self.app
        return path.read_text() if path.exists() else ""


def _flatpak_layout(base: Path, runtime_usr: Path, app: str) -> Path:
    """A per-user Flatpak installation holding ``app`` on a runtime (the chroot's /usr)."""
    ref = RUNTIMES[app]
    active = base / "app" / app / "current" / "active"
    (active / "files").mkdir(parents=True)
    (active / "metadata").write_text(f"[Application]\nname={app}\nruntime={ref}\n")
    runtime = base / "runtime" / ref / "active"
    runtime.mkdir(parents=True)
    (runtime / "files").symlink_to(runtime_usr)
    return base


def _light_venv(venv: Path) -> None:
    """The installer's environment, made from this checkout (PyTorch & co from the test's)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    here = sysconfig.get_paths()["purelib"]
    # this test's site folder (with its .pth files) comes through site.addsitedir
    Path(site, "zz_test_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    script = venv / "bin" / "portrait-style"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\n"
                      "from portrait_style.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)


def _prepare(tmp: Path, root: Path, app: str = APP) -> Artist:
    """The artist's HOME with the app installed from Flathub and the product's environment."""
    home = tmp / "artist"
    (home / ".var" / "app" / app).mkdir(parents=True)
    (home / ".config").mkdir()  # every desktop session has one
    host_run = tmp / "host-run"
    host_run.mkdir(mode=0o700)
    env = {"HOME": str(home), "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": str(host_run),
           "PATH": f"{Path(sys._base_executable).parent}:/usr/bin:/bin",
           "FLATPAK_USER_DIR": str(_flatpak_layout(tmp / "flatpak", root / "usr", app)),
           "FLATPAK_SYSTEM_DIR": str(tmp / "no-system-flatpak"),
           "PORTRAIT_STYLE_WEIGHTS_CACHE": os.environ["PORTRAIT_STYLE_WEIGHTS_CACHE"]}
    _light_venv(home / ".local" / "share" / "portrait-style" / "venv")
    return Artist(home, root, host_run, env, "", app=app)


def _run_installer(artist: Artist, *args: str) -> subprocess.CompletedProcess[str]:
    host = "gimp" if artist.app == APP else "krita"
    argv = list(args) or ["--editors-only", "--hosts", host]
    done = subprocess.run([sys.executable, str(REPO / "installer" / "install.py"), *argv],
                          capture_output=True, text=True, env=artist.env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _install(tmp: Path, root: Path, app: str = APP) -> Artist:
    artist = _prepare(tmp, root, app)
    artist.install_output = _run_installer(artist).stdout
    return artist


@pytest.fixture(scope="module", params=editors.ENVIRONMENTS,
                ids=[env.gimp_id for env in editors.ENVIRONMENTS])
def artist(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Artist:
    """Per editors environment (GIMP 3.0 from trixie, 3.2 from forky) as the Flatpak's runtime."""
    env: editors.EditorEnv = request.param
    found = _install(tmp_path_factory.mktemp("flatpak"), _need(env))
    found.binary, found.version = env.gimp_console(), env.gimp
    return found


@contextlib.contextmanager
def host_daemon(artist: Artist) -> Iterator[str]:
    """The daemon as the installer's systemd user unit runs it (its ExecStart), on the host."""
    unit = artist.home / ".config" / "systemd" / "user" / "portrait-style.service"
    exec_start = next(line.split("=", 1)[1] for line in unit.read_text().splitlines()
                      if line.startswith("ExecStart="))
    argv = [*shlex.split(exec_start), "--engine", "magenta", "--device", "cpu"]
    log = artist.home / "service.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=artist.env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    endpoint = f"ipc://{artist.host_run / 'portrait-style' / 'daemon.sock'}"
    try:
        from portrait_style.plugin.launcher import probe

        deadline = time.monotonic() + 180
        while probe(endpoint, timeout_s=1.0) is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the service's daemon did not answer"
            time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _sandbox_argv(artist: Artist, argv: list[str], *, flatpak_info: Path,
                  extra_env: dict[str, str] | None = None,
                  read_only: tuple[Path, ...] = ()) -> list[str]:
    """bubblewrap shaped like ``flatpak run APP`` (see the module docstring)."""
    var = artist.var
    run = f"/run/user/{UID}"
    cmd = ["bwrap", "--ro-bind", str(artist.root / "usr"), "/usr",
           "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
           "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
           "--ro-bind", str(artist.root / "etc"), "/etc",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
           "--dir", run, "--chmod", "0700", run,
           "--bind", str(artist.home), str(artist.home),
           "--ro-bind", str(flatpak_info), "/.flatpak-info"]
    for folder in read_only:
        cmd += ["--ro-bind", str(folder), str(folder)]
    if "xdg-run/portrait-style" in artist.overrides():  # what flatpak does with the override
        cmd += ["--bind", str(artist.host_run / "portrait-style"), f"{run}/portrait-style"]
    env = {"HOME": str(artist.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(var / "config"), "XDG_DATA_HOME": str(var / "data"),
           "XDG_CACHE_HOME": str(var / "cache"), "XDG_RUNTIME_DIR": run,
           "FLATPAK_ID": artist.app, editors.RESULT_ENV: str(artist.home / editors.RESULT_NAME),
           **(extra_env or {})}
    cmd += ["--clearenv", "--unshare-pid", "--die-with-parent"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return [*cmd, *argv]


def _flatpak_info(artist: Artist) -> Path:
    info = artist.home / "flatpak-info"
    info.write_text(f"[Application]\nname={artist.app}\nruntime=runtime/{RUNTIMES[artist.app]}\n")
    return info


def _gimp_apply(artist: Artist, binary: str, name: str) -> dict:
    """Run GIMP in the sandbox on the sample photo; the plug-in's report (dumps in HOME/name)."""
    out = artist.home / name
    out.mkdir(parents=True, exist_ok=True)
    for name, size in (("astronaut", 160), ("starry_night", 128)):
        image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
        image.thumbnail((size, size))
        image.save(artist.home / f"{name}.png")
    params = {"content": str(artist.home / "astronaut.png"),
              "style": str(artist.home / "starry_night.png"), "out": str(out)}
    code = artist.home / "batch.py"
    code.write_text(f"PARAMS = {json.dumps(params)}\n" + SCRIPT.read_text())
    info = _flatpak_info(artist)
    (artist.home / editors.RESULT_NAME).unlink(missing_ok=True)
    argv = [binary, "-i", "--batch-interpreter=python-fu-eval",
            "-b", f"exec(open({str(code)!r}).read())", "--quit"]
    done = subprocess.run(["timeout", "300", *_sandbox_argv(artist, argv, flatpak_info=info)],
                          capture_output=True, text=True, timeout=320)
    return editors.load_result(artist.home, done)


def _python_of(root: Path) -> str:
    return os.readlink(root / "usr" / "bin" / "python3").removeprefix("python")


def _daemon_background(endpoint: str, photo: Path, style: Path) -> np.ndarray:
    from portrait_style.protocol.client import DaemonClient

    content = np.asarray(Image.open(photo).convert("RGB"))
    painting = np.asarray(Image.open(style).convert("RGB"))
    with DaemonClient(endpoint, timeout_s=120) as client:
        reply = client.stylize(np.ascontiguousarray(content), painting)
    return np.asarray(reply.layers["background"])


@pytest.mark.editors
@pytest.mark.slow
def test_installer_sets_up_a_flatpak_gimp(artist: Artist) -> None:
    """Plug-in where this GIMP reads it, wire for its runtime's Python, socket access, service."""
    text = artist.install_output
    assert f"gimp {artist.version} (flatpak)" in text, text
    for root in (artist.var / "config" / "GIMP", artist.home / ".config" / "GIMP"):
        plugin = root / artist.version / "plug-ins" / "portrait-style"
        assert (plugin / "portrait-style.py").stat().st_mode & 0o111, plugin
        manifest = json.loads((plugin / "INSTALLED.json").read_text())
        # the runtime's Python (read from its files), not the installer's own
        assert manifest["python"]["version"] == _python_of(artist.root)
        assert manifest["wire_bundled"] is True
    copy = artist.var / "config" / "portrait-style" / "config.json"
    host = artist.home / ".config" / "portrait-style" / "config.json"
    assert json.loads(copy.read_text()) == json.loads(host.read_text())
    assert "filesystems=xdg-run/portrait-style;" in artist.overrides()
    assert (artist.home / ".config" / "systemd" / "user" / "portrait-style.service").exists()


@pytest.mark.editors
@pytest.mark.slow
def test_flatpak_gimp_gets_a_result_from_the_host_daemon(artist: Artist) -> None:
    with host_daemon(artist) as endpoint:
        report = _gimp_apply(artist, artist.binary, "out")
        expected = _daemon_background(endpoint, artist.home / "astronaut.png",
                                      artist.home / "starry_night.png")
    assert report["flatpak_id"] == APP
    assert report["registered"], report
    assert report["status"] == "success", report
    assert report["groups"] == 1 and set(report["layers"]) >= {"Portrait"}, report
    assert report["layers"]["Portrait"]["mask"], "the person mask is a real layer mask"
    name = next(n for n in report["layers"] if n.startswith("Background"))
    entry = report["layers"][name]
    got = np.fromfile(artist.home / "out" / entry["file"], np.uint8).reshape(
        entry["height"], entry["width"], entry["channels"])[..., :3]
    assert got.shape == expected.shape
    assert int(np.abs(got.astype(int) - expected.astype(int)).max()) <= 1, \
        "GIMP shows the host daemon's painting"


@pytest.mark.editors
@pytest.mark.slow
def test_in_the_sandbox_the_artist_reads_the_sandbox_and_the_one_fix(artist: Artist) -> None:
    overrides = Path(artist.env["FLATPAK_USER_DIR"]) / "overrides" / APP
    granted = overrides.read_text()
    # the override is there, but no daemon runs on the host
    report = _gimp_apply(artist, artist.binary, "a")
    assert report["status"] != "success"
    assert f"Flatpak sandbox ({APP})" in report["error"], report
    assert "systemctl --user enable --now portrait-style.service" in report["error"], report
    # the socket folder was never exposed to the app
    overrides.write_text(granted.replace("xdg-run/portrait-style;", ""))
    try:
        with host_daemon(artist):
            report = _gimp_apply(artist, artist.binary, "b")
    finally:
        overrides.write_text(granted)
    assert report["status"] != "success"
    assert (f"flatpak override --user --filesystem=xdg-run/portrait-style {APP}"
            in report["error"]), report
    assert "Run the installer" not in report["error"], "no wrong advice inside a sandbox"


@pytest.fixture(scope="module", params=editors.ENVIRONMENTS,
                ids=[env.krita_id for env in editors.ENVIRONMENTS])
def krita_artist(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Artist:
    """Per editors environment (Krita 5.2 / Python 3.13, 5.3 / Python 3.14) as the runtime."""
    return _install(tmp_path_factory.mktemp("flatpak-krita"), _need(request.param), KRITA_APP)


@pytest.mark.editors
@pytest.mark.slow
def test_flatpak_krita_gets_a_result_from_the_host_daemon(krita_artist: Artist) -> None:
    """Krita from Flathub: the installed plug-in in kritarunner inside the sandbox."""
    artist = krita_artist
    pykrita = artist.var / "data" / "krita" / "pykrita"
    manifest = json.loads((pykrita / "portrait_style_krita" / "INSTALLED.json").read_text())
    assert manifest["python"]["version"] == _python_of(artist.root), "Krita's libpython, read"
    assert "enable_portrait_style_krita=true" in (artist.var / "config" / "kritarc").read_text()
    assert "filesystems=xdg-run/portrait-style;" in artist.overrides()
    assert (artist.var / "config" / "portrait-style" / "config.json").exists()
    out = artist.home / "kout"
    out.mkdir()
    photo = artist.home / "astronaut.jpg"
    style = artist.home / "starry_night.jpg"
    shutil.copy(SAMPLES / "astronaut.jpg", photo)
    shutil.copy(SAMPLES / "starry_night.jpg", style)
    env = {"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": f"{KRITA_SCRIPTS}:{pykrita}",
           "KRITA_SUITE_ONLY": "main", "KRITA_SUITE_OUT": str(out),
           "KRITA_SUITE_PHOTO": str(photo), "KRITA_SUITE_STYLE": str(style),
           "KRITA_SUITE_SIZE": "128"}
    argv = ["kritarunner", "-s", "headless_suite", "-f", "main"]
    (artist.home / editors.RESULT_NAME).unlink(missing_ok=True)
    with host_daemon(artist) as endpoint:
        from portrait_style.plugin.launcher import probe

        host_pid = (probe(endpoint) or {}).get("pid")
        done = subprocess.run(["timeout", "400", *_sandbox_argv(
            artist, argv, flatpak_info=_flatpak_info(artist), extra_env=env,
            read_only=(KRITA_SCRIPTS,))], capture_output=True, text=True, timeout=420)
    result = editors.load_result(artist.home, done)["main"]
    assert result["ok"], result.get("traceback") or result
    assert result["daemon_pid"] == host_pid, "the job ran in the host's daemon"
    assert result["portrait_equals_job"] and result["mask_equals_job_mask"]
    assert result["source_unchanged"]


def _tree(root: Path, skip: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else p.read_bytes().hex()[:64]
            for p in sorted(root.rglob("*")) if not p.is_relative_to(skip)}


@pytest.mark.editors
@pytest.mark.slow
def test_doctor_checks_the_flatpak_access_and_uninstall_takes_it_back(tmp_path: Path) -> None:
    artist = _prepare(tmp_path, _need(editors.TRIXIE))
    venv = artist.home / ".local" / "share" / "portrait-style"  # made by the test, not the install
    before = _tree(artist.home, venv)
    _run_installer(artist)
    doctor = subprocess.run([str(venv / "venv" / "bin" / "portrait-style"), "doctor",
                             "--no-daemon"], capture_output=True, text=True, env=artist.env,
                            timeout=300)
    lines = [line for line in doctor.stdout.splitlines() if "(flatpak)" in line]
    assert lines and not any("FAIL" in line for line in lines), doctor.stdout
    assert any(f"the Flatpak {APP} may see the daemon's socket folder" in line
               for line in lines), doctor.stdout
    overrides = Path(artist.env["FLATPAK_USER_DIR"]) / "overrides" / APP
    granted = overrides.read_text()
    overrides.write_text(granted.replace("xdg-run/portrait-style;", ""))
    doctor = subprocess.run([str(venv / "venv" / "bin" / "portrait-style"), "doctor",
                             "--no-daemon"], capture_output=True, text=True, env=artist.env,
                            timeout=300)
    assert doctor.returncode == 1
    assert f"fix: flatpak override --user --filesystem=xdg-run/portrait-style {APP}" \
        in doctor.stdout, doctor.stdout
    overrides.write_text(granted)

    _run_installer(artist, "--uninstall")
    assert _tree(artist.home, venv) == before, "HOME as before the install"
    assert not overrides.exists(), "the one override entry was all the file held"
