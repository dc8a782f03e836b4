"""MediaPipe's selfie segmenter and face models as torch modules, checked against the real thing.

The reference is Google's own TFLite runtime (``ai-edge-litert``, which also
runs MediaPipe's custom transposed conv) on the very ``.tflite`` files our
converters read, fed the identical input tensor. Real photos only: the
astronaut from scikit-image always, the portraits in ../shared/data when present.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_data import SHARED_DATA

from portrait_style.daemon.engines.segmenters import (
    TORCHVISION_SEGMENTERS,
    SelfieSegmenter,
    TorchvisionSegmenter,
)
from portrait_style.daemon.models.face import (
    BlazeFaceNet,
    FaceDetector,
    FaceLandmarker,
    FaceMeshNet,
    ssd_anchor_centers,
)
from portrait_style.daemon.models.selfie import MODEL_SIZES, SelfieSegmentationNet
from portrait_style.weights import tflite_reader
from portrait_style.weights.fetch import WeightsUnavailable, fetch_file

CONTENT = SHARED_DATA / "content"
PORTRAITS = ("obama_official_portrait_2012.jpg", "grace_hopper.jpg", "kodak_girl_in_red.jpg")
SELFIE_FILES = {"general": "selfie_segmentation", "landscape": "selfie_segmentation_landscape"}


# -- helpers -----------------------------------------------------------------------------
def _model_file(name: str) -> Path:
    try:
        return fetch_file(name)
    except WeightsUnavailable as exc:
        pytest.skip(f"model file {name} unavailable (needs the mediapipe wheel from PyPI): {exc}")


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def _astronaut() -> torch.Tensor:
    from skimage import data

    return _to_tensor(data.astronaut())


def _photo(name: str, long_side: int = 256) -> torch.Tensor:
    from PIL import Image

    path = CONTENT / name
    if not path.exists():
        pytest.skip(f"test image {path} is absent (../shared/data not beside the repo)")
    image = Image.open(path).convert("RGB")
    image.thumbnail((long_side, long_side))
    return _to_tensor(np.asarray(image))


def _portraits() -> list[tuple[str, torch.Tensor]]:
    photos = [("astronaut", _astronaut())]
    photos += [(n, _photo(n)) for n in PORTRAITS if (CONTENT / n).exists()]
    return photos


def _litert(path: Path, nchw: torch.Tensor) -> dict[str, np.ndarray]:
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="reference runtime absent")
    interpreter = litert.Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    nhwc = nchw.permute(0, 2, 3, 1).contiguous().numpy()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], nhwc)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


@pytest.fixture(scope="module")
def selfie_nets() -> dict[str, SelfieSegmentationNet]:
    nets = {}
    for variant, name in SELFIE_FILES.items():
        convert = tflite_reader.convert_selfie if variant == "general" else (
            tflite_reader.convert_selfie_landscape)
        net = SelfieSegmentationNet(variant)  # type: ignore[arg-type]
        net.load_state_dict(convert(_model_file(name)))
        nets[variant] = net.eval()
    return nets


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    net = BlazeFaceNet()
    net.load_state_dict(tflite_reader.convert_face_detector(
        _model_file("face_detection_short_range")))
    return FaceDetector(net)


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    net = FaceMeshNet()
    net.load_state_dict(tflite_reader.convert_face_landmarker(_model_file("face_landmark")))
    return FaceLandmarker(net)


# -- the reader --------------------------------------------------------------------------
def test_reader_lists_ops_and_dequantizes_float16_weights() -> None:
    model = tflite_reader.TfliteModel.from_file(_model_file("selfie_segmentation"))
    ops = {op.op for op in model.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "RESIZE_BILINEAR",
            "Convolution2DTransposeBias", "DEQUANTIZE"} <= ops
    conv = next(model.ops("CONV_2D"))
    assert conv.options["StrideW"] == 2 and model.tensors[conv.inputs[0]].shape == (1, 256, 256, 3)
    kernel = model.constant(conv.inputs[1])
    assert kernel.dtype == np.float32 and kernel.shape == (16, 3, 3, 3)
    source = model.producer(conv.inputs[1])
    assert source is not None and source.op == "DEQUANTIZE"
    assert model.tensors[source.inputs[0]].dtype == np.float16
    resize = next(model.ops("RESIZE_BILINEAR"))
    assert resize.options == {"AlignCorners": False, "HalfPixelCenters": True}


def test_converter_names_what_it_cannot_map() -> None:
    """The landscape file's last layer has another Keras name; the general net must say so."""
    model = tflite_reader.TfliteModel.from_file(_model_file("selfie_segmentation_landscape"))
    with pytest.raises(tflite_reader.UnmappedWeights, match=r"segment.*conv2d_transpose"):
        tflite_reader.state_dict_for(model, SelfieSegmentationNet("general"))


# -- selfie segmentation ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["general", "landscape"])
def test_selfie_matches_tflite_runtime(selfie_nets, variant: str) -> None:
    net = selfie_nets[variant]
    path = _model_file(SELFIE_FILES[variant])
    for name, photo in _portraits():
        x = torch.nn.functional.interpolate(
            photo, size=MODEL_SIZES[variant], mode="bilinear", antialias=True)
        with torch.no_grad():
            ours = net(x)[0, 0].numpy()
        ref = next(iter(_litert(path, x).values()))[0, ..., 0]
        err = float(np.abs(ours - ref).max())
        assert err <= 1e-3, f"{variant} on {name}: max abs diff {err:.2e}"
        assert ref.mean() > 0.15, f"{name}: reference finds no person; wrong test image?"


def test_selfie_segmenter_finds_the_person_and_not_a_landscape() -> None:
    seg = SelfieSegmenter.load("cpu", "general")
    prob = seg.person_probability(_astronaut())
    assert prob.shape == (1, 1, 256, 256) and prob.dtype == torch.float32
    assert prob.mean() > 0.3
    # centre of the astronaut's face (see the detector test) is person, the top-left corner sky
    assert prob[0, 0, 64, 112] > 0.9 and prob[0, 0, 5, 5] < 0.1
    for name in ("nonportrait_kodak_market_place_esslingen.jpg",
                 "nonportrait_kodak_mountain_stream.jpg"):
        scene = seg.person_probability(_photo(name))
        assert scene.mean() < 0.05, f"{name}: mean person probability {float(scene.mean()):.3f}"


def test_selfie_segmenter_any_size_and_auto_variant() -> None:
    seg = SelfieSegmenter.load("cpu", "auto")
    wide = torch.rand(1, 3, 90, 200)
    square = torch.rand(1, 3, 300, 280)
    assert seg.variant_for(90, 200) == "landscape"
    assert seg.person_probability(wide).shape == (1, 1, 144, 256)
    assert seg.person_probability(square).shape == (1, 1, 256, 256)
    with pytest.raises(ValueError, match="RGB"):
        seg.person_probability(torch.rand(1, 4, 32, 32))


# -- face detector --------------------------------------------------------------------------
def test_anchors_match_mediapipe_layout() -> None:
    anchors = ssd_anchor_centers()
    assert anchors.shape == (896, 2)
    assert torch.allclose(anchors[0], torch.tensor([0.5 / 16, 0.5 / 16]))
    assert torch.equal(anchors[0], anchors[1])  # two anchors per 16×16 cell
    assert torch.allclose(anchors[512], torch.tensor([0.5 / 8, 0.5 / 8]))
    assert torch.equal(anchors[512], anchors[517]) and not torch.equal(anchors[512], anchors[518])


@pytest.mark.slow
def test_detector_matches_tflite_runtime_and_finds_one_astronaut(detector) -> None:
    path = _model_file("face_detection_short_range")
    for name, photo in _portraits():
        x, _, _ = detector.letterbox(photo)
        with torch.no_grad():
            logits, raw = detector.net(x)
        ref = _litert(path, x)
        assert np.abs(logits.numpy() - ref["classificators"][..., 0]).max() < 1e-3, name
        assert np.abs(raw.numpy() - ref["regressors"]).max() < 1e-2, name  # 128-px units
        faces = detector(photo)
        assert len(faces) == 1, f"{name}: {len(faces)} faces"
    faces = detector(_astronaut())
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert face.score > 0.8
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # the face, not the suit or the flag
    right_eye, left_eye, nose = face.keypoints[:3]
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye is on the image's left
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1


def test_detector_sees_no_face_in_a_landscape(detector) -> None:
    assert detector(_photo("nonportrait_kodak_mountain_stream.jpg")) == []


# -- face landmarks -------------------------------------------------------------------------
@pytest.mark.slow
def test_landmarks_match_tflite_runtime(detector, landmarker) -> None:
    path = _model_file("face_landmark")
    worst = 0.0
    for name, photo in _portraits():
        face = detector(photo)[0]
        crop, _, _ = landmarker.crop(photo, face, face.rotation)
        ours, presence = landmarker(crop)
        ref = _litert(path, crop)
        ref_landmarks = ref["conv2d_21"].reshape(1, 468, 3)
        err = float(np.abs(ours.numpy() - ref_landmarks).max())
        worst = max(worst, err)
        assert err < 1e-2, f"{name}: landmarks differ by {err:.2e} crop px"
        ref_presence = 1 / (1 + np.exp(-ref["conv2d_31"].reshape(-1)))
        assert abs(float(presence[0]) - float(ref_presence[0])) < 1e-4
        assert presence[0] > 0.9, f"{name}: presence {float(presence[0]):.3f} on a real face"
    print(f"worst landmark difference: {worst:.2e} crop pixels")


def test_landmarks_in_image_land_on_the_face(detector, landmarker) -> None:
    photo = _astronaut()
    face = detector(photo)[0]
    xy, presence = landmarker.landmarks_in_image(photo, face.box)
    assert xy.shape == (468, 2) and presence > 0.9
    x0, y0, x1, y1 = face.box
    pad = 0.25 * (x1 - x0)
    assert (xy[:, 0] > x0 - pad).all() and (xy[:, 0] < x1 + pad).all()
    assert (xy[:, 1] > y0 - pad).all() and (xy[:, 1] < y1 + pad).all()
    # mesh index 1 is the nose tip; the detector's keypoint 2 is the nose tip too
    assert torch.dist(xy[1], face.keypoints[2]) < 0.1 * (x1 - x0)
    # a rotated crop describes the same face: the two meshes agree to a couple of pixels
    xy_rot, _ = landmarker.landmarks_in_image(photo, face, rotation=face.rotation)
    assert (xy_rot - xy).norm(dim=1).mean() < 2.0


# -- torchvision segmenters -----------------------------------------------------------------
@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "deeplabv3_resnet50"])
def test_torchvision_segmenter_runs_with_random_weights(arch: str) -> None:
    from torchvision.models import segmentation

    torch.manual_seed(0)
    # the official files' layout, aux head included where torchvision trains one
    builder = getattr(segmentation, arch)
    has_aux = arch.startswith("deeplab")
    official_layout = builder(weights=None, weights_backbone=None, num_classes=21,
                              aux_loss=has_aux).state_dict()
    seg = TorchvisionSegmenter(arch, official_layout, "cpu", max_side=64)
    prob = seg.person_probability(torch.rand(1, 3, 48, 80))
    assert prob.shape == (1, 1, 38, 64)
    assert ((prob >= 0) & (prob <= 1)).all()


def test_torchvision_segmenter_missing_file_says_how_to_supply_it(monkeypatch, tmp_path) -> None:
    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setenv("PORTRAIT_STYLE_WEIGHTS_CACHE", str(tmp_path))
    monkeypatch.delenv("PORTRAIT_STYLE_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert "deeplabv3_resnet50" in TORCHVISION_SEGMENTERS
    with pytest.raises(WeightsUnavailable) as caught:
        TorchvisionSegmenter.load("deeplabv3_resnet50")
    message = str(caught.value)
    assert "deeplabv3_resnet50_coco-cd0a2569.pth" in message
    assert "https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth" in message
    assert "portrait-style weights add deeplabv3_resnet50_coco" in message
    with pytest.raises(ValueError, match="unknown torchvision segmenter"):
        TorchvisionSegmenter.load("segnet")
