"""Run the real GIMP and Krita, in every version CI proves, from tests.

``bash .ci/editors-chroot.sh`` provides one root per Debian release, each with
a GIMP and a Krita (see :data:`ENVIRONMENTS`): Debian 13 "trixie" (GIMP 3.0,
Krita 5.2, Python 3.13; on a Debian 13 host its root is ``/``) and Debian
testing "forky" (GIMP 3.2, Krita 5.3, Python 3.14). Debian 12's own Krita 5.1
runs on the host (tests/test_krita.py). Tests take an environment through the
``gimp_env`` / ``krita_env`` / ``editor_env`` fixtures (tests/conftest.py),
which run the test once per environment with the version in its id; without a
``within=`` argument the helpers below use the environment of the running test
(:func:`activate`).

Every command runs with a clean environment, so a test sees exactly what a
user's editor would see, and, in a chroot, inside a private mount and PID
namespace: host folders are bind-mounted at the *same path* (file names and
Unix sockets mean the same on both sides), and nothing (mounts, stray editor
processes) outlives the command, even when a test dies. Timeouts are enforced
here, on the host side: forky's coreutils ``timeout`` does not work inside it.

Editors report back through a result file: kritarunner exits 0 even when the
Python function raises, so callers must judge by what the function wrote. The
helpers below put the file's path in ``$PORTRAIT_STYLE_RESULT``; editor-side
code does ``json.dump(data, open(os.environ["PORTRAIT_STYLE_RESULT"], "w"))``
and the test calls :func:`load_result`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BASE = Path("/var/tmp/portrait-style-editors")
ROOT_ENV = "PORTRAIT_STYLE_EDITORS_ROOT"
SETUP_COMMAND = "bash .ci/editors-chroot.sh"
RESULT_ENV = "PORTRAIT_STYLE_RESULT"
RESULT_NAME = "result.json"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class EditorEnv:
    """One root holding a GIMP and a Krita, as ``.ci/editors-chroot.sh`` builds it.

    ``gimp`` is also the name of the profile folder that GIMP reads
    (``~/.config/GIMP/<gimp>``): GIMP 3.2 reads nothing from ``GIMP/3.0``.
    """

    name: str
    gimp: str
    krita: str
    #: batch binaries, the first one present is used (3.2 has no gimp-console-3.0)
    gimp_consoles: tuple[str, ...]
    #: turn fsync into a no-op for programs in this root (see :meth:`preload`)
    skip_fsync: bool = False

    @property
    def gimp_id(self) -> str:
        return f"gimp-{self.gimp}"

    @property
    def krita_id(self) -> str:
        return f"krita-{self.krita}"

    def root(self) -> Path | None:
        """This environment's root, or None when it is not prepared.

        ``$PORTRAIT_STYLE_EDITORS_ROOT_<NAME>`` (for trixie also the older
        ``$PORTRAIT_STYLE_EDITORS_ROOT``) wins over the file the setup script
        writes, so a developer can point tests at another root.
        """
        names = [f"{ROOT_ENV}_{self.name.upper()}"] + ([ROOT_ENV] if self is TRIXIE else [])
        value = next((os.environ[n].strip() for n in names if os.environ.get(n, "").strip()), "")
        files = [BASE / f"ROOT.{self.name}"] + ([BASE / "ROOT"] if self is TRIXIE else [])
        for file in files:
            if not value and file.is_file():
                value = file.read_text().strip()
        if not value:
            return None
        root = Path(value)
        if not (root / "usr/bin/kritarunner").exists() or self._console_in(root) is None:
            return None
        return root

    def require(self) -> Path:
        """This environment's root, or skip the test (fail it under ``$CI``).

        In CI a missing editor must never turn into a green run of skipped tests.
        """
        root = self.root()
        reason = None
        if root is None:
            reason = (f"the {self.name} editors ({self.gimp_id}, {self.krita_id}) are not "
                      f"prepared: run `{SETUP_COMMAND} {self.name}` (as root)")
        elif root != Path("/") and os.geteuid() != 0:
            reason = f"the {self.name} editors' chroot {root} needs root to enter"
        if reason is None:
            return root
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)

    def gimp_console(self) -> str:
        """The GIMP batch binary of this environment."""
        found = self._console_in(self.require())
        assert found is not None, "require() checked it"
        return found

    def gimp_profile(self, home: Path) -> Path:
        """The GIMP profile folder this GIMP reads for a user whose HOME is ``home``."""
        return home / ".config" / "GIMP" / self.gimp

    def python_version(self) -> str:
        """X.Y of the ``python3`` the editors run plug-ins with (what ``_wire`` must match)."""
        return _python_version(self, self.require())

    def preload(self, root: Path) -> str | None:
        """``LD_PRELOAD`` value for programs in this root, or None.

        Krita 5.3's first start on an empty HOME builds its resource database
        with ~4000 separate ``fdatasync`` calls: 130 s per fresh test HOME on a
        busy CI disk, 36 s without them. libeatmydata (installed in forky by
        ``.ci/editors-chroot.sh``) makes those calls return at once; nothing
        else about the editor changes (the data is written all the same).
        """
        if not self.skip_fsync:
            return None
        found = sorted(root.glob("usr/lib/*/libeatmydata.so*"))
        return "/" + str(found[0].relative_to(root)) if found else None

    def _console_in(self, root: Path) -> str | None:
        return next((c for c in self.gimp_consoles if (root / "usr/bin" / c).exists()), None)


TRIXIE = EditorEnv("trixie", gimp="3.0", krita="5.2", gimp_consoles=("gimp-console-3.0",))
FORKY = EditorEnv("forky", gimp="3.2", krita="5.3",
                  gimp_consoles=("gimp-console-3.2", "gimp-console"), skip_fsync=True)
#: every environment CI installs; each editor test runs in each of them
ENVIRONMENTS: tuple[EditorEnv, ...] = (TRIXIE, FORKY)

_active: EditorEnv = TRIXIE


@contextlib.contextmanager
def activate(env: EditorEnv) -> Iterator[EditorEnv]:
    """Make ``env`` the default of the helpers below (tests/conftest.py does it per test)."""
    global _active
    previous, _active = _active, env
    try:
        yield env
    finally:
        _active = previous


def active() -> EditorEnv:
    """The environment helpers use when not given ``within=``."""
    return _active


def environment_at(root: Path) -> EditorEnv:
    """The prepared environment whose root is ``root``."""
    for env in ENVIRONMENTS:
        if env.root() == Path(root):
            return env
    raise LookupError(f"no prepared editors environment has the root {root}")


@functools.cache
def _python_version(env: EditorEnv, root: Path) -> str:
    proc = run_in_editors(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          env={}, binds=[], timeout=60, within=env)
    if proc.returncode != 0:
        raise RuntimeError(f"python3 in the {env.name} editors failed: {proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


# Runs as root in a fresh mount namespace: mounts what the editors need, binds
# the caller's folders at the same path, then enters the chroot. $1 = root,
# $2 = number of binds, then the bind paths, then the command.
_ENTER_CHROOT = r"""
set -e
root=$1; n=$2; shift 2
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
while [ "$n" -gt 0 ]; do
    src=$1; shift; n=$((n - 1))
    if [ -d "$src" ]; then mkdir -p "$root$src"
    else mkdir -p "$(dirname "$root$src")"; : >>"$root$src"; fi
    mount --bind "$src" "$root$src"
done
exec chroot "$root" "$@"
"""


def editor_root(within: EditorEnv | None = None) -> Path | None:
    """The root of ``within`` (default: the active environment), or None when not prepared."""
    return (within or _active).root()


def require_editors(within: EditorEnv | None = None) -> Path:
    """The root of ``within`` (default: the active environment), or skip (fail under $CI)."""
    return (within or _active).require()


def editors_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    binds: Sequence[Path] = (),
    cwd: Path | None = None,
    within: EditorEnv | None = None,
) -> list[str]:
    """The host command line that runs ``argv`` among the editors.

    Exposed for callers that need ``Popen`` (GUI programs); most should use
    :func:`run_in_editors`.
    """
    within = within or _active
    root = within.require()
    preload = within.preload(root)
    if preload and "LD_PRELOAD" not in env:
        env = {"LD_PRELOAD": preload, **env}
    clean_env = [f"{key}={value}" for key, value in _clean_env(env).items()]
    chdir = ["--chdir", str(cwd)] if cwd is not None else []
    inner = ["/usr/bin/env", "-i", *chdir, *clean_env, *argv]
    if root == Path("/"):
        return inner
    paths = _bind_paths(binds)
    return [
        "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
        "--", "/bin/sh", "-c", _ENTER_CHROOT, "sh", str(root), str(len(paths)), *paths,
        *inner,
    ]  # fmt: skip


def run_in_editors(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    binds: Sequence[Path],
    timeout: float,
    cwd: Path | None = None,
    within: EditorEnv | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the editors' root and wait for it.

    Environment: only ``PATH``, ``LANG=C.UTF-8`` and ``env``. ``binds``: host
    folders (or files) visible at the same path inside; the chroot's ``/tmp``
    is a fresh tmpfs per call. On timeout the whole process tree is killed and
    ``subprocess.TimeoutExpired`` is raised.
    """
    command = editors_command(argv, env=env, binds=binds, cwd=cwd, within=within)
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def popen_in_editors(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    binds: Sequence[Path],
    log: Path,
    cwd: Path | None = None,
    within: EditorEnv | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` among the editors without waiting (GUI programs).

    stdout and stderr go to ``log``. Always stop it with :func:`kill_tree`.
    """
    command = editors_command(argv, env=env, binds=binds, cwd=cwd, within=within)
    with log.open("wb") as sink:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_tree(proc: subprocess.Popen[Any], grace: float = 2.0) -> None:
    """Stop a process started here and everything it started.

    SIGTERM first (editors clean up swap files), then SIGKILL. The PID
    namespace's ``--kill-child`` takes down whatever escaped the group.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def isolated_env(home: Path) -> dict[str, str]:
    """HOME, XDG folders and TMPDIR under ``home``, created.

    Per test: editors keep resource databases, configs and crash leftovers
    (Krita's KRITA_SWAP_FILE_*) there, which must not leak between tests.
    """
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(home / ".runtime"),
        "TMPDIR": str(home / "tmp"),
        RESULT_ENV: str(home / RESULT_NAME),
    }
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    Path(env["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def gimp_batch(
    python_code: str,
    *,
    home: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    binds: Sequence[Path] = (),
    within: EditorEnv | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run Python 3 code in GIMP 3's batch mode (no display).

    The code runs via ``python-fu-eval`` (import ``gi`` and ``Gimp`` yourself);
    GIMP exits 0 on success and non-zero (64) when the code raises. ``home`` is
    bind-mounted and holds the code file, HOME/XDG/TMPDIR and the result file.
    """
    within = within or _active
    home = _prepare_home(home)
    script = home / "gimp_batch.py"
    script.write_text(python_code)
    # --quit: GIMP 3.2 otherwise stays running in the background after the batch
    argv = [
        within.gimp_console(), "-i", "--batch-interpreter=python-fu-eval",
        "-b", f"exec(open({str(script)!r}).read())", "--quit",
    ]  # fmt: skip
    full_env = {**isolated_env(home), **(env or {})}
    return run_in_editors(argv, env=full_env, binds=[home, *binds], timeout=timeout,
                          within=within)


def krita_run(
    module_dir: Path,
    module: str,
    function: str,
    *,
    home: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    binds: Sequence[Path] = (),
    within: EditorEnv | None = None,
) -> subprocess.CompletedProcess[str]:
    """Call ``module.function(*args)`` in Krita headless (kritarunner, offscreen).

    kritarunner passes one positional argument and exits 0 even when the
    function raises: judge by :func:`load_result`. ``module_dir`` and ``home``
    are bind-mounted; ``module_dir`` is the PYTHONPATH.
    """
    home = _prepare_home(home)
    module_dir = module_dir.resolve()
    full_env = {
        **isolated_env(home),
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(module_dir),
        **(env or {}),
    }
    argv = ["kritarunner", "-s", module, "-f", function]
    return run_in_editors(argv, env=full_env, binds=[module_dir, home, *binds], timeout=timeout,
                          within=within)


def load_result(home: Path, proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON the editor-side code wrote to ``$PORTRAIT_STYLE_RESULT``.

    Fails the test with the editor's output when the file is missing or
    broken, which is how an exception inside kritarunner shows up.
    """
    path = home.resolve() / RESULT_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        pytest.fail(
            f"no valid result file {path} ({error}); exit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


@contextlib.contextmanager
def xvfb_session(
    *,
    size: str = "1280x800x24",
    log_dir: Path,
    start_timeout: float = 15.0,
    within: EditorEnv | None = None,
) -> Iterator[str]:
    """Run ``Xvfb`` among the editors; yield its DISPLAY (``":N"``).

    Clients in other :func:`run_in_editors` calls reach it through the abstract
    socket ``@/tmp/.X11-unix/XN``: abstract sockets belong to the network
    namespace, which the chroot shares, while each call's /tmp is private.
    """
    display = f":{_free_display()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    # -noreset: by default the server resets when its last client leaves, and a client
    # connecting during that reset is refused ("could not connect to display")
    argv = ["Xvfb", display, "-screen", "0", size, "-nolisten", "tcp", "-noreset"]
    proc = popen_in_editors(argv, env={}, binds=[], log=log_dir / "xvfb.log", within=within)
    try:
        _wait_for_display(display, proc, start_timeout, log_dir / "xvfb.log")
        yield display
    finally:
        kill_tree(proc)


def screenshot(
    display: str, out_png: Path, *, timeout: float = 30.0, within: EditorEnv | None = None
) -> Path:
    """Save the whole X screen ``display`` as a PNG (xwd inside, PNG written here)."""
    out_png = out_png.resolve()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    xwd_file = out_png.with_suffix(".xwd")
    argv = ["xwd", "-root", "-silent", "-display", display, "-out", str(xwd_file)]
    proc = run_in_editors(argv, env={}, binds=[out_png.parent], timeout=timeout, within=within)
    if proc.returncode != 0:
        raise RuntimeError(f"xwd failed ({proc.returncode}): {proc.stderr.strip()}")
    width, height, rgb = read_xwd(xwd_file.read_bytes())
    out_png.write_bytes(png_bytes(width, height, rgb))
    xwd_file.unlink()
    return out_png


def read_xwd(data: bytes) -> tuple[int, int, bytes]:
    """Decode a TrueColor 24/32-bit ZPixmap XWD dump (what xwd gives for Xvfb) to RGB.

    Stdlib only, so screenshots need no ImageMagick on the host.
    """
    fields = struct.unpack(">25I", data[:100])
    header_size, _, pixmap_format, _, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, ncolors = fields[14:17], fields[19]
    if pixmap_format != 2 or bits_per_pixel not in (24, 32):
        raise ValueError(f"unsupported XWD: format {pixmap_format}, {bits_per_pixel} bpp")
    shift = {0xFF0000: 2, 0x00FF00: 1, 0x0000FF: 0}
    if set(masks) != set(shift):
        raise ValueError(f"unsupported XWD colour masks {masks}")
    start = header_size + 12 * ncolors
    size = bits_per_pixel // 8
    # Byte offset of each channel inside a pixel, per byte order (0: LSB first).
    offsets = [shift[m] if byte_order == 0 else size - 1 - shift[m] for m in masks]
    rgb = bytearray(width * height * 3)
    for y in range(height):
        row = data[start + y * bytes_per_line : start + y * bytes_per_line + width * size]
        for channel, offset in enumerate(offsets):
            rgb[y * width * 3 + channel : (y + 1) * width * 3 : 3] = row[offset::size]
    return width, height, bytes(rgb)


def png_bytes(width: int, height: int, rgb: bytes) -> bytes:
    """Encode 8-bit RGB rows as a PNG (filter 0 on every row)."""
    stride = width * 3
    raw = b"".join(b"\0" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _clean_env(env: Mapping[str, str]) -> dict[str, str]:
    return {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", **env}


def _bind_paths(binds: Sequence[Path]) -> list[str]:
    """Resolved, de-duplicated, parents before children (so nested binds stack)."""
    paths = {str(Path(bind).resolve()) for bind in binds}
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"bind source does not exist: {path}")
    return sorted(paths, key=lambda p: (p.count("/"), p))


def _prepare_home(home: Path) -> Path:
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / RESULT_NAME).unlink(missing_ok=True)
    return home


def _x_sockets_in_use() -> set[int]:
    """Display numbers with a live X socket (abstract or on disk) on this host."""
    used: set[int] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines():
            name = line.split()[-1]
            if "/tmp/.X11-unix/X" in name:
                with contextlib.suppress(ValueError):
                    used.add(int(name.rsplit("X", 1)[1]))
    return used


def _free_display() -> int:
    used = _x_sockets_in_use()
    for number in range(90 + os.getpid() % 100, 400):
        if number not in used and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


def _wait_for_display(display: str, proc: subprocess.Popen[Any], timeout: float, log: Path) -> None:
    number = int(display.lstrip(":"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if number in _x_sockets_in_use():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    kill_tree(proc)
    raise RuntimeError(f"Xvfb {display} did not start: {log.read_text(errors='replace')[-2000:]}")
