"""The main job as a user runs it: the command-line host against a real daemon
subprocess on the embedded default models (MediaPipe selfie segmenter + Magenta).

These check the product's promises on a real portrait, not just that files
appear: the mask finds the person, the background is restyled, the portrait
layer stays closer to the photo than the background layer, the composite is
the mask blend, sizes and alpha match the photo, and the photo is untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import Daemon, isolated_env, run_cli, running
from PIL import Image, ImageFilter

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[1] / "portrait_style" / "samples"


@pytest.fixture(scope="module")
def real_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``portrait-style serve`` with the default engine choice on the CPU."""
    with running(tmp_path_factory.mktemp("e2e-home"), "--device", "cpu") as daemon:
        yield daemon


def _stylize(daemon: Daemon, content: Path, out: Path, *extra: str) -> dict[str, np.ndarray]:
    args = [str(content), "--style", str(SAMPLES / "starry_night.jpg"), "--out", str(out),
            "--connect", daemon.endpoint, "-q", *extra]
    result = run_cli("stylize", args, isolated_env(daemon.home))
    assert result.returncode == 0, result.stderr
    return {name: np.asarray(Image.open(out / f"{name}.png"))
            for name in ("background", "portrait", "mask", "composite")}


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[..., :3].astype(np.float32) - b[..., :3].astype(np.float32)).mean())


def test_hello_names_the_embedded_engine_and_why(real_daemon: Daemon) -> None:
    from portrait_style.protocol.client import DaemonClient

    with DaemonClient(real_daemon.endpoint, timeout_s=30) as client:
        hello = client.hello()
    text = repr(hello)
    assert "magenta" in text
    assert "SANet weights not installed" in text


def test_portrait_layers_on_a_real_photo(real_daemon: Daemon, tmp_path: Path) -> None:
    content = SAMPLES / "astronaut.jpg"
    before = hashlib.sha256(content.read_bytes()).hexdigest()
    photo = np.asarray(Image.open(content).convert("RGB"))
    layers = _stylize(real_daemon, content, tmp_path / "out")

    for name in ("background", "portrait", "composite"):
        assert layers[name].shape == photo.shape, name
    mask = layers["mask"]
    assert mask.shape == photo.shape[:2] and mask.dtype == np.uint8
    person = mask > 127
    assert 0.15 < person.mean() < 0.85, "the astronaut covers a good part of the frame"
    assert person[200:260, 220:280].mean() > 0.95, "her face is inside the mask"
    assert not person[:60, :60].any(), "the top-left corner is background (the flag)"

    background_change = _mean_abs(layers["background"], photo)
    assert background_change > 25, "the background pass restyles the frame"
    # the portrait is painted in the painting's colours but keeps the face's own detail
    face = (slice(190, 270), slice(210, 290))

    def detail(a: np.ndarray) -> np.ndarray:
        grey = Image.fromarray(np.ascontiguousarray(a[face][..., :3])).convert("L")
        blurred = np.asarray(grey.filter(ImageFilter.GaussianBlur(4)), np.float32)
        return np.asarray(grey, np.float32) - blurred

    def detail_change(a: np.ndarray) -> float:
        return float(np.abs(detail(a) - detail(photo)).mean())

    assert detail_change(layers["portrait"]) < 0.7 * detail_change(layers["background"]), \
        "the portrait pass keeps more of the face's detail"

    alpha = mask.astype(np.float32)[..., None] / 255
    blend = alpha * layers["portrait"] + (1 - alpha) * layers["background"]
    assert np.abs(blend - layers["composite"]).max() <= 2, "composite = mask blend"

    ora = tmp_path / "out" / "layers.ora"
    assert ora.stat().st_size > 0
    assert hashlib.sha256(content.read_bytes()).hexdigest() == before, "photo untouched"


def test_rgba_alpha_survives_and_whole_image_has_an_empty_mask(
        real_daemon: Daemon, tmp_path: Path) -> None:
    photo = Image.open(SAMPLES / "astronaut.jpg").convert("RGBA").resize((200, 160))
    rgba = np.asarray(photo).copy()
    rgba[..., 3] = np.linspace(0, 255, rgba.shape[1], dtype=np.uint8)[None, :]
    content = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(content)

    layers = _stylize(real_daemon, content, tmp_path / "ours")
    for name in ("background", "portrait", "composite"):
        assert layers[name].shape == rgba.shape, name
        assert np.array_equal(layers[name][..., 3], rgba[..., 3]), f"{name} keeps the alpha"

    plain = _stylize(real_daemon, content, tmp_path / "plain", "--whole-image")
    assert not plain["mask"].any(), "whole-image transfer has no person mask"
    assert np.array_equal(plain["portrait"], plain["background"])


def test_a_photo_without_a_person_says_so(real_daemon: Daemon, tmp_path: Path,
                                         shared_data: Path) -> None:
    scene = shared_data / "content" / "nonportrait_kodak_mountain_stream.jpg"
    if not scene.exists():
        pytest.skip(f"{scene} is absent")
    small = tmp_path / "scene.png"
    Image.open(scene).convert("RGB").resize((256, 170)).save(small)
    args = [str(small), "--style", str(SAMPLES / "starry_night.jpg"), "--out",
            str(tmp_path / "out"), "--connect", real_daemon.endpoint, "-q"]
    result = run_cli("stylize", args, isolated_env(real_daemon.home))
    assert result.returncode == 0, result.stderr
    assert "no person" in result.stderr.lower()
    mask = np.asarray(Image.open(tmp_path / "out" / "mask.png"))
    assert mask.max() == 0
