"""The command-line host's output writer (plugin/outputs.py) and the streaming PNG encoder."""

from __future__ import annotations

import errno
import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_style.plugin import imageio, outputs
from portrait_style.plugin.imageio import ImageWriteError, encode_png
from portrait_style.plugin.ora import read_ora
from portrait_style.plugin.outputs import cut_by_mask, write_outputs

H, W = 37, 53  # odd sizes: bands, strides and thumbnails must not assume even ones



def compose(background: np.ndarray, portrait: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference composite (whole-frame integer formula), background's alpha kept."""
    m = mask.astype(np.uint32)[..., None]
    rgb = (portrait[..., :3].astype(np.uint32) * m
           + background[..., :3].astype(np.uint32) * (255 - m) + 127) // 255
    out = rgb.astype(np.uint8)
    if background.shape[2] == 4:
        out = np.concatenate([out, background[..., 3:4]], axis=2)
    return out

def _layers(channels: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, (H, W, channels), dtype=np.uint8)
    pt = rng.integers(0, 256, (H, W, channels), dtype=np.uint8)
    if channels == 4:
        pt[..., 3] = bg[..., 3]  # both carry the source's alpha
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 3:] = 255
    mask[:, W // 3 - 3:W // 3] = 128  # a soft edge
    return {"background": bg, "portrait": pt, "mask": mask,
            "composite": compose(bg, pt, mask)}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (5, 7, 1), (300, 2, 3), (33, 17, 4)])
def test_png_round_trip(shape: tuple[int, ...]) -> None:
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(arr, dpi=300))) as img:
        assert np.array_equal(np.asarray(img), arr.reshape(arr.shape[:2]) if arr.ndim == 3
                              and arr.shape[2] == 1 else arr)
        assert round(img.info["dpi"][0]) == 300


def test_png_bands_join_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows handed to zlib in many small bands decode to the same picture."""
    monkeypatch.setattr(imageio, "_PNG_BAND_BYTES", 100)
    arr = np.random.default_rng(2).integers(0, 256, (41, 9, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(arr)))), arr)


@pytest.mark.parametrize("channels", [3, 4])
def test_writes_every_file_with_the_ora_layout(tmp_path: Path, channels: int) -> None:
    layers = _layers(channels)
    source = np.full((H, W, channels), 77, np.uint8)
    timings: dict[str, float] = {}
    paths = write_outputs(tmp_path, layers, source_name="photo", source=source, dpi=300,
                          group_name="Portrait style — Starry", timings=timings)
    assert [p.name for p in paths] == ["background.png", "portrait.png", "mask.png",
                                       "composite.png", "layers.ora"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for name in ("background", "portrait", "mask", "composite"):
        assert np.array_equal(_png(tmp_path / f"{name}.png"), layers[name]), name
    assert timings["write_s"] > 0 and {"background", "layers.ora"} <= set(timings)

    doc = read_ora(tmp_path / "layers.ora")
    assert (doc.width, doc.height) == (W, H)
    group, bottom = doc.root.children
    assert group.name == "Portrait style — Starry"
    assert [c.name for c in group.children] == ["Person mask", "Portrait", "Background"]
    mask_layer, portrait, background = group.children
    assert not mask_layer.visible and portrait.visible and background.visible
    assert np.array_equal(mask_layer.pixels[..., 0], layers["mask"])
    assert (mask_layer.pixels[..., 3] == 255).all()
    assert np.array_equal(portrait.pixels, cut_by_mask(layers["portrait"], layers["mask"]))
    assert np.array_equal(background.pixels[..., :channels], layers["background"])
    assert bottom.name == "photo" and np.array_equal(bottom.pixels[..., :channels], source)
    assert np.array_equal(doc.merged[..., :channels], layers["composite"])
    with zipfile.ZipFile(tmp_path / "layers.ora") as zf:
        image = ET.fromstring(zf.read("stack.xml"))
        assert (image.get("xres"), image.get("yres")) == ("300", "300")
        members = {layer.name: zf.read(layer.src) for layer in doc.layers()}
        merged = zf.read("mergedimage.png")
    # each encoding is reused, not redone: the ORA members are the PNG files' bytes
    assert members["Background"] == (tmp_path / "background.png").read_bytes()
    assert members["Person mask"] == (tmp_path / "mask.png").read_bytes()
    assert merged == (tmp_path / "composite.png").read_bytes()


def test_cut_alpha_is_mask_times_source_alpha() -> None:
    layers = _layers(4)
    cut = cut_by_mask(layers["portrait"], layers["mask"])
    want = (layers["portrait"][..., 3].astype(np.uint32) * layers["mask"] + 127) // 255
    assert np.array_equal(cut[..., 3], want.astype(np.uint8))
    seen = want > 0
    assert np.array_equal(cut[seen][:, :3], layers["portrait"][seen][:, :3])
    assert (cut[~seen] == 0).all()  # invisible colour is zeroed (deflates fast)
    opaque = cut_by_mask(layers["portrait"][..., :3], layers["mask"])
    assert np.array_equal(opaque[..., 3], layers["mask"])


def test_composite_is_composed_only_when_absent(tmp_path: Path) -> None:
    layers = _layers(4)
    want = layers.pop("composite")
    write_outputs(tmp_path, layers, source_name="photo")
    assert np.array_equal(_png(tmp_path / "composite.png"), want)  # same as core.compose
    # a composite that is sent is written as is, never recomputed
    sent = np.zeros_like(want)
    write_outputs(tmp_path, {**layers, "composite": sent}, source_name="photo")
    assert np.array_equal(_png(tmp_path / "composite.png"), sent)
    assert (read_ora(tmp_path / "layers.ora").merged == 0).all()


def test_subsets_and_no_source(tmp_path: Path) -> None:
    layers = _layers(3)
    paths = write_outputs(tmp_path / "a", {"portrait": layers["portrait"]}, source_name="p")
    assert [p.name for p in paths] == ["portrait.png"]
    paths = write_outputs(tmp_path / "b", {k: layers[k] for k in ("background", "portrait",
                                                                   "mask")}, source_name="p")
    assert [p.name for p in paths][-1] == "layers.ora"
    doc = read_ora(paths[-1])
    assert len(doc.root.children) == 1  # no source pixels given: no source layer


def test_offset_places_layers_on_a_larger_canvas(tmp_path: Path) -> None:
    layers = _layers(3)
    write_outputs(tmp_path, layers, source_name="photo", offset=(5, 3))
    doc = read_ora(tmp_path / "layers.ora")
    assert (doc.width, doc.height) == (W + 5, H + 3)
    assert all((layer.x, layer.y) == (5, 3) for layer in doc.layers())
    assert doc.merged.shape == (H + 3, W + 5, 4)
    assert np.array_equal(doc.merged[3:, 5:, :3], layers["composite"])
    assert (doc.merged[:3, :, 3] == 0).all() and (doc.merged[:, :5, 3] == 0).all()


def test_parallel_and_serial_write_the_same_bytes(tmp_path: Path) -> None:
    layers = _layers(4)
    write_outputs(tmp_path / "p", layers, source_name="x", parallel=True)
    write_outputs(tmp_path / "s", layers, source_name="x", parallel=False)
    for name in ("background.png", "portrait.png", "mask.png", "composite.png"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()


@pytest.mark.parametrize("parallel", [True, False])
def test_a_full_disk_leaves_no_partial_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               parallel: bool) -> None:
    """Disk full while writing one file: no output appears, earlier outputs survive."""
    layers = _layers(3)
    (tmp_path / "mask.png").write_bytes(b"from an earlier run")
    real = outputs.write_png

    def failing(fh, arr, **kw):  # noqa: ANN001, ANN003, ANN202
        if len(arr.shape) == 2:  # the mask
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fh, arr, **kw)

    monkeypatch.setattr(outputs, "write_png", failing)
    with pytest.raises(ImageWriteError, match=r"mask\.png.*No space left"):
        write_outputs(tmp_path, layers, source_name="photo", parallel=parallel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]  # no temporaries
    assert (tmp_path / "mask.png").read_bytes() == b"from an earlier run"


def test_bad_arrays_are_refused_before_any_file(tmp_path: Path) -> None:
    layers = _layers(3)
    with pytest.raises(ValueError, match="differ in size"):
        write_outputs(tmp_path, {**layers, "mask": layers["mask"][:-1]}, source_name="p")
    with pytest.raises(ValueError, match="mask must be"):
        write_outputs(tmp_path, {**layers, "mask": layers["background"]}, source_name="p")
    with pytest.raises(ValueError, match="unknown layers"):
        write_outputs(tmp_path, {"photo": layers["background"]}, source_name="p")
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_png_with_the_standard_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the optional isal package the encoder falls back to zlib, same pixels."""
    import zlib

    monkeypatch.setattr(imageio, "_deflate", zlib)
    monkeypatch.setattr(imageio, "_MAX_LEVEL", 9)
    arr = np.random.default_rng(3).integers(0, 256, (19, 23, 4), dtype=np.uint8)
    for level in (1, 6):
        with Image.open(io.BytesIO(encode_png(arr, compress_level=level))) as img:
            assert np.array_equal(np.asarray(img), arr)
