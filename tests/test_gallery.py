"""The gallery of paintings shipped with the product (``portrait_style/gallery``).

What is checked: every painting listed is there, is the picture its thumbnail
shows, stays within the size limits and the public-domain dates; the index and
SOURCES.md say the same; the listing module runs without numpy/Pillow/torch,
also from the copy an installed plug-in carries; ``portrait-style styles``
lists the gallery; ``--style gallery:NAME`` runs a real job with that painting,
and an unknown name is refused with the close names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import isolated_env, run_cli, running
from PIL import Image

from portrait_style.installer.plugins import vendor_core
from portrait_style.plugin import gallery
from portrait_style.plugin.gallery import GalleryError, Painting

REPO = Path(__file__).resolve().parents[1]
GALLERY = REPO / "portrait_style" / "gallery"
SAMPLES = REPO / "portrait_style" / "samples"

MIN_PAINTINGS = 24
MAX_LONG_SIDE = 1024
MAX_THUMB_SIDE = 160
MAX_TOTAL_BYTES = 8 * 1024 * 1024
#: the techniques the gallery promises, each as words that one technique line must contain
VARIETY = {
    "woodcut or woodblock print": ("woodcut", "woodblock"),
    "pointillism": ("pointillism", "divisionist"),
    "line drawing or print": ("pen and ink", "etching", "ink drawing"),
    "pastel, chalk or pencil": ("pastel", "chalk", "pencil", "charcoal"),
    "watercolour": ("watercolour",),
    "mosaic, stained glass or fresco": ("mosaic", "stained glass", "fresco"),
    "flat colour": ("flat colour",),
    "brushwork": ("impasto", "brushwork", "brushstrokes"),
    "cubism or abstraction": ("cubism", "abstraction"),
    "expressionism": ("expressionis",),
}


@pytest.fixture(scope="module")
def paintings() -> list[Painting]:
    return gallery.paintings()


def _years(text: str) -> list[int]:
    """Every year a date like "c. 1831", "1884–86" or "1908–10" names, in full."""
    years: list[int] = []
    for match in re.finditer(r"(\d{4})(?:[–-](\d{2,4}))?", text):
        start = int(match.group(1))
        years.append(start)
        if match.group(2):
            end = match.group(2)
            years.append(int(str(start)[: 4 - len(end)] + end))
    return years


def test_the_gallery_has_enough_paintings_of_varied_techniques(
        paintings: list[Painting]) -> None:
    assert len(paintings) >= MIN_PAINTINGS
    names = [p.name for p in paintings]
    assert len(set(names)) == len(names), "names must be unique"
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names), names
    missing = [kind for kind, words in VARIETY.items()
               if not any(w in p.technique for p in paintings for w in words)]
    assert not missing, f"no painting for: {missing}"


def test_every_painting_is_old_enough_to_be_public_domain(paintings: list[Painting]) -> None:
    for p in paintings:
        assert p.artist_died < 1956, f"{p.name}: artist died {p.artist_died}"
        years = _years(p.year)
        assert years, f"{p.name}: no year in {p.year!r}"
        assert max(years) < 1929, f"{p.name}: {p.year}"
        assert min(years) <= p.artist_died, f"{p.name}: made after the artist died?"


def test_every_image_and_thumbnail_is_there_within_size_and_alike(
        paintings: list[Painting]) -> None:
    for p in paintings:
        with Image.open(p.image) as image:
            assert image.format == "JPEG" and image.mode == "RGB", p.name
            assert image.size == p.size, f"{p.name}: index says {p.size}, file {image.size}"
            assert max(image.size) <= MAX_LONG_SIDE
            coarse = _coarse(image)
        with Image.open(p.thumbnail) as thumb:
            assert thumb.format == "JPEG" and thumb.mode == "RGB", p.name
            assert thumb.size == p.thumbnail_size, p.name
            assert max(thumb.size) <= MAX_THUMB_SIDE
            # the thumbnail shows this painting, not a neighbour's (measured: ≤ 4.4 for
            # its own painting, ≥ 26 for any other)
            assert float(np.abs(_coarse(thumb) - coarse).mean()) < 10.0, p.name


def _coarse(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BOX), np.float32)


def test_the_folder_holds_only_what_the_index_lists_and_stays_small(
        paintings: list[Painting]) -> None:
    listed = {p.image for p in paintings} | {p.thumbnail for p in paintings}
    listed |= {GALLERY / "index.json", GALLERY / "SOURCES.md"}
    present = {f for f in GALLERY.rglob("*") if f.is_file()}
    assert present == listed, f"unlisted: {present - listed}; missing: {listed - present}"
    total = sum(f.stat().st_size for f in present)
    print(f"gallery: {len(paintings)} paintings, {total / 2**20:.2f} MiB")
    assert total <= MAX_TOTAL_BYTES


def _sources_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in (GALLERY / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_index_and_sources_md_agree() -> None:
    index = json.loads((GALLERY / "index.json").read_text(encoding="utf-8"))["paintings"]
    sources_text = (GALLERY / "SOURCES.md").read_text(encoding="utf-8")
    rows = _sources_rows()
    assert sorted(rows) == sorted(e["name"] for e in index)
    for entry in index:
        name, title, artist, died, year, technique, source, status = rows[entry["name"]]
        assert (title, artist, int(died), year, technique) == (
            entry["title"], entry["artist"], entry["artist_died"], entry["year"],
            entry["technique"]), name
        origin = entry["source"]
        assert origin["repository"] in source and origin["commit"][:12] in source, name
        assert f"`{origin['path']}`" in source, name
        assert f"{origin['repository']} @ {origin['commit']}" in sources_text, name
        assert status.startswith("Public domain"), name


def test_a_painting_is_found_by_its_name_and_an_unknown_one_gets_close_names() -> None:
    assert gallery.find("gallery:hokusai_great_wave").name == "hokusai_great_wave"
    assert gallery.find("Hokusai-Great-Wave").name == "hokusai_great_wave"
    assert gallery.resolve("gallery:klimt_the_kiss") == GALLERY / "klimt_the_kiss.jpg"
    with pytest.raises(GalleryError) as typo:
        gallery.find("gallery:van_gog_bedrom")
    assert "gallery:van_gogh_bedroom" in str(typo.value)
    with pytest.raises(GalleryError) as artist:
        gallery.find("gallery:durer")
    assert all(f"gallery:durer_{n}" in str(artist.value)
               for n in ("rhinoceros", "young_hare", "praying_hands"))


def test_a_gallery_file_maps_back_to_its_painting(tmp_path: Path) -> None:
    """A picker's recent styles show a gallery painting by its title."""
    kiss = gallery.find("klimt_the_kiss")
    assert gallery.for_path(str(GALLERY / "klimt_the_kiss.jpg")) == kiss
    assert gallery.for_path(GALLERY / "thumbs" / ".." / "klimt_the_kiss.jpg") == kiss
    assert gallery.for_path(SAMPLES / "starry_night.jpg") is None
    assert gallery.for_path(tmp_path / "gone.jpg") is None


def test_a_missing_gallery_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="missing.*reinstall"):
        gallery.paintings(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(GalleryError, match="unreadable"):
        gallery.paintings(tmp_path)


_BLOCKER = """
import importlib, importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"numpy", "PIL", "torch", "torchvision"}:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
"""

_LIST = _BLOCKER + """
if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])
module = importlib.import_module(sys.argv[1])
found = module.paintings()
print(json.dumps({"folder": str(module.gallery_dir()), "count": len(found),
                  "thumbs": [str(p.thumbnail) for p in found],
                  "heavy": sorted(m for m in ("numpy", "PIL", "torch") if m in sys.modules)}))
"""


def test_the_listing_module_needs_no_numpy_pillow_or_torch() -> None:
    done = subprocess.run([sys.executable, "-c", _LIST, "portrait_style.plugin.gallery"],
                          capture_output=True, text=True, timeout=60,
                          env=isolated_env(REPO / ".no-home"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["heavy"] == [] and out["count"] == len(gallery.paintings())
    assert Path(out["folder"]) == GALLERY


def test_an_installed_plugin_finds_the_gallery_in_its_own_folder(tmp_path: Path) -> None:
    """The installer's core copy carries the gallery: an editor that cannot see the
    product's environment (``-S``: no site-packages, as in a Flatpak sandbox) lists it."""
    package = tmp_path / "plugins" / "portrait_style_editor"
    vendor_core(package / "_core")
    (package / "__init__.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LIST, "portrait_style_editor._core.plugin.gallery",
         str(package.parent)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["folder"]) == package / "_core" / "gallery"
    assert out["count"] == len(gallery.paintings()) and out["heavy"] == []
    assert all(Path(t).is_file() and Path(t).is_relative_to(package) for t in out["thumbs"])


def test_the_gallery_is_listed_in_a_sandbox_that_hides_the_product(tmp_path: Path) -> None:
    """As in a Flatpak editor: the product's checkout and environment are not visible
    (bubblewrap mounts empty folders over them), only the plug-in folder is."""
    bwrap = shutil.which("bwrap")
    python = Path(sys.executable).resolve()
    folders = {REPO, Path(sys.prefix).resolve()}
    hidden = sorted(str(f) for f in folders
                    if not any(f != g and f.is_relative_to(g) for g in folders))
    if bwrap is None:
        pytest.skip("needs bubblewrap (Debian package 'bubblewrap') to hide the product")
    if any(python.is_relative_to(h) for h in hidden):
        pytest.skip(f"the interpreter {python} lives inside the product's folders")
    package = tmp_path / "plugins" / "portrait_style_editor"
    vendor_core(package / "_core")
    (package / "__init__.py").write_text("")
    mounts = [a for h in hidden for a in ("--tmpfs", h)]
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *mounts,
           "--bind", str(tmp_path), str(tmp_path), "--chdir", str(tmp_path), str(python),
           "-S", "-c", _LIST + _HIDDEN, "portrait_style_editor._core.plugin.gallery",
           str(package.parent), *hidden]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "FLATPAK_ID": "org.kde.krita"})
    if done.returncode != 0 and "bwrap:" in done.stderr:
        pytest.skip(f"bubblewrap cannot make a sandbox here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[0])
    assert json.loads(done.stdout.splitlines()[1]) == {h: [] for h in hidden}
    assert out["count"] == len(gallery.paintings())
    assert all(Path(t).is_relative_to(package) for t in out["thumbs"])


_HIDDEN = """
import os
print(json.dumps({h: os.listdir(h) for h in sys.argv[3:]}))
for p in found:
    p.thumbnail.read_bytes(), p.image.read_bytes()
"""


def test_the_styles_command_lists_every_painting(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    listed = run_cli("styles", [], env, 60)
    assert listed.returncode == 0, listed.stderr
    for p in gallery.paintings():
        line = next((ln for ln in listed.stdout.splitlines() if ln.startswith(p.name + " ")),
                    None)
        assert line is not None, p.name
        assert all(field in line for field in (p.title, p.artist, p.year, p.technique))
    as_json = run_cli("styles", ["--json"], env, 60)
    assert as_json.returncode == 0, as_json.stderr
    entries = json.loads(as_json.stdout)
    assert [e["name"] for e in entries] == [p.name for p in gallery.paintings()]
    assert all(Path(e["image"]).is_file() and Path(e["thumbnail"]).is_file() for e in entries)
    assert entries[0]["style"] == "gallery:" + entries[0]["name"]


def test_an_unknown_gallery_name_is_refused_before_any_daemon(tmp_path: Path) -> None:
    res = run_cli("stylize", [str(SAMPLES / "astronaut.jpg"), "--style", "gallery:klimt",
                              "--out", str(tmp_path / "out")], isolated_env(tmp_path), 60)
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("portrait-style: error:")]
    assert len(errors) == 1 and "gallery:klimt_the_kiss" in errors[0], res.stderr
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "run").exists(), "no daemon should have been started"


@pytest.mark.slow
def test_stylize_with_a_gallery_painting_runs_a_real_job_with_that_painting(
        tmp_path: Path) -> None:
    """``--style gallery:NAME`` gives what the painting's file gives, and another painting
    gives something else (the default engine, a real daemon on the CPU)."""
    content = tmp_path / "photo.png"
    Image.open(SAMPLES / "astronaut.jpg").resize((160, 160)).save(content)

    with running(tmp_path / "home", "--device", "cpu") as daemon:
        def composite(style: str, out: str) -> np.ndarray:
            res = run_cli("stylize", [str(content), "--style", style, "--out",
                                      str(tmp_path / out), "--connect", daemon.endpoint, "-q"],
                          isolated_env(daemon.home), 300)
            assert res.returncode == 0, res.stderr
            return np.asarray(Image.open(tmp_path / out / "composite.png").convert("RGB"),
                              np.float32)

        wave = composite("gallery:hokusai_great_wave", "wave")
        wave_file = composite(str(GALLERY / "hokusai_great_wave.jpg"), "wave-file")
        kiss = composite("gallery:klimt_the_kiss", "kiss")
    photo = np.asarray(Image.open(content).convert("RGB"), np.float32)
    assert float(np.abs(wave - wave_file).mean()) < 0.5
    assert float(np.abs(wave - kiss).mean()) > 4.0
    assert float(np.abs(wave - photo).mean()) > 4.0
