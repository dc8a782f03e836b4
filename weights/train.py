"""``portrait-style train``: train SANet's transformer and decoder on our own images.

No pretrained SANet is reachable, so the engine must be trainable here. The
recipe is the SANet authors' (and the portrait paper's): content photos +
style paintings, each resized so the shorter side is 512 and randomly cropped
to 256; Adam (lr 1e-4, the public decay ``lr / (1 + 5e-5·step)``), batch 5;
the VGG encoder frozen. Losses, all MSE:

* content: mean-variance-normalised relu4_1 and relu5_1 of the output vs the
  content's (structure without the content's feature statistics);
* style: per-channel mean and std at relu1_1 … relu5_1 vs the style's;
* identity 1: the net fed (content, content) must return the content, likewise
  (style, style), in pixels;
* identity 2: the same two reconstructions compared at all five VGG levels.

Total ``λc·Lc + λs·Ls + λid1·Lid1 + λid2·Lid2`` with λ = 1, 3, 50, 1 (the
SANet authors' corrected values, what public training uses); the portrait
paper's printed λid1 = 1, λid2 = 50 with ``--paper-identity-weights``.

Checkpoints are the public layout (``decoder_iter_N.pth``,
``transformer_iter_N.pth``, ``optimizer_iter_N.pth`` plus the encoder as
``vgg_normalised.pth``), so the output folder loads straight into
``SANetEngine.from_dir`` and into other SANet code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..daemon.models.sanet import SANetModel, calc_mean_std, mean_variance_norm
from .sanet_checkpoint import (
    convert_torchvision_vgg19,
    iterations_in,
    load_part,
    load_vgg_any,
    normalise_activations,
    read_state_dict,
    save_part,
    save_sanet,
)

__all__ = ["TrainConfig", "add_parser", "sanet_losses", "train"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
#: (λ_id1, λ_id2): the SANet authors' corrected pair and the seed paper's printed pair
CORRECTED_IDENTITY_WEIGHTS = (50.0, 1.0)
PAPER_IDENTITY_WEIGHTS = (1.0, 50.0)


@dataclass
class TrainConfig:
    """Everything one training run needs; the CLI maps flags onto it 1:1."""

    content_dir: Path
    style_dir: Path
    out_dir: Path
    vgg: Path | None = None
    random_encoder: bool = False
    normalise_vgg: bool | None = None  # None: only for a torchvision-layout VGG file
    steps: int = 160_000
    batch: int = 5
    lr: float = 1e-4
    lr_decay: float = 5e-5
    lambda_content: float = 1.0
    lambda_style: float = 3.0
    lambda_id1: float = CORRECTED_IDENTITY_WEIGHTS[0]
    lambda_id2: float = CORRECTED_IDENTITY_WEIGHTS[1]
    load_size: int = 512
    crop_size: int = 256
    save_every: int = 1000
    log_every: int = 10
    resume: bool = False
    device: str | None = None
    amp: bool | None = None  # None: on for CUDA
    workers: int = 2
    seed: int | None = None


# --- data ----------------------------------------------------------------------

def list_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive), sorted for reproducibility."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return paths


class CropDataset(Dataset):
    """Images resized so the shorter side is ``load_size``, then a random ``crop_size`` crop.

    Keeping the aspect ratio (rather than squashing to a square) keeps faces and
    brush strokes undistorted; the crop's randomness comes from ``random`` seeded
    per worker by the DataLoader.
    """

    def __init__(self, root: Path, load_size: int, crop_size: int) -> None:
        if crop_size > load_size:
            raise ValueError(f"crop size {crop_size} exceeds load size {load_size}")
        self.paths = list_images(root)
        self.load_size, self.crop_size = load_size, crop_size

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = self.load_size / min(w, h)
            size = (max(self.crop_size, round(w * scale)), max(self.crop_size, round(h * scale)))
            im = im.resize(size, Image.BICUBIC, reducing_gap=3.0)
            x0 = random.randint(0, size[0] - self.crop_size)
            y0 = random.randint(0, size[1] - self.crop_size)
            im = im.crop((x0, y0, x0 + self.crop_size, y0 + self.crop_size))
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return data.view(self.crop_size, self.crop_size, 3).permute(2, 0, 1).float() / 255.0

    def __getitem__(self, index: int) -> torch.Tensor:
        # a corrupt file in an 80k-image folder must not stop a day-long run
        for attempt in range(len(self.paths)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                return self.load(path)
            except (OSError, ValueError) as exc:
                print(f"train: skipping unreadable {path}: {exc}", file=sys.stderr)
        raise OSError(f"no readable image among {len(self.paths)} files")


class EndlessSampler(Sampler[int]):
    """Shuffled passes over the dataset, forever (training is counted in steps)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.n, generator=g).tolist()


def _seed_worker(worker_id: int) -> None:
    random.seed(torch.initial_seed() % 2**32)


def endless_batches(
    root: Path, cfg: TrainConfig, seed: int, device: torch.device
) -> Iterator[torch.Tensor]:
    ds = CropDataset(root, cfg.load_size, cfg.crop_size)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=cfg.batch, sampler=EndlessSampler(len(ds), seed),
                        num_workers=cfg.workers, worker_init_fn=_seed_worker, generator=g,
                        pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=cfg.workers > 0)
    for batch in loader:
        yield batch.to(device, non_blocking=True)


# --- losses ------------------------------------------------------------------------

def _style_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    am, astd = calc_mean_std(a)
    bm, bstd = calc_mean_std(b)
    return F.mse_loss(am, bm) + F.mse_loss(astd, bstd)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a.float(), b.float())


def sanet_losses(
    model: SANetModel, content: torch.Tensor, style: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The four SANet losses for a batch of (content, style) pairs.

    Same definitions as the public training code; the three transformer +
    decoder passes (stylized, content identity, style identity) run as one
    batch, and so do the three encodings of their outputs.
    """
    b = content.shape[0]
    with torch.no_grad():
        fc = model.encode(content)
        fs = model.encode(style)
    # queries from (content, content, style), keys/values from (style, content, style)
    q4, q5 = (torch.cat([fc[i], fc[i], fs[i]]) for i in (3, 4))
    k4, k5 = (torch.cat([fs[i], fc[i], fs[i]]) for i in (3, 4))
    images = model.decoder(model.transform(q4, k4, q5, k5))
    feats = model.encode(images)
    out, icc, iss = images.split(b)
    f_out = [f[:b] for f in feats]
    f_cc = [f[b: 2 * b] for f in feats]
    f_ss = [f[2 * b:] for f in feats]
    loss_c = sum(_mse(mean_variance_norm(f_out[i]), mean_variance_norm(fc[i])) for i in (3, 4))
    loss_s = sum(_style_loss(f_out[i], fs[i]) for i in range(5))
    id1 = _mse(icc, content) + _mse(iss, style)
    id2 = sum(_mse(f_cc[i], fc[i]) + _mse(f_ss[i], fs[i]) for i in range(5))
    return {"content": loss_c, "style": loss_s, "id1": id1, "id2": id2}


# --- model set-up ----------------------------------------------------------------------

def _he_init(encoder: nn.Sequential, seed: int) -> None:
    """Random encoder for smoke tests: He init so features reach relu5_1 alive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in encoder:
            if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g)
                               * math.sqrt(2.0 / (m.in_channels * 9)))
                m.bias.zero_()


def _load_encoder(model: SANetModel, cfg: TrainConfig, seed: int, log: Callable[[str], None]):
    if cfg.vgg is not None:
        raw = read_state_dict(cfg.vgg)
        torchvision_layout = any(k.startswith("features.") for k in raw)
        load_part(model.encoder, convert_torchvision_vgg19(raw), f"VGG file {cfg.vgg}")
        normalise = torchvision_layout if cfg.normalise_vgg is None else cfg.normalise_vgg
        if normalise:
            ds = CropDataset(cfg.content_dir, cfg.load_size, cfg.crop_size)
            picks = [ds[i][None] for i in range(min(16, len(ds)))]
            normalise_activations(model.encoder, picks)
            log(f"train: rescaled the encoder's activations on {len(picks)} content images")
        log(f"train: encoder from {cfg.vgg}"
            + (" (torchvision layout, converted)" if torchvision_layout else ""))
    elif cfg.resume and (cfg.out_dir / "vgg_normalised.pth").is_file():
        load_part(model.encoder, load_vgg_any(cfg.out_dir / "vgg_normalised.pth"),
                  "encoder of the run being resumed")
        log(f"train: encoder from {cfg.out_dir / 'vgg_normalised.pth'} (resumed run)")
    elif cfg.random_encoder:
        _he_init(model.encoder, seed)
        log("train: RANDOM encoder (smoke test only: the result will not stylize)")
    else:
        raise ValueError(
            "train needs a VGG-19 encoder: pass --vgg FILE (the public vgg_normalised.pth, or "
            "torchvision's ImageNet vgg19 state dict, converted automatically); "
            "--random-encoder is for smoke tests only")


def _resume_point(out_dir: Path) -> int | None:
    dec = iterations_in(out_dir, "decoder_iter_")
    tra = iterations_in(out_dir, "transformer_iter_")
    common = set(dec) & set(tra)
    return max(common) if common else None


def _autocast(device: torch.device, enabled: bool) -> tuple[Any, torch.dtype | None]:
    if not enabled:
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() \
        else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype


# --- the loop ---------------------------------------------------------------------------

def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> list[dict[str, float]]:
    """Run (or resume) training; returns one record of losses per step run."""
    seed = cfg.seed if cfg.seed is not None else random.randrange(2**31)
    torch.manual_seed(seed)
    random.seed(seed)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    weights = (cfg.lambda_content, cfg.lambda_style, cfg.lambda_id1, cfg.lambda_id2)
    model = SANetModel()
    _load_encoder(model, cfg, seed, log)
    model.encoder.requires_grad_(False).eval()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)

    start = 0
    if cfg.resume:
        found = _resume_point(cfg.out_dir)
        if found is None:
            log(f"train: nothing to resume in {cfg.out_dir}, starting at step 0")
        else:
            start = found
            load_part(model.decoder, read_state_dict(cfg.out_dir / f"decoder_iter_{start}.pth"),
                      "decoder checkpoint")
            load_part(model.transform,
                      read_state_dict(cfg.out_dir / f"transformer_iter_{start}.pth"),
                      "transformer checkpoint")
    model.to(device)
    # fused Adam: one kernel over all 8 M parameters instead of a dozen passes
    optimizer = torch.optim.Adam(
        [{"params": model.decoder.parameters()}, {"params": model.transform.parameters()}],
        lr=cfg.lr, fused=True)
    if start:
        opt_file = cfg.out_dir / f"optimizer_iter_{start}.pth"
        if opt_file.is_file():  # moments are cast onto the parameters' device
            optimizer.load_state_dict(torch.load(opt_file, map_location="cpu", weights_only=True))
        log(f"train: resumed at step {start} from {cfg.out_dir}"
            + ("" if opt_file.is_file() else " (no optimizer state: Adam restarts)"))
    # the encoder actually used (converted/rescaled), so the folder is a complete engine
    save_part(model.encoder, cfg.out_dir / "vgg_normalised.pth")

    amp = device.type == "cuda" if cfg.amp is None else cfg.amp
    autocast, amp_dtype = _autocast(device, amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    # a resumed run draws fresh crops rather than replaying the first ones
    contents = endless_batches(cfg.content_dir, cfg, seed + 2 * start, device)
    styles = endless_batches(cfg.style_dir, cfg, seed + 2 * start + 1, device)
    with (cfg.out_dir / "train_config.json").open("w") as fh:
        json.dump({**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                   "seed": seed, "device": str(device), "amp": str(amp_dtype)}, fh, indent=1)

    history: list[dict[str, float]] = []
    model.decoder.train()
    model.transform.train()
    t0 = time.perf_counter()
    log_fh = (cfg.out_dir / "train_log.jsonl").open("a")
    try:
        for step in range(start + 1, cfg.steps + 1):
            lr = cfg.lr / (1.0 + cfg.lr_decay * (step - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            content, style = next(contents), next(styles)
            with autocast():
                parts = sanet_losses(model, content, style)
            loss = sum(w * parts[k] for w, k in zip(weights, ("content", "style", "id1", "id2"),
                                                    strict=True))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            record = {"step": step, "loss": float(loss.detach()), "lr": lr,
                      **{k: float(v.detach()) for k, v in parts.items()}}
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"loss is {record['loss']} at step {step}; "
                                         "lower --lr or disable mixed precision")
            history.append(record)
            if step % cfg.log_every == 0 or step == cfg.steps or step == start + 1:
                dt = (time.perf_counter() - t0) / len(history)
                log(f"step {step}/{cfg.steps}  loss {record['loss']:.4f}  "
                    f"content {record['content']:.4f}  style {record['style']:.4f}  "
                    f"id1 {record['id1']:.4f}  id2 {record['id2']:.4f}  "
                    f"lr {lr:.2e}  {dt:.2f} s/step")
                log_fh.write(json.dumps(record) + "\n")
                log_fh.flush()
            if step % cfg.save_every == 0 or step == cfg.steps:
                save_sanet(model, cfg.out_dir, iteration=step, include_vgg=False)
                torch.save(optimizer.state_dict(), cfg.out_dir / f"optimizer_iter_{step}.pth")
    finally:
        log_fh.close()
        contents.close()  # shuts the loaders' worker processes down now, not at GC
        styles.close()
    return history


# --- CLI -----------------------------------------------------------------------------------

def default_out_dir() -> Path:
    """Where trained weights go by default: the folder ``serve`` searches for SANet."""
    from ..paths import data_dir

    return data_dir() / "sanet"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``portrait-style train``."""
    p = subparsers.add_parser(
        "train", help="train SANet (transformer + decoder) on content and style folders",
        description="Train SANet's transformer and decoder (frozen VGG-19 encoder) on a "
        "folder of photos and a folder of paintings; checkpoints in the public SANet layout.")
    p.add_argument("--content", type=Path, required=True, help="folder of content photos")
    p.add_argument("--style", type=Path, required=True, help="folder of style paintings")
    p.add_argument("--out", type=Path, default=None,
                   help="checkpoint folder, public layout (default: <user data dir>/sanet, "
                        "where the daemon looks for SANet weights)")
    p.add_argument("--vgg", type=Path, help="vgg_normalised.pth or torchvision vgg19 state dict")
    p.add_argument("--random-encoder", action="store_true",
                   help="random VGG weights (smoke tests only)")
    p.add_argument("--normalise-vgg", action=argparse.BooleanOptionalAction, default=None,
                   help="rescale encoder activations to mean 1 (default: on for torchvision VGG)")
    p.add_argument("--steps", type=int, default=160_000)
    p.add_argument("--batch", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-decay", type=float, default=5e-5, help="lr / (1 + decay·step)")
    p.add_argument("--lambda-content", type=float, default=1.0)
    p.add_argument("--lambda-style", type=float, default=3.0)
    p.add_argument("--lambda-id1", type=float, default=None,
                   help=f"pixel identity weight (default {CORRECTED_IDENTITY_WEIGHTS[0]:g})")
    p.add_argument("--lambda-id2", type=float, default=None,
                   help=f"feature identity weight (default {CORRECTED_IDENTITY_WEIGHTS[1]:g})")
    p.add_argument("--paper-identity-weights", action="store_true",
                   help="the seed paper's printed λ_id1=1, λ_id2=50")
    p.add_argument("--load-size", type=int, default=512, help="shorter side before cropping")
    p.add_argument("--crop-size", type=int, default=256)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if present)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: on for CUDA)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_run)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.paper_identity_weights and (args.lambda_id1 is not None or args.lambda_id2 is not None):
        raise ValueError("--paper-identity-weights and --lambda-id1/--lambda-id2 are exclusive")
    id1, id2 = PAPER_IDENTITY_WEIGHTS if args.paper_identity_weights else CORRECTED_IDENTITY_WEIGHTS
    return TrainConfig(
        content_dir=args.content, style_dir=args.style, out_dir=args.out or default_out_dir(),
        vgg=args.vgg,
        random_encoder=args.random_encoder, normalise_vgg=args.normalise_vgg, steps=args.steps,
        batch=args.batch, lr=args.lr, lr_decay=args.lr_decay,
        lambda_content=args.lambda_content, lambda_style=args.lambda_style,
        lambda_id1=id1 if args.lambda_id1 is None else args.lambda_id1,
        lambda_id2=id2 if args.lambda_id2 is None else args.lambda_id2,
        load_size=args.load_size, crop_size=args.crop_size, save_every=args.save_every,
        log_every=args.log_every, resume=args.resume, device=args.device, amp=args.amp,
        workers=args.workers, seed=args.seed)


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        train(cfg, log=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"portrait-style train: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("portrait-style train: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    return 0
