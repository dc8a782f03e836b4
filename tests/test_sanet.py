"""SANet: the formula, the public file layout, the merge, padding and the engine.

No pretrained SANet or VGG file is reachable here, so the weights are made by
the tests: He-initialised so features carry signal through 16 convolutions, the
decoder's last layer scaled so outputs sit inside 0..1 (comparisons of clamped
zeros would prove nothing; every comparison asserts the images differ first).
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from portrait_style.daemon.engines.base import RegionSettings
from portrait_style.daemon.engines.sanet import (
    SANetEngine,
    find_sanet_weights,
    pad_to_multiple,
)
from portrait_style.daemon.models import sanet as sanet_mod
from portrait_style.daemon.models.sanet import SANet, SANetModel, Transform, attention
from portrait_style.weights.sanet_checkpoint import (
    CheckpointMismatch,
    caffe_input_conv,
    convert_torchvision_vgg19,
    find_checkpoint_files,
    normalise_activations,
    read_state_dict,
    save_sanet,
)

torch.set_num_threads(2)

# the public checkpoints' conv positions inside each Sequential
PUBLIC_ENCODER_CONVS = (0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)
PUBLIC_DECODER_CONVS = (1, 5, 8, 11, 14, 18, 21, 25, 28)


def make_test_model(seed: int = 0) -> SANetModel:
    """Random SANet whose outputs are non-trivial and inside 0..1."""
    torch.manual_seed(seed)
    model = SANetModel()
    with torch.no_grad():
        for seq in (model.encoder, model.decoder):
            for mod in seq:
                if isinstance(mod, nn.Conv2d) and mod.kernel_size != (1, 1):
                    nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                    mod.bias.uniform_(-0.05, 0.05)
        model.decoder[-1].weight.mul_(0.03)
        model.decoder[-1].bias.fill_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SANetModel:
    return make_test_model()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    content = F.avg_pool2d(torch.rand(1, 3, 128, 128, generator=g), 2)  # 64² smooth-ish
    style = torch.rand(1, 3, 48, 80, generator=g)
    return content, style


def naive_mvn(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    mean = flat.mean(2).view(n, c, 1, 1)
    std = (flat.var(2) + eps).sqrt().view(n, c, 1, 1)
    return (x - mean) / std


def naive_sanet(module: SANet, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The paper's formula, written out with explicit bmm + softmax."""
    b, c, h, w = content.shape
    f = module.f(naive_mvn(content)).view(b, c, -1).permute(0, 2, 1)  # [B,Nc,C]
    g = module.g(naive_mvn(style)).view(b, c, -1)                     # [B,C,Ns]
    s = torch.softmax(torch.bmm(f, g), dim=-1)                        # [B,Nc,Ns]
    hv = module.h(style).view(b, c, -1)                               # [B,C,Ns]
    o = torch.bmm(hv, s.permute(0, 2, 1)).view(b, c, h, w)
    return module.out_conv(o) + content


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), v)


# --- the module and the attention ---------------------------------------------

def test_sanet_module_matches_naive_formula() -> None:
    torch.manual_seed(3)
    module = SANet(64)
    content, style = torch.randn(2, 64, 9, 7), torch.randn(2, 64, 6, 11)
    with torch.no_grad():
        ours, ref = module(content, style), naive_sanet(module, content, style)
    assert (ours - content).abs().max() > 1e-2  # the module did something
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_sdpa_path_matches_naive_attention() -> None:
    torch.manual_seed(4)
    q, k, v = torch.randn(2, 50, 32), torch.randn(2, 37, 32), torch.randn(2, 37, 32)
    ours = attention(q, k, v, budget_bytes=2**30)
    assert torch.allclose(ours, naive_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_chunked_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(5)
    q, k, v = torch.randn(1, 300, 16), torch.randn(1, 40, 16), torch.randn(1, 40, 16)
    whole = attention(q, k, v, budget_bytes=2**30)
    calls: list[int] = []
    real = F.scaled_dot_product_attention

    def counting(qq: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        calls.append(qq.shape[-2])
        return real(qq, *args, **kw)

    monkeypatch.setattr(sanet_mod.F, "scaled_dot_product_attention", counting)
    chunked = attention(q, k, v, budget_bytes=3 * 40 * 4 * 7)  # 7 query rows per chunk
    assert len(calls) == 43 and max(calls) == 7
    assert torch.allclose(chunked, whole, atol=1e-5, rtol=1e-5)


def test_huge_content_never_materialises_full_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4096² content has 512² relu4_1 queries; check every score block fits the budget."""
    nq, nk, budget = 512 * 512, 64 * 64, 256 * 2**20
    blocks: list[int] = []

    def recording(qq: torch.Tensor, kk: torch.Tensor, vv: torch.Tensor, **kw: object):
        assert kw.get("scale") == 1.0
        blocks.append(qq.shape[0] * qq.shape[-2] * kk.shape[-2] * 4)
        return torch.zeros(*qq.shape[:-1], vv.shape[-1])

    monkeypatch.setattr(sanet_mod.F, "scaled_dot_product_attention", recording)
    q = torch.zeros(1, nq, 2)  # channels do not change the score size
    attention(q, torch.zeros(1, nk, 2), torch.zeros(1, nk, 2), budget_bytes=budget)
    assert max(blocks) <= budget < nq * nk * 4
    assert sum(b // (nk * 4) for b in blocks) == nq


def test_half_overflow_falls_back_to_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    real = F.scaled_dot_product_attention
    dtypes: list[torch.dtype] = []

    def overflowing_in_half(qq: torch.Tensor, kk: torch.Tensor, vv: torch.Tensor, **kw):
        dtypes.append(qq.dtype)
        out = real(qq.float(), kk.float(), vv.float(), **kw)
        return torch.full_like(out, float("inf")).to(qq.dtype) if qq.dtype == torch.float16 \
            else out

    monkeypatch.setattr(sanet_mod.F, "scaled_dot_product_attention", overflowing_in_half)
    torch.manual_seed(8)
    q, k, v = (torch.randn(1, n, 8) for n in (5, 6, 6))
    out = attention(q.half(), k.half(), v.half())
    assert dtypes == [torch.float16, torch.float32] and out.dtype == torch.float16
    assert torch.allclose(out.float(), naive_attention(q, k, v), atol=1e-2)


# --- the merge -------------------------------------------------------------------

def test_unit_weights_equal_public_plain_sum() -> None:
    torch.manual_seed(6)
    t = Transform(32).eval()
    c4, s4 = torch.randn(1, 32, 8, 10), torch.randn(1, 32, 6, 6)
    c5, s5 = torch.randn(1, 32, 4, 5), torch.randn(1, 32, 3, 3)
    with torch.no_grad():
        public = t.merge_conv(t.merge_conv_pad(
            t.sanet4_1(c4, s4) + nn.Upsample(scale_factor=2, mode="nearest")(t.sanet5_1(c5, s5))))
        ours = t(c4, s4, c5, s5, w_low=1.0, w_high=1.0)
        assert torch.equal(ours, public)
        # and the weights do act: W_h = 0 leaves the relu4_1 branch alone
        low_only = t.merge_conv(t.merge_conv_pad(2.0 * t.sanet4_1(c4, s4)))
        assert torch.allclose(t(c4, s4, c5, s5, w_low=2.0, w_high=0.0), low_only, atol=1e-6)
        assert (low_only - public).abs().max() > 1e-2


# --- the engine ----------------------------------------------------------------

def test_engine_matches_public_evaluation(model: SANetModel, images) -> None:
    """64² (a multiple of 16): no padding, exactly the public decoder(transform(…))."""
    content, style = images
    engine = SANetEngine(model)
    out = engine.stylize(engine.encode_content(content), engine.encode_style(style),
                         [RegionSettings()])
    with torch.no_grad():
        c4, c5 = model.encode_45(content)
        s4, s5 = model.encode_45(style)
        ref = model.decoder(model.transform(c4, s4, c5, s5))
    assert float(ref.min()) > 0.0 and float(ref.max()) < 1.0  # no clamping hides anything
    assert float(ref.std()) > 1e-3
    assert torch.allclose(out, ref, atol=1e-5)


def test_alpha_zero_is_content_reconstruction(model: SANetModel, images) -> None:
    content, style = images
    engine = SANetEngine(model)
    out = engine.stylize(engine.encode_content(content), engine.encode_style(style),
                         [RegionSettings(strength=0.0), RegionSettings(strength=1.0)])
    with torch.no_grad():
        recon = model.decoder(model.encode_45(content)[0])
    assert torch.allclose(out[0:1], recon, atol=1e-5)
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_region_batch_equals_single_runs(model: SANetModel, images) -> None:
    content, style = images
    engine = SANetEngine(model)
    cs, ss = engine.encode_content(content), engine.encode_style(style)
    regions = [RegionSettings(strength=1.0, w_low=0.3, w_high=1.7),
               RegionSettings(strength=0.6, w_low=1.5, w_high=0.4)]
    both = engine.stylize(cs, ss, regions)
    singles = torch.cat([engine.stylize(cs, ss, [r]) for r in regions])
    assert both.shape == (2, 3, 64, 64)
    assert (both[0] - both[1]).abs().max() > 1e-3
    assert torch.allclose(both, singles, atol=1e-5)


def test_odd_size_is_a_crop_of_the_padded_run(model: SANetModel, images) -> None:
    """Padding is anchored top-left: a 57×45 content gives exactly the top-left
    57×45 of the network run on that content reflect-padded by us to 64×48.

    (The whole image is one attention/normalisation context, so no output pixel
    is independent of the border; "identical in the interior" can only mean
    identical to the run on the padded grid, not to a run without the border.)
    """
    content, style = images
    odd = content[:, :, :57, :45]
    engine = SANetEngine(model)
    out = engine.stylize(engine.encode_content(odd), engine.encode_style(style),
                         [RegionSettings(w_high=0.5)])
    assert out.shape == (1, 3, 57, 45)
    padded = torch.cat([odd, odd.flip(-2)[:, :, 1:8]], dim=-2)        # reflect 7 rows
    padded = torch.cat([padded, padded.flip(-1)[:, :, :, 1:4]], dim=-1)  # reflect 3 cols
    assert padded.shape[-2:] == (64, 48)
    assert torch.equal(pad_to_multiple(odd), padded)
    with torch.no_grad():
        ref = model(padded, style, w_high=0.5)[:, :, :57, :45]
    assert torch.allclose(out, ref, atol=1e-5)
    # shifting the crop by one pixel must not match: the alignment is tested
    with torch.no_grad():
        shifted = model(padded, style, w_high=0.5)[:, :, 1:58, :45]
    assert not torch.allclose(out, shifted, atol=1e-3)


def test_tiny_inputs_still_run(model: SANetModel) -> None:
    engine = SANetEngine(model)
    out = engine.stylize(engine.encode_content(torch.rand(1, 3, 13, 20)),
                         engine.encode_style(torch.rand(1, 3, 9, 9)), [RegionSettings()])
    assert out.shape == (1, 3, 13, 20) and torch.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_close_to_cpu_float(images) -> None:
    content, style = images
    cpu = SANetEngine(make_test_model())
    gpu = SANetEngine(make_test_model(), device="cuda")
    assert gpu.half
    regions = [RegionSettings(), RegionSettings(strength=0.5, w_low=1.2)]
    a = cpu.stylize(cpu.encode_content(content), cpu.encode_style(style), regions)
    b = gpu.stylize(gpu.encode_content(content), gpu.encode_style(style), regions).cpu()
    assert (a - b).abs().mean() < 5e-3


# --- files -----------------------------------------------------------------------

def test_state_dict_keys_are_the_public_layout(model: SANetModel) -> None:
    enc = [f"{i}.{p}" for i in PUBLIC_ENCODER_CONVS for p in ("weight", "bias")]
    dec = [f"{i}.{p}" for i in PUBLIC_DECODER_CONVS for p in ("weight", "bias")]
    tra = [f"sanet{lv}.{m}.{p}" for lv in ("4_1", "5_1") for m in ("f", "g", "h", "out_conv")
           for p in ("weight", "bias")] + ["merge_conv.weight", "merge_conv.bias"]
    assert list(model.encoder.state_dict()) == enc
    assert list(model.decoder.state_dict()) == dec
    assert sorted(model.transform.state_dict()) == sorted(tra)
    assert model.encoder.state_dict()["0.weight"].shape == (3, 3, 1, 1)
    assert model.decoder.state_dict()["28.weight"].shape == (3, 64, 3, 3)


def test_checkpoint_round_trip(model: SANetModel, tmp_path, images) -> None:
    written = save_sanet(model, tmp_path, iteration=500000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "decoder_iter_500000.pth", "transformer_iter_500000.pth", "vgg_normalised.pth"]
    assert list(read_state_dict(written["vgg"])) == list(model.encoder.state_dict())
    assert list(read_state_dict(written["decoder"])) == list(model.decoder.state_dict())
    raw = torch.load(written["transformer"], weights_only=True)  # a plain dict, as public
    assert type(raw) is dict and set(raw) == set(model.transform.state_dict())
    engine = SANetEngine.from_dir(tmp_path)
    for (ka, a), (kb, b) in zip(engine.model.state_dict().items(), model.state_dict().items(),
                                strict=True):
        assert ka == kb and torch.equal(a, b)


def test_mismatched_checkpoint_names_the_keys(model: SANetModel, tmp_path) -> None:
    save_sanet(model, tmp_path)
    state = read_state_dict(tmp_path / "transformer.pth")
    state["merge_conv.weight"] = torch.zeros(512, 512, 1, 1)
    del state["sanet5_1.h.bias"]
    state["sanet6_1.f.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "transformer.pth")
    with pytest.raises(CheckpointMismatch) as err:
        SANetEngine.from_dir(tmp_path)
    msg = str(err.value)
    assert "merge_conv.weight (file [512, 512, 1, 1], model [512, 512, 3, 3])" in msg
    assert "missing keys: sanet5_1.h.bias" in msg
    assert "unexpected keys: sanet6_1.f.weight" in msg
    assert "transformer.pth" in msg


def test_iteration_suffixed_discovery(model: SANetModel, tmp_path) -> None:
    def touch(name: str) -> None:
        (tmp_path / name).write_bytes(b"")

    assert find_sanet_weights(tmp_path) is None
    for name in ("decoder_iter_1000.pth", "transformer_iter_1000.pth",
                 "decoder_iter_500000.pth", "transformer_iter_500000.pth",
                 "decoder_iter_600000.pth", "optimizer_iter_500000.pth"):
        touch(name)
    assert find_sanet_weights(tmp_path) is None  # no encoder yet
    with pytest.raises(FileNotFoundError, match=re.escape("vgg (vgg_normalised.pth")):
        SANetEngine.from_dir(tmp_path)
    touch("vgg_normalised.pth")
    found = find_sanet_weights(tmp_path)
    assert found is not None
    assert found["decoder"].name == "decoder_iter_500000.pth"  # 600000 has no transformer
    assert found["transformer"].name == "transformer_iter_500000.pth"
    touch("decoder.pth")
    touch("transformer.pth")
    assert find_sanet_weights(tmp_path)["decoder"].name == "decoder.pth"


def test_mixed_iterations_are_refused(tmp_path) -> None:
    for name in ("vgg_normalised.pth", "decoder_iter_10.pth", "transformer_iter_20.pth"):
        (tmp_path / name).write_bytes(b"")
    found, missing = find_checkpoint_files(tmp_path)
    assert "decoder" not in found and any("matching decoder/transformer" in m for m in missing)


# --- VGG conversion ----------------------------------------------------------------

def torchvision_vgg19_features() -> nn.Sequential:
    """``torchvision.models.vgg19().features``, module for module (zero padding,
    floor-mode pools), built here because importing torchvision costs seconds."""
    layers: list[nn.Module] = []
    cin = 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(item)
    return nn.Sequential(*layers)


def test_torchvision_vgg_conversion() -> None:
    torch.manual_seed(7)
    features = torchvision_vgg19_features().eval()
    tv_state = {f"features.{k}": v for k, v in features.state_dict().items()}
    tv_state["classifier.0.weight"] = torch.zeros(4, 4)  # dropped: the encoder stops at conv5_4
    converted = convert_torchvision_vgg19(tv_state)
    assert convert_torchvision_vgg19(converted) == converted  # idempotent
    model = SANetModel()
    model.encoder.load_state_dict(converted)
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = model.encode(x, levels=1)[0]
        ref = features[:2]((x - mean) / std)
    # zero vs reflection padding only differ on the one-pixel border
    assert torch.allclose(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5)
    tv_convs = [m for m in features if isinstance(m, nn.Conv2d)]
    our_convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)][1:]
    for a, b in zip(tv_convs, our_convs, strict=True):
        assert torch.equal(a.weight, b.weight)


def test_caffe_input_conv_is_bgr_255_minus_mean() -> None:
    conv = nn.Conv2d(3, 3, 1)
    conv.load_state_dict({k.removeprefix("0."): v for k, v in caffe_input_conv().items()})
    rgb = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = conv(rgb).flatten()
    expected = torch.tensor([0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68])
    assert torch.allclose(out, expected, atol=1e-3)


def test_normalise_activations_keeps_features_up_to_scale() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1)[None].float() / 255
    img = F.interpolate(img, size=(48, 48), mode="area")
    model = make_test_model(seed=2)
    with torch.no_grad():
        before = model.encode(img)
        normalise_activations(model.encoder, [img])
        after = model.encode(img)
    for a, b in zip(before, after, strict=True):
        m = b.mean(dim=(0, 2, 3))
        live = a.mean(dim=(0, 2, 3)) > 1e-6
        assert torch.allclose(m[live], torch.ones_like(m[live]), atol=1e-3)
        ratio = a.mean(dim=(0, 2, 3))[live] / m[live]
        assert torch.allclose(a[:, live], b[:, live] * ratio.view(1, -1, 1, 1),
                              atol=1e-4, rtol=1e-3)
