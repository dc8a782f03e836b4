"""MediaPipe's face detector (BlazeFace short range) and face mesh (468 landmarks) in PyTorch.

Why we need them: the quality benchmark measures how far facial landmarks
move between a photo and its stylized portrait. The stylized face fools the
detector (its score drops), so the benchmark detects the face box once on the
photo and reuses that box for both images: :meth:`FaceLandmarker.landmarks_in_image`
takes the box from outside for exactly that reason.

Both networks are BlazeNet-style stacks of "depthwise 3×3 → pointwise 1×1 +
shortcut" blocks; their layers carry the Keras names of the ``.tflite`` files
they were exported from (``tflite_name``), which
:mod:`portrait_style.weights.tflite_reader` maps the weights onto. Pre- and
post-processing follow MediaPipe's graphs for these models
(``face_detection_short_range.pbtxt``, ``face_landmark_cpu.pbtxt``):

* detector: letterbox to 128×128, input in −1..1; 896 SSD anchors (strides
  8, 16, 16, 16; two anchors per cell and layer, fixed size 1); raw boxes are
  (x, y, w, h) offsets scaled by 128, six keypoints likewise; score =
  sigmoid(clamp(logit, ±100)); min score 0.5; weighted NMS at IoU 0.3.
* landmarks: a square crop 1.5× the detection box's long side, optionally
  rotated so the eyes are level, resized to 192×192, input in 0..1; output
  468 (x, y, z) in crop pixels and a face-presence logit (→ sigmoid).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .selfie import TfConv2d

__all__ = [
    "BlazeFaceNet",
    "Face",
    "FaceDetector",
    "FaceLandmarker",
    "FaceMeshNet",
    "FaceModels",
    "load_detector",
    "load_landmarker",
    "loaded_once",
    "ssd_anchor_centers",
]

DETECTOR_SIZE = 128
LANDMARK_SIZE = 192
NUM_LANDMARKS = 468


class _PReLU(nn.PReLU):
    """Per-channel PReLU that remembers its tflite layer name."""

    def __init__(self, channels: int, tflite_name: str) -> None:
        super().__init__(channels)
        self.tflite_name = tflite_name


class _BlazeBlock(nn.Module):
    """``act(pointwise(depthwise(x)) + shortcut(x))``.

    The shortcut max-pools 2×2 when the block strides and zero-pads the
    channels at the end when the block widens (TFLite ``PAD`` on the channel axis).
    """

    def __init__(
        self, cin: int, cout: int, stride: int, dw: str, conv: str, act: nn.Module
    ) -> None:
        super().__init__()
        self.depthwise = TfConv2d(cin, cin, 3, stride, depthwise=True, tflite_name=dw)
        self.pointwise = TfConv2d(cin, cout, 1, tflite_name=conv)
        self.act = act
        self.stride = stride
        self.extra_channels = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pointwise(self.depthwise(x))
        if self.stride == 2:
            x = F.max_pool2d(x, 2, ceil_mode=True)
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(h + x)


class BlazeFaceNet(nn.Module):
    """BlazeFace short range: [N,3,128,128] in −1..1 → (score logits [N,896], raw [N,896,16])."""

    #: (in, out, stride) of the 16 blocks, read off the graph
    BLOCKS = (
        (24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2),
        (48, 56, 1), (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1),
        (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1),
    )
    #: the 16×16 feature map the first heads read (output of block 10)
    SPLIT = 11

    def __init__(self) -> None:
        super().__init__()
        self.stem = TfConv2d(3, 24, 5, 2, tflite_name="conv2d")
        blocks = []
        for i, (cin, cout, stride) in enumerate(self.BLOCKS):
            dw = "depthwise_conv2d" if i == 0 else f"depthwise_conv2d_{i}"
            blocks.append(_BlazeBlock(cin, cout, stride, dw, f"conv2d_{i + 1}", nn.ReLU()))
        self.blocks16 = nn.Sequential(*blocks[: self.SPLIT])
        self.blocks8 = nn.Sequential(*blocks[self.SPLIT :])
        self.classifier16 = TfConv2d(88, 2, 1, tflite_name="classificator_8")
        self.classifier8 = TfConv2d(96, 6, 1, tflite_name="classificator_16")
        self.regressor16 = TfConv2d(88, 32, 1, tflite_name="regressor_8")
        self.regressor8 = TfConv2d(96, 96, 1, tflite_name="regressor_16")

    @staticmethod
    def _flatten(x: torch.Tensor, per_anchor: int) -> torch.Tensor:
        """NCHW head output → [N, H·W·anchors, per_anchor] in TFLite's (y, x, anchor) order."""
        n = x.shape[0]
        return x.permute(0, 2, 3, 1).reshape(n, -1, per_anchor)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(x))
        f16 = self.blocks16(x)
        f8 = self.blocks8(f16)
        scores = torch.cat(
            [self._flatten(self.classifier16(f16), 1), self._flatten(self.classifier8(f8), 1)], 1
        )
        raw = torch.cat(
            [self._flatten(self.regressor16(f16), 16), self._flatten(self.regressor8(f8), 16)], 1
        )
        return scores[..., 0], raw


class FaceMeshNet(nn.Module):
    """Face mesh: [N,3,192,192] in 0..1 → (landmarks [N,468,3] crop px, presence logit [N])."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TfConv2d(3, 16, 3, 2, tflite_name="conv2d_1")
        self.stem_act = _PReLU(16, "p_re_lu_1")

        def block(cin: int, cout: int, stride: int, dw: int, conv: int, act: int) -> _BlazeBlock:
            return _BlazeBlock(
                cin, cout, stride, f"depthwise_conv2d_{dw}", f"conv2d_{conv}",
                _PReLU(cout, f"p_re_lu_{act}"),
            )

        # shared trunk, 96² → 6²: (in, out, stride) per block; block d uses conv/prelu d+1
        trunk = [(16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2),
                 (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1),
                 (128, 128, 2), (128, 128, 1), (128, 128, 1)]
        self.trunk = nn.Sequential(
            *(block(cin, cout, s, d, d + 1, d + 1) for d, (cin, cout, s) in enumerate(trunk, 1))
        )
        # landmark branch, 6² → 3² → 1×1×1404
        self.mesh = nn.Sequential(
            block(128, 128, 2, 15, 16, 16),
            block(128, 128, 1, 16, 17, 17),
            block(128, 128, 1, 17, 18, 18),
            TfConv2d(128, 32, 1, tflite_name="conv2d_19"),
            _PReLU(32, "p_re_lu_19"),
            block(32, 32, 1, 18, 20, 20),
            TfConv2d(32, NUM_LANDMARKS * 3, 3, 3, padding="valid", tflite_name="conv2d_21"),
        )
        # face-presence branch, 6² → 3² → 1×1×1
        self.presence = nn.Sequential(
            block(128, 128, 2, 23, 28, 26),
            TfConv2d(128, 32, 1, tflite_name="conv2d_29"),
            _PReLU(32, "p_re_lu_27"),
            block(32, 32, 1, 24, 30, 28),
            TfConv2d(32, 1, 3, 3, padding="valid", tflite_name="conv2d_31"),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.trunk(self.stem_act(self.stem(x)))
        landmarks = self.mesh(f).reshape(x.shape[0], NUM_LANDMARKS, 3)
        return landmarks, self.presence(f).reshape(x.shape[0])


# -- detector post-processing -------------------------------------------------------------
def ssd_anchor_centers(
    input_size: int = DETECTOR_SIZE,
    strides: tuple[int, ...] = (8, 16, 16, 16),
    anchors_per_layer: int = 2,
    offset: float = 0.5,
) -> torch.Tensor:
    """Anchor centres [A,2] (x, y in 0..1) as MediaPipe's SsdAnchorsCalculator makes them.

    With ``fixed_anchor_size`` every anchor is 1×1, so only centres matter.
    Consecutive layers with the same stride share one grid; each of their
    cells gets ``anchors_per_layer`` anchors per layer (aspect 1 plus the
    interpolated scale), in (y, x, anchor) order.
    """
    centers = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        same = 0
        while i < len(strides) and strides[i] == stride:
            same += 1
            i += 1
        cells = math.ceil(input_size / stride)
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        grid = torch.stack([(xs + offset) / cells, (ys + offset) / cells], -1).reshape(-1, 1, 2)
        centers.append(grid.expand(-1, same * anchors_per_layer, 2).reshape(-1, 2))
    return torch.cat(centers).float()


@dataclass(frozen=True)
class Face:
    """One detected face in image pixels.

    ``box`` is (x0, y0, x1, y1); ``keypoints`` [6,2] are the subject's right
    eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion.
    """

    box: tuple[float, float, float, float]
    keypoints: torch.Tensor
    score: float

    @property
    def rotation(self) -> float:
        """Angle (radians) that levels the eyes, as MediaPipe rotates its landmark crop."""
        (x0, y0), (x1, y1) = self.keypoints[0].tolist(), self.keypoints[1].tolist()
        return math.atan2(y1 - y0, x1 - x0)


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    return inter / (area + areas - inter).clamp(min=1e-12)


def weighted_nms(
    scores: torch.Tensor, coords: torch.Tensor, iou_threshold: float
) -> list[tuple[float, torch.Tensor]]:
    """MediaPipe's WEIGHTED non-max suppression.

    Take the best remaining detection, gather every detection overlapping it
    by more than ``iou_threshold``, and replace them with their score-weighted
    mean (boxes and keypoints alike) carrying the best score. ``coords`` rows
    start with the box (x0, y0, x1, y1).
    """
    order = scores.argsort(descending=True)
    scores, coords = scores[order], coords[order]
    kept = []
    alive = torch.ones(len(scores), dtype=torch.bool)
    for i in range(len(scores)):
        if not alive[i]:
            continue
        idx = alive.nonzero().squeeze(1)
        overlap = idx[_iou(coords[i, :4], coords[idx, :4]) > iou_threshold]
        weights = scores[overlap].unsqueeze(1)
        merged = (coords[overlap] * weights).sum(0) / weights.sum()
        kept.append((float(scores[i]), merged))
        alive[overlap] = False
        alive[i] = False
    return kept


class FaceDetector(nn.Module):
    """BlazeFace short range on an image of any size (letterboxed to 128²)."""

    def __init__(
        self, net: BlazeFaceNet, min_score: float = 0.5, iou_threshold: float = 0.3
    ) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.register_buffer("anchors", ssd_anchor_centers(), persistent=False)

    def letterbox(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[1,3,H,W] 0..1 → ([1,3,128,128] in −1..1, scale, offset) with black bars.

        A point p in image pixels sits at ``p * scale + offset`` in the 128² input.
        """
        h, w = image.shape[-2:]
        scale = DETECTOR_SIZE / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = F.interpolate(
            image.float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
        )
        top, left = (DETECTOR_SIZE - nh) // 2, (DETECTOR_SIZE - nw) // 2
        canvas = resized.new_zeros(image.shape[0], 3, DETECTOR_SIZE, DETECTOR_SIZE)
        canvas[..., top : top + nh, left : left + nw] = resized
        scale = torch.tensor([nw / w, nh / h])
        return canvas * 2 - 1, scale, torch.tensor([float(left), float(top)])

    def decode(self, logits: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's raw outputs → (scores [A], coords [A,16]) in 128-input pixels.

        coords = (x0, y0, x1, y1, then 6 keypoints x, y).
        """
        scores = torch.sigmoid(logits.float().clamp(-100, 100))
        raw = raw.float()
        anchors = self.anchors * DETECTOR_SIZE  # fixed anchor size 1 → offsets are in pixels
        center = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]
        coords = torch.cat([center - half, center + half, keypoints.reshape(-1, 12)], 1)
        return scores, coords

    @torch.inference_mode()
    def forward(self, image: torch.Tensor) -> list[Face]:
        """Faces in a [1,3,H,W] RGB 0..1 image, best first, in image pixels."""
        if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(f"expected a [1,3,H,W] RGB image, got shape {tuple(image.shape)}")
        device = self.anchors.device
        dtype = next(self.net.parameters()).dtype
        x, scale, offset = self.letterbox(image.to(device))
        logits, raw = self.net(x.to(dtype))
        scores, coords = self.decode(logits[0], raw[0])
        keep = scores >= self.min_score
        faces = []
        for score, c in weighted_nms(scores[keep], coords[keep], self.iou_threshold):
            xy = c.reshape(-1, 2).cpu()
            xy = (xy - offset) / scale
            box = tuple(float(v) for v in xy[:2].reshape(-1))
            faces.append(Face(box=box, keypoints=xy[2:], score=score))  # type: ignore[arg-type]
        return faces


# -- landmarks -------------------------------------------------------------------------------
def _roi_affine(
    center: tuple[float, float], side: float, rotation: float, height: int, width: int, size: int
) -> torch.Tensor:
    """The [2,3] theta for ``affine_grid``: crop pixels → normalized image coordinates."""
    cos, sin = math.cos(rotation), math.sin(rotation)
    # crop-normalized (−1..1) → image pixels: c + R · (u·side/2, v·side/2)
    # then image pixels → image-normalized: p·2/size_axis − 1
    a = side / 2
    return torch.tensor(
        [
            [cos * a * 2 / width, -sin * a * 2 / width, center[0] * 2 / width - 1],
            [sin * a * 2 / height, cos * a * 2 / height, center[1] * 2 / height - 1],
        ]
    )


class FaceLandmarker(nn.Module):
    """Face mesh on a crop, and on a photo given the face box found by :class:`FaceDetector`."""

    #: MediaPipe's RectTransformation for the face mesh ROI: square on the long side, ×1.5
    ROI_SCALE = 1.5

    def __init__(self, net: FaceMeshNet) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N,3,192,192] RGB 0..1 → (landmarks [N,468,3] in crop pixels, presence [N] in 0..1)."""
        dtype = next(self.net.parameters()).dtype
        landmarks, logit = self.net(crop.to(dtype))
        return landmarks.float(), torch.sigmoid(logit.float())

    def crop(
        self,
        image: torch.Tensor,
        box: tuple[float, float, float, float] | Face,
        rotation: float = 0.0,
    ) -> tuple[torch.Tensor, tuple[float, float], float]:
        """The 192² landmark input for ``box``: (crop [1,3,192,192], centre, side in pixels)."""
        x0, y0, x1, y1 = box.box if isinstance(box, Face) else box
        center = ((x0 + x1) / 2, (y0 + y1) / 2)
        side = max(x1 - x0, y1 - y0) * self.ROI_SCALE
        img = image.float()
        h, w = img.shape[-2:]
        shrink = side / LANDMARK_SIZE
        if shrink > 1.5:
            # sample from a pre-shrunk copy so a large face does not alias into 192²
            img = F.interpolate(
                img, size=(max(1, round(h / shrink)), max(1, round(w / shrink))),
                mode="bilinear", align_corners=False, antialias=True,
            )
        theta = _roi_affine(center, side, rotation, h, w, LANDMARK_SIZE).to(img.device)
        grid = F.affine_grid(
            theta[None], [1, 3, LANDMARK_SIZE, LANDMARK_SIZE], align_corners=False
        )
        crop = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return crop, center, side

    def landmarks_in_image(
        self,
        image: torch.Tensor,
        box: tuple[float, float, float, float] | Face,
        rotation: float = 0.0,
    ) -> tuple[torch.Tensor, float]:
        """468 landmarks (x, y) in image pixels and the face-presence probability.

        ``box`` (x0, y0, x1, y1) in image pixels, usually a detection on the
        *photo*, reused unchanged on its stylized version. ``rotation``
        (radians, e.g. ``face.rotation``) turns the crop so the eyes are level.
        """
        crop, center, side = self.crop(image, box, rotation)
        landmarks, presence = self(crop.to(next(self.net.parameters()).device))
        uv = landmarks[0, :, :2].cpu() / LANDMARK_SIZE - 0.5  # −0.5..0.5 across the crop
        cos, sin = math.cos(rotation), math.sin(rotation)
        rot = torch.tensor([[cos, -sin], [sin, cos]])
        xy = (uv * side) @ rot.T + torch.tensor(center)
        return xy, float(presence[0])


@dataclass
class FaceModels:
    """The detector and the landmarker, loaded together for the quality benchmark."""

    detector: FaceDetector
    landmarker: FaceLandmarker

    #: bump when the tflite → state dict conversion changes its output
    CONVERTER_VERSION = "face-1"

    @classmethod
    def load(cls, device: str | torch.device = "cpu") -> FaceModels:
        """Fetch (once), convert (once) and load both networks onto ``device`` (float32)."""
        return cls(load_detector(device), load_landmarker(device))

    def detect(self, image: torch.Tensor) -> list[Face]:
        return self.detector(image)

    def landmarks_in_image(
        self,
        image: torch.Tensor,
        box: tuple[float, float, float, float] | Face,
        rotation: float = 0.0,
    ) -> tuple[torch.Tensor, float]:
        return self.landmarker.landmarks_in_image(image, box, rotation)


def load_detector(device: str | torch.device = "cpu") -> FaceDetector:
    """BlazeFace (short range) from the registry's file, converted once, on ``device``."""
    from ...weights import tflite_reader
    from ...weights.fetch import load_converted

    net = BlazeFaceNet()
    net.load_state_dict(load_converted("face_detection_short_range",
                                       tflite_reader.convert_face_detector,
                                       FaceModels.CONVERTER_VERSION))
    return FaceDetector(net).to(device)


def load_landmarker(device: str | torch.device = "cpu") -> FaceLandmarker:
    """The 468-point face mesh from the registry's file, converted once, on ``device``."""
    from ...weights import tflite_reader
    from ...weights.fetch import load_converted

    net = FaceMeshNet()
    net.load_state_dict(load_converted("face_landmark", tflite_reader.convert_face_landmarker,
                                       FaceModels.CONVERTER_VERSION))
    return FaceLandmarker(net).to(device)


_LOADED: dict[tuple[str, str], FaceDetector | FaceLandmarker | None] = {}
_LOADED_LOCK = threading.Lock()


def loaded_once(kind: Literal["detector", "landmarker"], device: torch.device
                ) -> FaceDetector | FaceLandmarker | None:
    """The daemon's one copy of a face model per device, or None if it cannot be had.

    Why None rather than an error: the portrait pass works without faces (the
    person mask and a size-based feature scale) and without the face check,
    only less exactly; a missing model file must not fail the job.
    """
    key = (kind, str(device))
    with _LOADED_LOCK:
        if key not in _LOADED:
            try:
                _LOADED[key] = (load_detector if kind == "detector" else load_landmarker)(device)
            except Exception:  # noqa: BLE001 - any failure means "no model", said in info
                _LOADED[key] = None
        return _LOADED[key]
