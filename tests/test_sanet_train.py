"""SANet training: the loss definitions, the CLI contract and a CPU smoke run.

The smoke run uses a random encoder (no VGG-19 file is reachable here), so it
proves the loop, the gradients, checkpointing and resume, not stylization.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from shared_data import SHARED_DATA

from portrait_style.daemon.engines.base import RegionSettings
from portrait_style.daemon.engines.sanet import SANetEngine
from portrait_style.daemon.models.sanet import SANetModel, calc_mean_std, mean_variance_norm
from portrait_style.weights import train as train_mod
from portrait_style.weights.train import TrainConfig, sanet_losses, train

torch.set_num_threads(2)
DATA = SHARED_DATA


def public_losses(model: SANetModel, content: torch.Tensor, style: torch.Tensor):
    """The public training code's losses, pass by pass (no batching trick)."""
    mse = F.mse_loss
    fc, fs = model.encode(content), model.encode(style)
    g = model.decoder(model.transform(fc[3], fs[3], fc[4], fs[4]))
    fg = model.encode(g)
    loss_c = (mse(mean_variance_norm(fg[3]), mean_variance_norm(fc[3]))
              + mse(mean_variance_norm(fg[4]), mean_variance_norm(fc[4])))
    loss_s = 0
    for a, b in zip(fg, fs, strict=True):
        (am, asd), (bm, bsd) = calc_mean_std(a), calc_mean_std(b)
        loss_s = loss_s + mse(am, bm) + mse(asd, bsd)
    icc = model.decoder(model.transform(fc[3], fc[3], fc[4], fc[4]))
    iss = model.decoder(model.transform(fs[3], fs[3], fs[4], fs[4]))
    id1 = mse(icc, content) + mse(iss, style)
    fcc, fss = model.encode(icc), model.encode(iss)
    id2 = sum(mse(fcc[i], fc[i]) + mse(fss[i], fs[i]) for i in range(5))
    return {"content": loss_c, "style": loss_s, "id1": id1, "id2": id2}


@pytest.mark.slow
def test_batched_losses_equal_public_definitions() -> None:
    torch.manual_seed(0)
    model = SANetModel()
    train_mod._he_init(model.encoder, seed=0)
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ours, ref = sanet_losses(model, content, style), public_losses(model, content, style)
    for key in ref:
        assert float(ref[key]) > 0
        assert torch.allclose(ours[key], ref[key], rtol=1e-4, atol=1e-7), key


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_mod.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", "--content", "c", "--style", "s", "--out", "o", *argv])


def test_identity_weight_choices() -> None:
    default = train_mod.config_from_args(_parse([]))
    assert (default.lambda_content, default.lambda_style) == (1.0, 3.0)
    assert (default.lambda_id1, default.lambda_id2) == (50.0, 1.0)
    assert (default.batch, default.lr) == (5, 1e-4)
    paper = train_mod.config_from_args(_parse(["--paper-identity-weights"]))
    assert (paper.lambda_id1, paper.lambda_id2) == (1.0, 50.0)
    with pytest.raises(ValueError, match="exclusive"):
        train_mod.config_from_args(_parse(["--paper-identity-weights", "--lambda-id1", "5"]))


def _make_images(folder: Path, sources: list[Image.Image], size: int = 96) -> None:
    folder.mkdir(parents=True)
    for i, im in enumerate(sources):
        im.thumbnail((size, size))  # before convert: JPEG draft mode decodes at low resolution
        im.convert("RGB").save(folder / f"{i}.png")


def _sources(kind: str) -> list[Image.Image]:
    files = sorted((DATA / kind).glob("*.jpg"))[:4]
    if files:
        return [Image.open(p) for p in files]
    data = pytest.importorskip("skimage.data")  # shared data absent: skimage's own pictures
    pics = (data.astronaut(), data.chelsea()) if kind == "content" else (data.coffee(),
                                                                       data.rocket())
    return [Image.fromarray(a) for a in pics]


def test_refuses_without_an_encoder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _make_images(tmp_path / "c", _sources("content"))
    cfg = TrainConfig(tmp_path / "c", tmp_path / "c", tmp_path / "out", steps=1)
    with pytest.raises(ValueError, match="--vgg FILE"):
        train(cfg)
    args = _parse([])
    args.content, args.style, args.out = tmp_path / "c", tmp_path / "c", tmp_path / "out"
    assert args.func(args) == 2
    assert "--random-encoder" in capsys.readouterr().err


@pytest.mark.slow
def test_cpu_smoke_run_loss_falls_checkpoints_and_resumes(tmp_path: Path) -> None:
    _make_images(tmp_path / "content", _sources("content"))
    _make_images(tmp_path / "style", _sources("style"))
    cfg = TrainConfig(
        content_dir=tmp_path / "content", style_dir=tmp_path / "style", out_dir=tmp_path / "run",
        random_encoder=True, steps=20, batch=1, load_size=72, crop_size=64, save_every=10,
        log_every=5, workers=0, seed=0, device="cpu")
    lines: list[str] = []
    history = train(cfg, log=lines.append)
    losses = [h["loss"] for h in history]
    assert [h["step"] for h in history] == list(range(1, 21))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses
    assert any(line.startswith("step 20/20  loss ") for line in lines)
    names = {p.name for p in cfg.out_dir.iterdir()}
    assert {"vgg_normalised.pth", "decoder_iter_10.pth", "transformer_iter_10.pth",
            "decoder_iter_20.pth", "transformer_iter_20.pth", "optimizer_iter_20.pth"} <= names

    engine = SANetEngine.from_dir(cfg.out_dir)  # the folder is a complete engine
    out = engine.stylize(engine.encode_content(torch.rand(1, 3, 40, 48)),
                         engine.encode_style(torch.rand(1, 3, 40, 40)), [RegionSettings()])
    assert out.shape == (1, 3, 40, 48) and torch.isfinite(out).all()

    cfg.steps, cfg.resume = 22, True
    cfg.random_encoder = False  # the resumed run must reuse the saved encoder
    resumed = train(cfg, log=lines.append)
    assert [h["step"] for h in resumed] == [21, 22]
    assert any("resumed at step 20" in line for line in lines)
    assert resumed[0]["loss"] < first


def test_torchvision_vgg_file_is_converted_and_rescaled(tmp_path: Path) -> None:
    """A torchvision-layout VGG-19 (features.N.*) is detected, folded, rescaled, saved."""
    _make_images(tmp_path / "c", _sources("content"), size=48)
    torch.manual_seed(1)
    donor = SANetModel().encoder
    train_mod._he_init(donor, seed=1)
    donor_convs = [m for m in donor if isinstance(m, torch.nn.Conv2d)][1:]
    tv_indices = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)  # vgg19().features
    state = {}
    for i, conv in zip(tv_indices, donor_convs, strict=True):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = conv.weight, conv.bias
    state["classifier.6.weight"] = torch.zeros(10, 4)
    torch.save(state, tmp_path / "vgg19_tv.pth")
    cfg = TrainConfig(tmp_path / "c", tmp_path / "c", tmp_path / "out",
                      vgg=tmp_path / "vgg19_tv.pth", steps=0, load_size=40, crop_size=32,
                      workers=0, seed=0, device="cpu")
    lines: list[str] = []
    assert train(cfg, log=lines.append) == []
    assert any("torchvision layout" in line for line in lines)
    assert any("rescaled" in line for line in lines)
    saved = torch.load(cfg.out_dir / "vgg_normalised.pth", weights_only=True)
    std = torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(saved["0.weight"].flatten()[::4], 1 / std)  # the folded preprocessing
    enc = SANetModel().encoder
    enc.load_state_dict(saved)
    crops = train_mod.CropDataset(cfg.content_dir, 40, 32)
    with torch.no_grad():
        relu1 = torch.cat([enc[:4](crops.load(p)[None]) for p in crops.paths])
    # the rescaling was measured on random crops of these images: means close to 1
    assert 0.5 < float(relu1.mean()) < 2.0
