"""Quality benchmark: does the portrait pipeline keep faces while styling the background?

The product's claim (DESIGN.md §5): facial landmarks of the output move far less
than with plain whole-image transfer, the face stays a face, and the background
is as stylized as whole-image transfer. This script measures exactly that, for
every portrait in ``../shared/data/content`` × every painting in ``style``, in
both modes (``whole_image=True`` and ours):

(a) **Landmark displacement.** The face is detected once, on the *photo* (a
    stylized face fools the detector), and the 468 face-mesh landmarks of the
    photo and of each output composite are computed with that same box and
    rotation. Displacement = mean L2 distance over the 468 points divided by the
    photo's inter-ocular distance (eye outer corners, mesh indices 33 and 263,
    checked on the astronaut: 33 sits at the image-left eye's outer corner, 263 at
    the image-right one's). Also the mesh's face-presence score on the output.
    Full-body shots whose face is too small for the short-range detector on the
    whole frame are searched again in overlapping square windows.
(b) **How stylized.** Distance of an image region's Magenta style embedding (the
    100-d predictor bottleneck) to the style image's embedding, **L2**: the
    transformer's conditional-norm parameters are an affine function of that
    vector, so L2 in this space is what changes the rendering; cosine would ignore
    the vector's length, which the net does not. Background = grid tiles whose
    person-mask coverage (mask of our run on the photo) is < 5 %, the same tiles
    for the photo and both modes, each resized to the predictor's 256² and their
    embeddings averaged (the bottleneck is linear in the predictor's mean-pooled
    features, so averaging tiles ≈ embedding their union). Face = the landmark
    ROI square around the photo's face box. The photo's own distances are the
    unstylized reference: stylized backgrounds should be far below it; our face
    should stay nearer to it than whole-image's face does. The face region is
    the *tight* crop: the square of the photo's landmark box (the 1.5× ROI
    takes in hair and painted background and so flatters the face's score).
    ``face_style`` (summary only) = (d_photo − d_ours) / (d_photo − d_whole) on
    the face: 0 = face as unstyled as the photo, 1 = as styled as whole-image.
    "Faces kept" counts, among the pairs whose photo holds a face (mesh
    presence ≥ 0.5 on the photo), those whose output still does; our NME is
    averaged over the faces we kept.
    **A second, independent judge.** The portrait pass's own face check asks the
    same MediaPipe mesh whether a painted face is still a face, so on the faces
    it touches "faces kept" holds by construction. The report therefore also
    counts faces kept by OpenCV's Haar frontal-face cascade (boosted Haar
    features, trained apart from MediaPipe; ``opencv-python-headless``, a test
    dependency): a face is found when a detection in the neighbourhood of the
    photo's tight face crop has its centre inside that crop and a size within
    0.5–2× of it. Counted among the pairs whose photo the cascade finds.
(c) **Time** per image for each mode (wall time of ``PortraitPipeline.run``).

Images are reduced to ``--long-side`` (default 512) first, so the pipeline runs
at that size without its upsampling stage and every metric is taken there.

    .venv/bin/python bench/quality.py --quick
    .venv/bin/python bench/quality.py --markdown bench/results/quality-magenta.md
    .venv/bin/python bench/quality.py --quick --sweep portrait.strength=0.2,0.35,0.5 \\
        --sweep portrait.preserve_color=false,true
    .venv/bin/python bench/quality.py --param mask.feather_px=2 --contact-sheet /tmp/q.png
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from machine import machine_line

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

#: face-mesh indices of the eye outer corners (image-left eye, image-right eye)
RIGHT_EYE_OUTER = 33
LEFT_EYE_OUTER = 263
#: a tile counts as background when less than this share of it is person
BG_MAX_COVERAGE = 0.05
#: the Magenta predictor was trained on 256² style images
EMBED_SIZE = 256
#: MediaPipe's landmark ROI: square on the box's long side × 1.5
FACE_ROI_SCALE = 1.5
#: below this face-presence score the mesh on the output is not a face: its landmarks are
#: noise, so the pair is counted as "face lost" and left out of the displacement means
MIN_PRESENCE = 0.5
#: background tiles per image side (grid of TILES_PER_SIDE² with half-tile stride)
TILES_PER_SIDE = 4
#: OpenCV's cascade for the independent "face kept" judge (in cv2.data.haarcascades)
HAAR_CASCADE = "haarcascade_frontalface_default.xml"

#: the head crop of a strip: the tight face box grown this much (hair, headwear)
HEAD_SCALE = 2.6
#: a two-tone style made here from a painting in style/ (none of the paintings is one):
#: name → (source stem, luminance percentile below which it is black)
TWO_TONE_STYLES = {"two_tone_ink": ("pencil_sketch", 35.0)}

#: a pair's face counts as left photographic when ours is nearer the photo than this
#: share of the way whole-image went (CIELAB, mean per pixel, tight face crop)
PAINT_MIN = 0.3
#: per-pair face style gain is only defined where whole-image moves the face's
#: style embedding at least this much (else the ratio is noise over noise)
GAIN_MIN_SPAN = 0.5
#: the goals of issue 22, checked on the validation part
GOAL_NME = 0.016
GOAL_GAIN_MEAN = 0.5
GOAL_GAIN_PAIR = 0.3
GOAL_BG = 0.02
#: fixed split of the shared portraits: tune on one part, report both. Each part
#: holds colour and black-and-white photos and one full-body frame; the cameraman
#: (the grey photo issue 22 was filed on) is in the tuning part, so the validation
#: part's grey photos are ones the defaults were not fitted to.
TUNING_PORTRAITS = ("astronaut_eileen_collins", "cameraman_lav_varshney",
                    "katherine_johnson_nasa_desk", "kodak_model_in_black_dress_full_body",
                    "obama_official_portrait_2012")
VALIDATION_PORTRAITS = ("bedouin_woman_jerusalem_full_body", "ellen_ochoa_nasa_portrait",
                        "espinasse_pere_trutat", "grace_hopper", "kodak_girl_in_red")
#: JPEG quality of the identity judge's noise floor (the photo re-encoded)
FLOOR_JPEG_QUALITY = 75

QUICK_PORTRAITS = ("astronaut_eileen_collins", "obama_official_portrait_2012", "grace_hopper")
QUICK_STYLES = ("van_gogh_starry_night", "munch_the_scream", "mosaic_stained_glass")

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]  # y0, x0, y1, x1
EmbedFn = Callable[[torch.Tensor], torch.Tensor]


# =============================================================================== metrics


def inter_ocular_distance(xy: torch.Tensor) -> float:
    """Distance between the eye outer corners of a [468,2] face mesh."""
    return float(torch.linalg.vector_norm(xy[LEFT_EYE_OUTER] - xy[RIGHT_EYE_OUTER]))


def landmark_displacement(reference: torch.Tensor, moved: torch.Tensor) -> float:
    """Mean L2 distance between two [468,2] meshes over the reference's inter-ocular distance.

    Normalising by the eye distance makes the number independent of image size
    and of how much of the frame the face fills (0.1 = points moved a tenth of
    the eye span on average).
    """
    if reference.shape != moved.shape:
        raise ValueError(f"landmark shapes differ: {tuple(reference.shape)} vs "
                         f"{tuple(moved.shape)}")
    iod = inter_ocular_distance(reference)
    if iod <= 0:
        raise ValueError("reference landmarks have zero inter-ocular distance")
    return float(torch.linalg.vector_norm(moved - reference, dim=-1).mean()) / iod


def embedding_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """L2 distance between two style embeddings (see the module docstring for why L2)."""
    return float(torch.linalg.vector_norm(a.float().flatten() - b.float().flatten()))


def tile_grid(height: int, width: int, tile: int, stride: int) -> list[IntBox]:
    """Square tiles (y0, x0, y1, x1) covering the image with ``stride``; edges flush."""
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        points = list(range(0, n - tile + 1, stride))
        if points[-1] != n - tile:
            points.append(n - tile)
        return points

    tile_h, tile_w = min(tile, height), min(tile, width)
    return [(y, x, y + tile_h, x + tile_w) for y in starts(height) for x in starts(width)]


def background_tiles(mask: np.ndarray, tiles_per_side: int = TILES_PER_SIDE,
                     max_coverage: float = BG_MAX_COVERAGE) -> list[IntBox]:
    """Tiles of the frame whose person coverage (mean of the uint8 mask / 255) is below the bound.

    Tile side = short side / ``tiles_per_side``, stride half a tile, so a person
    in the middle still leaves the frame's edges as candidates.
    """
    height, width = mask.shape
    tile = max(8, min(height, width) // tiles_per_side)
    coverage = mask.astype(np.float32) / 255.0
    return [box for box in tile_grid(height, width, tile, max(1, tile // 2))
            if float(coverage[box[0]:box[2], box[1]:box[3]].mean()) < max_coverage]


def face_region(box: Box, height: int, width: int, scale: float = FACE_ROI_SCALE) -> IntBox:
    """The square around a face box (long side × ``scale``), clipped to the frame."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(1, round(max(x1 - x0, y1 - y0) * scale))
    top, left = round(cy - side / 2), round(cx - side / 2)
    return (max(0, top), max(0, left), min(height, top + side), min(width, left + side))


def landmark_region(xy: torch.Tensor, height: int, width: int) -> IntBox:
    """The tight face crop: the square on the long side of the mesh's bounding box, clipped.

    Tighter than ``face_region`` on purpose: the 1.5× landmark ROI takes in hair
    and painted background, which flatters the face's style score.
    """
    x0, y0 = (float(v) for v in xy.min(0).values)
    x1, y1 = (float(v) for v in xy.max(0).values)
    return face_region((x0, y0, x1, y1), height, width, scale=1.0)


def paint_share(photo: np.ndarray, whole: np.ndarray, ours: np.ndarray, box: IntBox
                ) -> float:
    """How far ours moved the face from the photo, as a share of whole-image's move.

    Mean CIELAB distance per pixel on the tight face crop ``box``: 0 = ours is the
    photo's face (pasted in), 1 = it moved as far as whole-image's. Unlike the
    style embedding this cannot be flattered by texture elsewhere in the crop:
    a grey photo's face left grey in a blue painting scores ~0.1.
    """
    y0, x0, y1, x1 = box
    lab = [_lab(a[y0:y1, x0:x1, :3]) for a in (photo, whole, ours)]
    moved_whole = float(np.linalg.norm(lab[1] - lab[0], axis=-1).mean())
    if moved_whole <= 1e-6:
        return 1.0
    return float(np.linalg.norm(lab[2] - lab[0], axis=-1).mean()) / moved_whole


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 → CIELAB (D65), float32."""
    c = rgb.astype(np.float32) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192],
                        [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


class IdentityJudge:
    """dlib's ResNet face descriptor (128-d; same person below 0.6): benchmark only.

    Why: "faces kept" by the mesh is the check the portrait pass itself uses, and
    the Haar cascade only says "a face"; an identity embedding says "the same
    person", and a distance *below* the photo's own JPEG-q75 noise floor says the
    face was not painted at all. dlib is never a dependency of the product or of
    CI: ``dlib-bin`` (a prebuilt wheel) and ``face-recognition-models`` (dlib's
    model files) are installed apart, e.g. ``pip install --target DIR dlib-bin
    face-recognition-models``, and found through ``--dlib-path DIR``; without
    them the columns read n/a. The descriptor is taken on the photo's tight face
    crop (the same box for photo and outputs), as the mesh is.
    """

    def __init__(self, predictor: Any, encoder: Any, dlib: Any) -> None:
        self.predictor, self.encoder, self.dlib = predictor, encoder, dlib

    @classmethod
    def load(cls, path: Path | None) -> IdentityJudge | None:
        if path is not None and str(path) not in sys.path:
            sys.path.append(str(path))
        try:
            import dlib  # type: ignore[import-not-found]
            import face_recognition_models as models  # type: ignore[import-not-found]
        except ImportError:
            return None
        return cls(dlib.shape_predictor(models.pose_predictor_model_location()),
                   dlib.face_recognition_model_v1(models.face_recognition_model_location()),
                   dlib)

    def descriptor(self, image: np.ndarray, box: IntBox) -> np.ndarray:
        y0, x0, y1, x1 = box
        rgb = np.ascontiguousarray(image[..., :3])
        shape = self.predictor(rgb, self.dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
        return np.asarray(self.encoder.compute_face_descriptor(rgb, shape), np.float64)

    def distance(self, reference: np.ndarray, image: np.ndarray, box: IntBox) -> float:
        return float(np.linalg.norm(self.descriptor(image, box) - reference))


def jpeg_copy(image: np.ndarray, quality: int = FLOOR_JPEG_QUALITY) -> np.ndarray:
    """The image through a JPEG round trip (the identity judge's noise floor)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image[..., :3])).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB")).copy()


def load_haar() -> Any | None:
    """OpenCV's Haar frontal-face cascade, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR_CASCADE)
    return None if detector.empty() else detector


def haar_face_at(detector: Any, image: np.ndarray, box: IntBox) -> bool:
    """Does the Haar cascade find a face where the photo's face is (``box``, y0 x0 y1 x1)?

    Searched in the box grown to twice its side (the cascade needs some context
    around a face); a detection counts when its centre lies inside ``box`` and
    its side is 0.5–2× the box's, so a face elsewhere in the frame does not.
    """
    y0, x0, y1, x1 = box
    side = max(y1 - y0, x1 - x0)
    height, width = image.shape[:2]
    top, left = max(0, y0 - side // 2), max(0, x0 - side // 2)
    bottom, right = min(height, y1 + side // 2), min(width, x1 + side // 2)
    grey = np.ascontiguousarray(image[top:bottom, left:right, :3].mean(axis=2)
                                .round().astype(np.uint8))
    found = detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=3,
                                      minSize=(max(16, side // 2),) * 2)
    for fx, fy, fw, fh in (found if len(found) else []):
        cx, cy = left + fx + fw / 2, top + fy + fh / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1 and 0.5 * side <= max(fw, fh) <= 2 * side:
            return True
    return False


def crop_tiles(image: torch.Tensor, boxes: Sequence[IntBox], size: int = EMBED_SIZE
               ) -> torch.Tensor:
    """[1,3,H,W] → [N,3,size,size]: each (y0, x0, y1, x1) crop resized for the predictor."""
    crops = []
    for y0, x0, y1, x1 in boxes:
        crop = image[..., y0:y1, x0:x1]
        shrink = crop.shape[-2] > size or crop.shape[-1] > size
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear",
                                   align_corners=False, antialias=shrink))
    return torch.cat(crops)


def mean_embedding(embed: EmbedFn, image: torch.Tensor, boxes: Sequence[IntBox]
                   ) -> torch.Tensor | None:
    """Average style embedding of ``image``'s regions ``boxes`` (None when there are none)."""
    if not boxes:
        return None
    tiles = crop_tiles(image, boxes)
    return torch.stack([embed(tiles[i:i + 1]).float().flatten() for i in range(len(tiles))]
                       ).mean(0)


# =============================================================================== faces


@dataclass(frozen=True)
class PhotoFace:
    """The photo's face box in working-size pixels, its eye-levelling rotation, how found."""

    box: Box
    rotation: float
    score: float
    how: str


def find_face(face_models: Any, photo: torch.Tensor, scale_to_work: float) -> PhotoFace | None:
    """Best face in the full-resolution photo [1,3,H,W]; box scaled by ``scale_to_work``.

    BlazeFace short range expects the face to fill a good part of its 128²
    letterbox, so a full-body shot's small face is missed on the whole frame;
    then overlapping square windows (½ and ⅓ of the short side) are tried and
    the best detection is mapped back.
    """
    faces = face_models.detect(photo)
    if faces:
        f = faces[0]
        return PhotoFace(tuple(v * scale_to_work for v in f.box), f.rotation, f.score, "frame")
    height, width = photo.shape[-2:]
    best: tuple[float, Box, float, int] | None = None
    for fraction in (2, 3):
        side = min(height, width) // fraction
        for y0, x0, y1, x1 in tile_grid(height, width, side, side // 2):
            for f in face_models.detect(photo[..., y0:y1, x0:x1]):
                if best is None or f.score > best[0]:
                    box = (f.box[0] + x0, f.box[1] + y0, f.box[2] + x0, f.box[3] + y0)
                    best = (f.score, box, f.rotation, fraction)
    if best is None:
        return None
    score, box, rotation, fraction = best
    return PhotoFace(tuple(v * scale_to_work for v in box), rotation, score,
                     f"window 1/{fraction}")


# =============================================================================== settings


@dataclass(frozen=True)
class Setting:
    """One configuration of ours: region-knob overrides and mask-knob overrides."""

    regions: tuple[tuple[str, str, str], ...] = ()
    mask: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        parts = [f"{r}.{k}={v}" for r, k, v in self.regions]
        parts += [f"mask.{k}={v}" for k, v in self.mask]
        return ", ".join(parts) or "defaults"

    def region_overrides(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for region, knob, value in self.regions:
            out.setdefault(region, {})[knob] = value
        return out

    def background_key(self) -> tuple[tuple[str, str, str], ...]:
        """What the whole-image mode depends on (it runs the background settings)."""
        return tuple(t for t in self.regions if t[0] == "background")


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``REGION.KNOB=VALUE`` (REGION may be ``mask``) → (region, knob, value)."""
    key, sep, value = text.partition("=")
    region, dot, knob = key.strip().partition(".")
    if not sep or not dot or not region or not knob or not value.strip():
        raise ValueError(f"bad setting {text!r}: expected REGION.KNOB=VALUE")
    return region, knob, value.strip()


def build_settings(params: Iterable[str], sweeps: Iterable[str]) -> list[Setting]:
    """Fixed ``--param``s combined with the cartesian product of every ``--sweep``."""
    fixed = [parse_assignment(p) for p in params]
    axes: list[list[tuple[str, str, str]]] = []
    for sweep in sweeps:
        region, knob, values = parse_assignment(sweep)
        axes.append([(region, knob, v.strip()) for v in values.split(",") if v.strip()])
    settings = []
    for combo in itertools.product(*axes) if axes else [()]:
        chosen = fixed + list(combo)
        settings.append(Setting(
            regions=tuple(t for t in chosen if t[0] != "mask"),
            mask=tuple((k, v) for r, k, v in chosen if r == "mask"),
        ))
    return settings


def mask_settings_with(base: Any, overrides: Sequence[tuple[str, str]]) -> Any:
    """``MaskSettings`` with knobs set from strings (numbers only)."""
    known = {f.name for f in fields(base)}
    values: dict[str, float] = {}
    for knob, value in overrides:
        if knob not in known:
            raise ValueError(f"unknown mask knob {knob!r}; known: {', '.join(sorted(known))}")
        values[knob] = type(getattr(base, knob))(float(value))
    return replace(base, **values)


# =============================================================================== running


@dataclass
class ModeResult:
    """Metrics of one output composite."""

    displacement: float
    presence: float
    bg_distance: float | None
    face_distance: float
    seconds: float
    composite: np.ndarray = field(repr=False)
    #: the independent judge (OpenCV Haar) finds the face; None = judge unavailable
    haar_face: bool | None = None
    #: dlib identity distance to the photo's face; None = judge unavailable
    identity: float | None = None


@dataclass
class PairResult:
    """One (portrait, style, setting) measurement, both modes."""

    portrait: str
    style: str
    setting: str
    photo_bg: float | None
    photo_face: float
    bg_tiles: int
    whole: ModeResult
    ours: ModeResult
    #: face-mesh presence on the photo itself: a face the photo does not hold can't be kept
    photo_presence: float = 1.0
    #: the tight face crop (y0, x0, y1, x1) the face style distances were taken on
    face_box: IntBox = (0, 0, 0, 0)
    #: the independent judge finds the face on the photo itself; None = unavailable
    photo_haar: bool | None = None
    #: our face's move from the photo as a share of whole-image's (``paint_share``)
    paint: float = 1.0
    #: dlib identity distance of the photo's own JPEG-q75 copy (the noise floor)
    identity_floor: float | None = None

    @property
    def gain(self) -> float | None:
        """This pair's face style gain, where whole-image moves the face enough to tell."""
        span = self.photo_face - self.whole.face_distance
        if span < GAIN_MIN_SPAN:
            return None
        return (self.photo_face - self.ours.face_distance) / span

    @property
    def photographic(self) -> bool:
        """Our face was left a photograph: barely moved from the photo's (CIELAB), or
        (identity judge present) nearer the photo than its own JPEG-q75 copy."""
        if self.paint < PAINT_MIN:
            return True
        return (self.ours.identity is not None and self.identity_floor is not None
                and self.ours.identity <= self.identity_floor)


def load_rgb(path: Path, long_side: int | None) -> np.ndarray:
    """An image as H×W×3 uint8, reduced (Lanczos) so its long side is at most ``long_side``."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    if long_side and max(image.size) > long_side:
        scale = long_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    return np.asarray(image).copy()


def two_tone(image: np.ndarray, percentile: float) -> np.ndarray:
    """Black ink on white: ``image`` thresholded at a luminance percentile (H×W×3 uint8).

    Why: a woodcut or an ink drawing is two flat tones, the hardest case for a
    face that should look painted (a continuous-tone photo face shows at once);
    the shared paintings hold none, so one is derived from the pencil drawing.
    """
    grey = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    ink = np.where(grey > np.percentile(grey, percentile), 255, 0).astype(np.uint8)
    return np.repeat(ink[..., None], 3, axis=2)


def load_styles(folder: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Styles by stem from ``folder``, the derived two-tone ones made on the fly."""
    styles = {}
    for name in names:
        if name in TWO_TONE_STYLES:
            source, percentile = TWO_TONE_STYLES[name]
            styles[name] = two_tone(load_rgb(folder / f"{source}.jpg", 1024), percentile)
        else:
            styles[name] = load_rgb(folder / f"{name}.jpg", 1024)
    return styles


def to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1)[None].float(
        ) / 255.0


class Bench:
    """Models loaded once; measures pairs, caching what does not depend on the setting."""

    def __init__(self, device: str, engine: str, dlib_path: Path | None = None) -> None:
        from portrait_style.daemon.models.face import FaceModels
        from portrait_style.daemon.runtime import load_pipeline

        self.pipeline, self.notes = load_pipeline(engine=engine, device=device)
        self.engine_name = self.pipeline.engine.name
        embedder = self.pipeline.engine if hasattr(self.pipeline.engine, "style_embedding") \
            else None
        if embedder is None:
            from portrait_style.daemon.engines.magenta import MagentaEngine

            embedder = MagentaEngine.load(device)
        self.embedder = embedder
        self.faces = FaceModels.load(device)
        self.haar = load_haar()
        self.identity = IdentityJudge.load(dlib_path)
        self.default_mask = self.pipeline.mask_settings
        self._whole_cache: dict[tuple[Any, ...], ModeResult] = {}
        self._style_cache: dict[str, torch.Tensor] = {}
        self._warm_up()

    def _warm_up(self) -> None:
        """One small untimed job per mode: first calls pay lazy allocations and kernel picks."""
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        for whole in (False, True):
            self.run(image, image, "warm-up", Setting(), whole=whole)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.embedder.style_embedding(image.to(self.pipeline.engine.device)).cpu()

    def style_embedding(self, name: str, style: np.ndarray) -> torch.Tensor:
        if name not in self._style_cache:
            self._style_cache[name] = self.embed(to_tensor(style)).float().flatten()
        return self._style_cache[name]

    def run(self, content: np.ndarray, style: np.ndarray, style_name: str, setting: Setting,
            *, whole: bool = False, outputs: Iterable[str] = ("composite",)
            ) -> tuple[dict[str, np.ndarray], float]:
        from portrait_style.daemon.jobspec import JobContext, StylizeJob
        from portrait_style.daemon.regions import resolve_regions

        self.pipeline.mask_settings = mask_settings_with(self.default_mask, setting.mask)
        job = StylizeJob(content=content, style=style, style_key=f"quality:{style_name}",
                         regions=resolve_regions(self.engine_name, setting.region_overrides()),
                         outputs=frozenset(outputs), whole_image=whole)
        start = time.perf_counter()
        result = self.pipeline.run(job, JobContext())
        return result.layers, time.perf_counter() - start

    def measure(self, out: np.ndarray, seconds: float, face: PhotoFace, photo_xy: torch.Tensor,
                tiles: list[IntBox], face_box: IntBox, style_emb: torch.Tensor,
                photo_id: np.ndarray | None = None) -> ModeResult:
        image = to_tensor(out)
        xy, presence = self.faces.landmarks_in_image(image, face.box, face.rotation)
        bg = mean_embedding(self.embed, image, tiles)
        face_emb = mean_embedding(self.embed, image, [face_box])
        assert face_emb is not None
        return ModeResult(
            displacement=landmark_displacement(photo_xy, xy), presence=presence,
            bg_distance=None if bg is None else embedding_distance(bg, style_emb),
            face_distance=embedding_distance(face_emb, style_emb), seconds=seconds,
            composite=out,
            haar_face=None if self.haar is None else haar_face_at(self.haar, out, face_box),
            identity=None if self.identity is None or photo_id is None
            else self.identity.distance(photo_id, out, face_box))

    def portrait(self, name: str, path: Path, styles: dict[str, np.ndarray],
                 settings: list[Setting], long_side: int, log: Callable[[str], None]
                 ) -> list[PairResult] | str:
        """All styles × settings for one portrait, or the reason it was skipped."""
        full = load_rgb(path, None)
        photo = load_rgb(path, long_side)
        face = find_face(self.faces, to_tensor(full), photo.shape[1] / full.shape[1])
        if face is None:
            return "no face detected on the photo (frame and windows)"
        photo_t = to_tensor(photo)
        photo_xy, photo_presence = self.faces.landmarks_in_image(photo_t, face.box,
                                                                 face.rotation)
        log(f"{name}: face {face.how} score {face.score:.2f} presence {photo_presence:.2f} "
            f"iod {inter_ocular_distance(photo_xy):.1f}px")
        # the background tiles come from our default mask on the photo, shared by all runs
        layers, _ = self.run(photo, next(iter(styles.values())), next(iter(styles)),
                             Setting(), outputs=("mask",))
        tiles = background_tiles(layers["mask"])
        height, width = photo.shape[:2]
        face_box = landmark_region(photo_xy, height, width)
        photo_bg_emb = mean_embedding(self.embed, photo_t, tiles)
        photo_face_emb = mean_embedding(self.embed, photo_t, [face_box])
        assert photo_face_emb is not None
        photo_haar = None if self.haar is None else haar_face_at(self.haar, photo, face_box)
        photo_id = floor = None
        if self.identity is not None:
            photo_id = self.identity.descriptor(photo, face_box)
            floor = self.identity.distance(photo_id, jpeg_copy(photo), face_box)
        results = []
        for style_name, style in styles.items():
            style_emb = self.style_embedding(style_name, style)
            for setting in settings:
                key = (name, style_name, setting.background_key())
                if key not in self._whole_cache:
                    layers, seconds = self.run(photo, style, style_name, setting, whole=True)
                    self._whole_cache[key] = self.measure(
                        layers["composite"], seconds, face, photo_xy, tiles, face_box,
                        style_emb, photo_id)
                layers, seconds = self.run(photo, style, style_name, setting)
                ours = self.measure(layers["composite"], seconds, face, photo_xy, tiles,
                                    face_box, style_emb, photo_id)
                whole = self._whole_cache[key]
                results.append(PairResult(
                    portrait=name, style=style_name, setting=setting.label,
                    photo_bg=None if photo_bg_emb is None
                    else embedding_distance(photo_bg_emb, style_emb),
                    photo_face=embedding_distance(photo_face_emb, style_emb),
                    bg_tiles=len(tiles), whole=whole, ours=ours,
                    photo_presence=photo_presence, face_box=face_box,
                    photo_haar=photo_haar, identity_floor=floor,
                    paint=paint_share(photo, whole.composite, ours.composite, face_box)))
                log(f"  {style_name:<34} {setting.label:<40} disp whole "
                    f"{whole.displacement:.3f} ours {ours.displacement:.3f}  "
                    f"t {whole.seconds:.2f}/{ours.seconds:.2f}s")
        return results


# =============================================================================== report


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@dataclass
class Summary:
    """Means over a set of pair results."""

    n: int
    disp_whole: float | None
    disp_ours: float | None
    lost_whole: int
    lost_ours: int
    pres_whole: float
    pres_ours: float
    bg_photo: float | None
    bg_whole: float | None
    bg_ours: float | None
    face_photo: float
    face_whole: float
    face_ours: float
    t_whole: float
    t_ours: float
    faces_photo: int = 0
    kept_ours: int = 0
    nme_ours: float | None = None
    #: the independent judge: photos it finds a face on, and of those, outputs it still does
    haar_photo: int | None = None
    haar_ours: int = 0
    haar_whole: int = 0
    #: per-pair minima and flags (issue 22: a mean hides the worst outputs)
    gain_min: float | None = None
    gain_pairs: int = 0
    gain_below: int = 0
    photographic: int = 0
    paint_min: float | None = None
    nme_max: float | None = None
    presence_min: float | None = None
    #: dlib identity distance to the photo: mean ours, mean whole, mean JPEG floor
    id_ours: float | None = None
    id_whole: float | None = None
    id_floor: float | None = None
    id_ours_max: float | None = None

    @property
    def haar_kept(self) -> str:
        """'ours/n (whole w/n)' by the independent judge, or n/a."""
        if self.haar_photo is None:
            return "n/a"
        n = self.haar_photo
        return f"{self.haar_ours}/{n} (whole {self.haar_whole}/{n})"

    @property
    def bg_excess(self) -> float | None:
        """Our background distance over whole-image's, minus 1 (0 = as stylized)."""
        if self.bg_whole is None or self.bg_ours is None or self.bg_whole <= 0:
            return None
        return self.bg_ours / self.bg_whole - 1.0

    @property
    def face_style(self) -> float | None:
        """Share of whole-image's face stylization that ours keeps (0 = photo, 1 = whole)."""
        span = self.face_photo - self.face_whole
        return None if abs(span) < 1e-9 else (self.face_photo - self.face_ours) / span


def summarize(rows: Sequence[PairResult]) -> Summary:
    def m(get: Callable[[PairResult], float | None]) -> float | None:
        return _mean(get(r) for r in rows)

    # displacement only where both outputs still hold a face (else the mesh is noise)
    kept = [r for r in rows
            if min(r.whole.presence, r.ours.presence) >= MIN_PRESENCE]
    with_face = [r for r in rows if r.photo_presence >= MIN_PRESENCE]
    ours_kept = [r for r in with_face if r.ours.presence >= MIN_PRESENCE]
    judged = [r for r in rows if r.photo_haar]
    judge_ran = any(r.photo_haar is not None for r in rows)
    gains = [g for g in (r.gain for r in rows) if g is not None]
    ids = [r.ours.identity for r in rows if r.ours.identity is not None]
    return Summary(
        gain_min=min(gains) if gains else None, gain_pairs=len(gains),
        gain_below=sum(g < GOAL_GAIN_PAIR for g in gains),
        photographic=sum(r.photographic for r in rows),
        paint_min=min((r.paint for r in rows), default=None),
        nme_max=max((r.ours.displacement for r in ours_kept), default=None),
        presence_min=min((r.ours.presence for r in with_face), default=None),
        id_ours=_mean(ids), id_ours_max=max(ids, default=None),
        id_whole=_mean(r.whole.identity for r in rows),
        id_floor=_mean(r.identity_floor for r in rows),
        haar_photo=len(judged) if judge_ran else None,
        haar_ours=sum(bool(r.ours.haar_face) for r in judged),
        haar_whole=sum(bool(r.whole.haar_face) for r in judged),
        faces_photo=len(with_face), kept_ours=len(ours_kept),
        nme_ours=_mean(r.ours.displacement for r in ours_kept),
        n=len(rows),
        disp_whole=_mean(r.whole.displacement for r in kept),
        disp_ours=_mean(r.ours.displacement for r in kept),
        lost_whole=sum(r.whole.presence < MIN_PRESENCE for r in rows),
        lost_ours=sum(r.ours.presence < MIN_PRESENCE for r in rows),
        pres_whole=m(lambda r: r.whole.presence), pres_ours=m(lambda r: r.ours.presence),
        # background means only over pairs that have background tiles, same set for all three
        bg_photo=m(lambda r: r.photo_bg), bg_whole=m(lambda r: r.whole.bg_distance),
        bg_ours=m(lambda r: r.ours.bg_distance),
        face_photo=m(lambda r: r.photo_face), face_whole=m(lambda r: r.whole.face_distance),
        face_ours=m(lambda r: r.ours.face_distance),
        t_whole=m(lambda r: r.whole.seconds), t_ours=m(lambda r: r.ours.seconds),
    )  # type: ignore[arg-type]


PAIR_HEADER = ("| portrait | style | disp whole | disp ours | presence whole | presence ours "
               "| bg tiles | bg d photo | bg d whole | bg d ours | face d photo | face d whole "
               "| face d ours | gain | paint | identity whole/ours (floor) | photographic "
               "| Haar photo/whole/ours | t whole s | t ours s |")


def _judged(found: bool | None) -> str:
    return "–" if found is None else "y" if found else "n"


def pair_table(rows: Sequence[PairResult]) -> list[str]:
    lines = [PAIR_HEADER, "|" + "---|" * PAIR_HEADER.count(" | ") + "---|"]
    for r in rows:
        lines.append(
            f"| {r.portrait} | {r.style} | {r.whole.displacement:.3f} | "
            f"{r.ours.displacement:.3f} | {r.whole.presence:.2f} | {r.ours.presence:.2f} | "
            f"{r.bg_tiles} | {_fmt(r.photo_bg, 1)} | {_fmt(r.whole.bg_distance, 1)} | "
            f"{_fmt(r.ours.bg_distance, 1)} | {r.photo_face:.1f} | {r.whole.face_distance:.1f} | "
            f"{r.ours.face_distance:.1f} | {_fmt(r.gain, 2)} | {r.paint:.2f} | "
            f"{_fmt(r.whole.identity, 2)}/{_fmt(r.ours.identity, 2)} "
            f"({_fmt(r.identity_floor, 2)}) | {'**yes**' if r.photographic else 'no'} | "
            f"{_judged(r.photo_haar)}/{_judged(r.whole.haar_face)}/"
            f"{_judged(r.ours.haar_face)} | {r.whole.seconds:.2f} | {r.ours.seconds:.2f} |")
    return lines


AGG_HEADER = ("| {key} | n | disp whole | disp ours | faces lost whole | faces lost ours "
              "| presence whole | presence ours "
              "| bg d photo | bg d whole | bg d ours | face d photo | face d whole | face d ours "
              "| face style | t whole s | t ours s |")


def agg_row(label: str, s: Summary) -> str:
    return (f"| {label} | {s.n} | {_fmt(s.disp_whole)} | {_fmt(s.disp_ours)} | "
            f"{s.lost_whole} | {s.lost_ours} | "
            f"{s.pres_whole:.2f} | {s.pres_ours:.2f} | {_fmt(s.bg_photo, 1)} | "
            f"{_fmt(s.bg_whole, 1)} | {_fmt(s.bg_ours, 1)} | {s.face_photo:.1f} | "
            f"{s.face_whole:.1f} | {s.face_ours:.1f} | {_fmt(s.face_style, 2)} | "
            f"{s.t_whole:.2f} | {s.t_ours:.2f} |")


SETTING_HEADER = ("| setting | faces kept | faces kept, Haar | NME ours (worst pair) "
                  "| face style gain | gain, worst pair (pairs < 0.3) | photographic "
                  "(paint, worst) | identity ours / whole (JPEG floor) | bg vs whole "
                  "| t whole s | t ours s |")


def setting_table(groups: dict[str, list[PairResult]]) -> list[str]:
    """The issue's view, one row per setting: faces kept, NME, gain, background, time."""
    lines = [SETTING_HEADER, "|" + "---|" * (SETTING_HEADER.count(" | ") + 1)]
    for label, rows in groups.items():
        s = summarize(rows)
        excess = "n/a" if s.bg_excess is None else f"{s.bg_excess:+.1%}"
        lines.append(f"| {label} | {s.kept_ours}/{s.faces_photo} | {s.haar_kept} | "
                     f"{_fmt(s.nme_ours, 4)} ({_fmt(s.nme_max, 3)}) | "
                     f"{_fmt(s.face_style, 2)} | {_fmt(s.gain_min, 2)} ({s.gain_below} of "
                     f"{s.gain_pairs}) | {s.photographic}/{s.n} ({_fmt(s.paint_min, 2)}) | "
                     f"{_fmt(s.id_ours, 3)} / {_fmt(s.id_whole, 3)} ({_fmt(s.id_floor, 3)}) | "
                     f"{excess} | {s.t_whole:.2f} | {s.t_ours:.2f} |")
    return lines


def agg_table(key: str, groups: dict[str, list[PairResult]]) -> list[str]:
    header = AGG_HEADER.format(key=key)
    lines = [header, "|" + "---|" * (header.count(" | ") + 1)]
    lines += [agg_row(label, summarize(rows)) for label, rows in groups.items()]
    return lines


def summary_block(s: Summary) -> list[str]:
    ratio = "n/a" if s.disp_whole is None or not s.disp_ours else (
        f"{s.disp_whole / s.disp_ours:.1f}× lower")
    return [
        "| measure | photo | whole-image | ours |", "|---|---|---|---|",
        f"| landmark displacement / IOD (lower = face kept; pairs with a face in both) | 0 | "
        f"{_fmt(s.disp_whole)} | {_fmt(s.disp_ours)} ({ratio}) |",
        f"| faces lost (output presence < {MIN_PRESENCE}) | – | {s.lost_whole} of {s.n} | "
        f"{s.lost_ours} of {s.n} |",
        f"| face presence on output (1 = a face) | – | {s.pres_whole:.2f} | {s.pres_ours:.2f} |",
        f"| background style-embedding L2 to style (lower = more stylized) | "
        f"{_fmt(s.bg_photo, 1)} | {_fmt(s.bg_whole, 1)} | {_fmt(s.bg_ours, 1)} |",
        f"| face style-embedding L2 to style (higher = content kept) | {s.face_photo:.1f} | "
        f"{s.face_whole:.1f} | {s.face_ours:.1f} |",
        f"| face style share (0 = photo, 1 = whole-image) | 0 | 1 | {_fmt(s.face_style, 2)} |",
        f"| time per image, s | – | {s.t_whole:.2f} | {s.t_ours:.2f} |",
    ]


def group_by(rows: Iterable[PairResult], key: Callable[[PairResult], str]
             ) -> dict[str, list[PairResult]]:
    groups: dict[str, list[PairResult]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups



def part_of(portrait: str) -> str:
    """Which part of the fixed split a portrait is in (``other`` for a photo in neither)."""
    return ("tuning" if portrait in TUNING_PORTRAITS
            else "validation" if portrait in VALIDATION_PORTRAITS else "other")


def goal_lines(label: str, s: Summary) -> list[str]:
    """Issue 22's goals, each met or not, for one setting's validation pairs."""
    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else "met" if ok else "**not met**"

    checks = [
        ("every face kept (mesh)", s.kept_ours == s.faces_photo),
        (f"NME ≤ {GOAL_NME} ({_fmt(s.nme_ours, 4)})",
         None if s.nme_ours is None else s.nme_ours <= GOAL_NME),
        (f"mean face gain ≥ {GOAL_GAIN_MEAN} ({_fmt(s.face_style, 2)})",
         None if s.face_style is None else s.face_style >= GOAL_GAIN_MEAN),
        (f"no pair's gain < {GOAL_GAIN_PAIR} (worst {_fmt(s.gain_min, 2)})",
         None if s.gain_min is None else s.gain_min >= GOAL_GAIN_PAIR),
        (f"no face left photographic ({s.photographic} flagged)", s.photographic == 0),
        (f"background within {GOAL_BG:.0%} of whole-image ("
         f"{'n/a' if s.bg_excess is None else f'{s.bg_excess:+.1%}'})",
         None if s.bg_excess is None else abs(s.bg_excess) <= GOAL_BG),
    ]
    return [f"- {label}: " + "; ".join(f"{what}: {mark(ok)}" for what, ok in checks)]


def split_section(rows: list[PairResult]) -> list[str]:
    """Tuning vs validation, per setting, and the goals on the validation part."""
    parts = group_by(rows, lambda r: part_of(r.portrait))
    if set(parts) <= {"other"}:
        return []
    lines = ["## Tuning vs validation (fixed split)", "",
             f"Tuning: {', '.join(TUNING_PORTRAITS)}. Validation: "
             f"{', '.join(VALIDATION_PORTRAITS)}. Defaults are chosen on the tuning part "
             "only; the gap between the two rows is how much they were fitted to it.", ""]
    lines += setting_table(group_by(rows, lambda r: f"{r.setting} · {part_of(r.portrait)}"))
    validation = [r for r in rows if part_of(r.portrait) == "validation"]
    if validation:
        lines += ["", "Goals of issue 22 on the validation part:", ""]
        for label, group in group_by(validation, lambda r: r.setting).items():
            lines += goal_lines(label, summarize(group))
    lines.append("")
    return lines


def report(rows: list[PairResult], settings: list[Setting], skipped: dict[str, str],
           args: argparse.Namespace, engine: str, total_s: float) -> str:
    lines = [f"# Quality benchmark — engine `{engine}`", "",
             f"- machine: {machine_line(args.device)}",
             f"- command: `{' '.join(sys.argv)}`",
             f"- working size: long side {args.long_side} px; {len(rows)} measurements in "
             f"{total_s:.0f} s",
             "- displacement = mean L2 of the 468 face-mesh points / inter-ocular distance "
             "(photo's face box reused); embedding distance = L2 of Magenta style bottlenecks "
             f"to the style image's; background = tiles with < {BG_MAX_COVERAGE:.0%} person",
             ""]
    if skipped:
        lines += ["Skipped portraits:", ""]
        lines += [f"- {name}: {why}" for name, why in skipped.items()]
        lines.append("")
    by_setting = group_by(rows, lambda r: r.setting)
    lines += ["## Per setting (means over all pairs)", "",
              f"Faces kept: output mesh presence ≥ {MIN_PRESENCE} among pairs whose photo has "
              "one; faces kept, Haar: the same by OpenCV's Haar cascade, a judge independent "
              "of the mesh the portrait pass's face check uses (among photos it finds a face "
              "on); NME over the faces kept; face style gain on the tight face crop; bg vs "
              "whole: our background style distance relative to whole-image transfer's. "
              "Per pair: gain = (d_photo − d_ours)/(d_photo − d_whole) of the face crop's "
              f"style embedding where d_photo − d_whole ≥ {GAIN_MIN_SPAN}; photographic = "
              f"our face moved less than {PAINT_MIN} of whole-image's move from the photo "
              "(mean CIELAB distance on the tight face crop), or, with the dlib judge, its "
              f"identity distance to the photo is at or below the photo's own JPEG-q"
              f"{FLOOR_JPEG_QUALITY} copy's (the face was not painted at all).", ""]
    lines += setting_table(by_setting)
    lines.append("")
    lines += split_section(rows)
    if len(settings) > 1:
        lines += ["## Sweep, all columns", ""]
        lines += agg_table("setting", by_setting)
        lines.append("")
    for setting in settings:
        chosen = [r for r in rows if r.setting == setting.label]
        if not chosen:
            continue
        title = f"## Setting: {setting.label}"
        lines += [title, "", "### Per portrait × style", ""]
        lines += pair_table(chosen)
        lines += ["", "### Per style", ""]
        lines += agg_table("style", group_by(chosen, lambda r: r.style))
        lines += ["", "### Per portrait", ""]
        lines += agg_table("portrait", group_by(chosen, lambda r: r.portrait))
        lines += ["", "### Summary: whole-image vs ours", ""]
        lines += summary_block(summarize(chosen))
        lines.append("")
    return "\n".join(lines)


def contact_sheet(rows: Sequence[PairResult], photos: dict[str, np.ndarray], path: Path,
                  height: int = 200) -> None:
    """Per (portrait, style): photo | whole-image | ours for each setting, one strip per row."""
    from PIL import Image

    def thumb(array: np.ndarray) -> Image.Image:
        image = Image.fromarray(array[..., :3])
        return image.resize((max(1, round(image.width * height / image.height)), height),
                            Image.Resampling.LANCZOS)

    strips = []
    for (portrait, _style), group in _pairs(rows).items():
        images = [thumb(photos[portrait]), thumb(group[0].whole.composite)]
        images += [thumb(r.ours.composite) for r in group]
        width = sum(i.width for i in images) + 4 * (len(images) - 1)
        strip = Image.new("RGB", (width, height), "white")
        x = 0
        for image in images:
            strip.paste(image, (x, 0))
            x += image.width + 4
        strips.append(strip)
    if not strips:
        return
    sheet = Image.new("RGB", (max(s.width for s in strips), (height + 4) * len(strips)), "white")
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, i * (height + 4)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def strip_pairs(portraits: Sequence[str], styles: Sequence[str], n: int) -> set[tuple[str, str]]:
    """``n`` (portrait, style) pairs for strips: portrait i with style i, round the styles."""
    if not styles:
        return set()
    return {(p, styles[i % len(styles)]) for i, p in enumerate(portraits[:n])}


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in ".-" else "_" for c in text)
    return keep.strip("_")[:80] or "defaults"


def strip_image(photo: np.ndarray, whole: np.ndarray, ours: np.ndarray, face_box: IntBox,
                height: int = 256) -> np.ndarray:
    """photo | whole-image | ours: full frame, the head (where the mask is least sure:
    hair, headwear, a held object at the face) and the tight face crop, one row each."""
    from PIL import Image

    def fit(array: np.ndarray, h: int, w: int | None = None) -> Image.Image:
        image = Image.fromarray(np.ascontiguousarray(array[..., :3]))
        width = w or max(1, round(image.width * h / image.height))
        return image.resize((width, h), Image.Resampling.LANCZOS)

    y0, x0, y1, x1 = face_box
    hy0, hx0, hy1, hx1 = face_region((x0, y0, x1, y1), *photo.shape[:2], scale=HEAD_SCALE)
    rows = [[fit(a, height) for a in (photo, whole, ours)],
            [fit(a[hy0:hy1, hx0:hx1], height, height) for a in (photo, whole, ours)],
            [fit(a[y0:y1, x0:x1], height, height) for a in (photo, whole, ours)]]
    gap = 4
    width = max(sum(i.width for i in row) for row in rows) + 2 * gap
    sheet = Image.new("RGB", (width, len(rows) * (height + gap) - gap), "white")
    for r, images in enumerate(rows):
        x = 0
        for image in images:
            sheet.paste(image, (x, r * (height + gap)))
            x += image.width + gap
    return np.asarray(sheet)


def write_strips(rows: Sequence[PairResult], photos: dict[str, np.ndarray], folder: Path,
                 wanted: set[tuple[str, str]]) -> list[Path]:
    """One JPEG strip per wanted (portrait, style) and setting; returns the files written."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rows:
        if (r.portrait, r.style) not in wanted or r.ours.composite.size == 0:
            continue
        path = folder / f"{r.portrait}__{r.style}__{_slug(r.setting)}.jpg"
        Image.fromarray(strip_image(photos[r.portrait], r.whole.composite, r.ours.composite,
                                    r.face_box)).save(path, quality=90)
        written.append(path)
    return written


def _pairs(rows: Sequence[PairResult]) -> dict[tuple[str, str], list[PairResult]]:
    out: dict[tuple[str, str], list[PairResult]] = {}
    for r in rows:
        out.setdefault((r.portrait, r.style), []).append(r)
    return out


# =============================================================================== main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with content/ and style/")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long-side", type=int, default=512,
                        help="reduce photos to this long side before everything")
    parser.add_argument("--quick", action="store_true",
                        help=f"{len(QUICK_PORTRAITS)} portraits × {len(QUICK_STYLES)} styles")
    parser.add_argument("--portraits", help="comma-separated stems (default: all)")
    parser.add_argument("--styles", help="comma-separated stems (default: all)")
    parser.add_argument("--part", choices=("tuning", "validation"),
                        help="only the portraits of one part of the fixed split")
    parser.add_argument("--dlib-path", type=Path,
                        help="folder holding dlib-bin and face-recognition-models (pip "
                             "--target): adds the identity judge; benchmark only")
    parser.add_argument("--constant", action="append", default=[],
                        help="MODULE.NAME=V: set a module constant of portrait_style.daemon "
                             "for the whole run (e.g. portrait_pass.TONE_MATCH=0.5), to try "
                             "a default before it is changed in the code")
    parser.add_argument("--param", action="append", default=[],
                        help="REGION.KNOB=V applied to every setting (REGION: background, "
                             "portrait or mask)")
    parser.add_argument("--sweep", action="append", default=[],
                        help="REGION.KNOB=V1,V2,... (several --sweep: cartesian product)")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--contact-sheet", type=Path,
                        help="PNG: photo | whole-image | ours per setting, per pair")
    parser.add_argument("--strips", type=Path,
                        help="folder: photo | whole-image | ours strips (full frame and tight "
                             "face crop) for --strip-pairs pairs, per setting")
    parser.add_argument("--strip-list",
                        help="PORTRAIT:STYLE,... pairs that get a strip (instead of "
                             "--strip-pairs)")
    parser.add_argument("--strip-pairs", type=int, default=3,
                        help="how many (portrait, style) pairs get a strip (portrait i × style i)")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def set_constant(assignment: str) -> None:
    """``MODULE.NAME=VALUE`` → that float constant of ``portrait_style.daemon.MODULE`` set."""
    import importlib

    key, sep, value = assignment.partition("=")
    module_name, dot, name = key.strip().rpartition(".")
    if not sep or not dot:
        raise SystemExit(f"bad constant {assignment!r}: expected MODULE.NAME=VALUE")
    module = importlib.import_module(f"portrait_style.daemon.{module_name}")
    if not isinstance(getattr(module, name, None), float):
        raise SystemExit(f"{module.__name__} has no float constant {name}")
    setattr(module, name, float(value))


def select(folder: Path, wanted: str | None, quick: Sequence[str] | None) -> list[Path]:
    files = sorted(p for p in folder.glob("*.jpg") if not p.name.startswith("nonportrait_"))
    names = wanted.split(",") if wanted else list(quick) if quick else None
    if names is None:
        return files
    by_stem = {p.stem: p for p in files}
    missing = [n for n in names if n not in by_stem]
    if missing:
        raise SystemExit(f"not found in {folder}: {', '.join(missing)}")
    return [by_stem[n] for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    content_dir, style_dir = args.data / "content", args.data / "style"
    if not content_dir.is_dir() or not style_dir.is_dir():
        print(f"test images absent: {args.data} has no content/ and style/", file=sys.stderr)
        return 2
    split = {"tuning": TUNING_PORTRAITS, "validation": VALIDATION_PORTRAITS}.get(args.part or "")
    portraits = select(content_dir, args.portraits,
                       QUICK_PORTRAITS if args.quick else split)
    if args.styles:
        style_names = args.styles.split(",")
    elif args.quick:
        style_names = list(QUICK_STYLES)
    else:  # every painting, and the two-tone styles derived from them
        style_names = [p.stem for p in select(style_dir, None, None)] + list(TWO_TONE_STYLES)
    missing = [n for n in style_names if n not in TWO_TONE_STYLES
               and not (style_dir / f"{n}.jpg").is_file()]
    if missing:
        raise SystemExit(f"not found in {style_dir}: {', '.join(missing)}")
    settings = build_settings(args.param, args.sweep)
    for assignment in args.constant:
        set_constant(assignment)

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    start = time.perf_counter()
    bench = Bench(args.device, args.engine, args.dlib_path)
    for note in bench.notes:
        log(f"note: {note}")
    # styles at the pipeline's own style size cap are fine; reduce huge ones to save decode
    styles = load_styles(style_dir, style_names)
    rows: list[PairResult] = []
    skipped: dict[str, str] = {}
    photos: dict[str, np.ndarray] = {}
    strips = strip_pairs([p.stem for p in portraits], list(styles), args.strip_pairs) \
        if args.strips else set()
    if args.strips and args.strip_list:
        strips = {tuple(item.split(":", 1)) for item in args.strip_list.split(",")}
    for path in portraits:
        outcome = bench.portrait(path.stem, path, styles, settings, args.long_side, log)
        if isinstance(outcome, str):
            skipped[path.stem] = outcome
            log(f"{path.stem}: skipped, {outcome}")
            continue
        rows += outcome
        if args.contact_sheet or args.strips:
            photos[path.stem] = load_rgb(path, args.long_side)
        if not args.contact_sheet:  # composites are only needed for the sheet and strips
            for r in outcome:
                if (r.portrait, r.style) not in strips:  # whole is shared per pair only
                    r.ours.composite = r.whole.composite = np.empty(0, np.uint8)
    text = report(rows, settings, skipped, args, bench.engine_name, time.perf_counter() - start)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    if args.strips:
        for written in write_strips(rows, photos, args.strips, strips):
            log(f"strip: {written}")
    if args.contact_sheet:
        contact_sheet(rows, photos, args.contact_sheet)
        log(f"contact sheet: {args.contact_sheet}")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
