"""The person mask against MediaPipe's own pipeline, and on small people in big frames.

Why: a seated full-body photo came out with grey, half-transparent legs and an
arm, where MediaPipe's own graph with the same model gave a solid body. This
tells, for any photo, where such a difference comes from:

* **MediaPipe's pipeline** as its graph (``selfie_segmentation_cpu.binarypb``
  in the pinned wheel) runs it: the photo stretched to 256² with plain
  bilinear sampling (``keep_aspect_ratio: false``, range 0..1), the net, the
  probability resized bilinearly to the photo — no clean-up, no refinement.
* **ours**, with reframing off and on (``MaskSettings.reframe_max_share``).

Per photo it prints the IoU of each with MediaPipe's (at 0.5), the share of
grey (0.2–0.8) pixels inside the person, and whether the segmenter was
reframed. ``--synthetic`` adds small-person frames made from the portraits in
shared/ (the portrait scaled to 35–60 % at the bottom of a 1:1 or 3:2 canvas of
its own blurred colours), scored against the portrait's own full-frame mask —
a stand-in for full-body and seated photos, which shared/ lacks.

    .venv/bin/python bench/mask_framing.py [PHOTO ...] [--synthetic] [--strips DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from machine import machine_line

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

#: (scale of the portrait, canvas width / height, horizontal position 0..1)
SYNTHETIC_FRAMES = ((0.5, 1.0, 0.5), (0.5, 1.5, 0.3), (0.35, 1.5, 0.6), (0.6, 1.5, 0.5))
SYNTHETIC_SOURCES = ("astronaut_eileen_collins", "bedouin_woman_jerusalem_full_body",
                     "cameraman_lav_varshney", "espinasse_pere_trutat",
                     "katherine_johnson_nasa_desk", "kodak_model_in_black_dress_full_body",
                     "obama_official_portrait_2012")


def to_tensor(photo: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → [1,3,H,W] float 0..1."""
    array = np.array(photo[..., :3], copy=True)
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def mediapipe_pipeline(segmenter, photo: np.ndarray) -> np.ndarray:
    """MediaPipe's own graph: stretch bilinearly to 256², the net, bilinear back (H×W float)."""
    x = F.interpolate(to_tensor(photo), size=(256, 256), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        prob = segmenter.net("general")(x.clamp(0, 1)).float()
    back = F.interpolate(prob, size=photo.shape[:2], mode="bilinear", align_corners=False)
    return back[0, 0].numpy()


def small_person_frame(photo: np.ndarray, person: np.ndarray, scale: float, aspect: float,
                       position: float) -> tuple[np.ndarray, np.ndarray]:
    """The portrait scaled by ``scale`` at the bottom of a wider canvas, and where the person is.

    The canvas is the portrait itself blurred (σ = 30 px), which the segmenter
    does not take for a person, so the frame has the photo's colours and no
    second person.
    person: the portrait's full-frame person mask (bool), moved along with it.
    """
    from portrait_style.daemon.sizing import lowpass

    h, w = photo.shape[:2]
    width = max(w, int(h * aspect))
    x = to_tensor(photo)
    canvas = lowpass(F.interpolate(x, size=(h, width), mode="bilinear"), 30)
    ph, pw = int(h * scale), int(w * scale)
    y0, x0 = h - ph, int((width - pw) * position)
    canvas[..., y0:, x0:x0 + pw] = F.interpolate(x, size=(ph, pw), mode="bilinear",
                                                 antialias=True)
    small = F.interpolate(torch.from_numpy(person.astype(np.float32))[None, None],
                          size=(ph, pw), mode="bilinear")[0, 0].numpy() >= 0.5
    where = np.zeros((h, width), bool)
    where[y0:, x0:x0 + pw] = small
    frame = (canvas[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return frame, where


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def grey_share(mask: np.ndarray, person: np.ndarray) -> float:
    """Share of the person's pixels the mask leaves half-transparent (0.2–0.8)."""
    inside = mask[person]
    return float(np.mean((inside > 0.2) & (inside < 0.8))) if inside.size else 0.0


def ours(segmenter, photo: np.ndarray, reframe: bool):
    from portrait_style.daemon.mask import MaskSettings, person_mask

    settings = MaskSettings() if reframe else MaskSettings(reframe_max_share=0.0)
    start = time.perf_counter()
    result = person_mask(segmenter, photo, settings=settings)
    return result.mask / 255.0, result.framed_box is not None, time.perf_counter() - start


def score_photo(segmenter, name: str, photo: np.ndarray, truth: np.ndarray | None,
                strips: Path | None) -> dict[str, float]:
    """One table row: against ``truth`` when known, else against MediaPipe's pipeline."""
    reference = mediapipe_pipeline(segmenter, photo)
    target = truth if truth is not None else reference >= 0.5
    row: dict[str, float] = {"mediapipe_iou": iou(reference >= 0.5, target),
                             "mediapipe_grey": grey_share(reference, target)}
    masks = [reference]
    for label, reframe in (("off", False), ("on", True)):
        mask, framed, seconds = ours(segmenter, photo, reframe)
        row[f"{label}_iou"] = iou(mask >= 0.5, target)
        row[f"{label}_grey"] = grey_share(mask, target)
        row[f"{label}_ms"] = seconds * 1000
        masks.append(mask)
    row["reframed"] = float(framed)  # the last pass is the default, reframing on
    print(f"{name[:44]:44s} " + " ".join(
        f"{row[k]:6.3f}" for k in ("mediapipe_iou", "mediapipe_grey", "off_iou", "off_grey",
                                   "on_iou", "on_grey"))
        + f" {'yes' if row['reframed'] else 'no':>8s} {row['on_ms']:7.0f}")
    if strips is not None:
        from PIL import Image

        grey = [np.repeat((np.clip(m, 0, 1) * 255).astype(np.uint8)[..., None], 3, 2)
                for m in masks]
        strip = np.concatenate([photo[..., :3]] + grey, axis=1)
        Image.fromarray(strip).save(strips / f"mask-framing-{name}.png")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", type=Path,
                        help="photos to check (default: the portraits in shared/)")
    parser.add_argument("--synthetic", action="store_true",
                        help="also small-person frames made from shared/'s portraits")
    parser.add_argument("--strips", type=Path,
                        help="write photo | MediaPipe | off | on strips here")
    args = parser.parse_args(argv)
    from PIL import Image

    from portrait_style.daemon.engines.segmenters import SelfieSegmenter

    torch.set_num_threads(2)
    segmenter = SelfieSegmenter.load("cpu", "general")
    photos = args.photos or sorted(p for p in (SHARED / "content").glob("*.jpg")
                                   if not p.stem.startswith("nonportrait"))
    if args.strips:
        args.strips.mkdir(parents=True, exist_ok=True)
    print(machine_line("cpu"))
    print(f"{'photo':44s} {'mp_iou':>6s} {'mp_gry':>6s} {'off':>6s} {'off_gr':>6s} "
          f"{'on':>6s} {'on_gry':>6s} {'reframed':>8s} {'on_ms':>7s}")
    for path in photos:
        photo = np.asarray(Image.open(path).convert("RGB"))
        score_photo(segmenter, path.stem, photo, None, args.strips)
    if args.synthetic:
        rows = []
        for stem in SYNTHETIC_SOURCES:
            path = SHARED / "content" / f"{stem}.jpg"
            if not path.exists():
                print(f"skipped {stem}: {path} is absent", file=sys.stderr)
                continue
            photo = np.asarray(Image.open(path).convert("RGB"))
            person = mediapipe_pipeline(segmenter, photo) >= 0.5
            for scale, aspect, position in SYNTHETIC_FRAMES:
                frame, where = small_person_frame(photo, person, scale, aspect, position)
                rows.append(score_photo(segmenter, f"{stem[:24]}@{scale}x{aspect}", frame,
                                        where, args.strips))
        if rows:
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            print(f"synthetic mean over {len(rows)} frames: IoU MediaPipe "
                  f"{mean['mediapipe_iou']:.3f}, ours off {mean['off_iou']:.3f} → on "
                  f"{mean['on_iou']:.3f}; grey inside the person off {mean['off_grey']:.3f} "
                  f"→ on {mean['on_grey']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
