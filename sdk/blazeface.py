"""MediaPipe's BlazeFace face detector: anchors, box/keypoint decoding and weighted NMS in numpy.

The network files (MediaPipe's Apache-2.0 models, provenance in ``sdk/data/blazeface/``) ship in
the three runtime formats, so the detector runs on whichever runtime is installed. Everything
around the network is written here from MediaPipe's published graph settings:

* Input: the whole frame letterboxed (aspect kept, zero border) to the model's square input,
  RGB scaled to [-1, 1], NHWC.
* Anchors: SSD anchors with fixed size 1 (``ssd_anchors``). Short range (128 px): strides 8, 16,
  16, 16, two anchors per cell and layer → 16·16·2 + 8·8·6 = 896. Full range (192 px): one
  stride-4 layer, one anchor per cell → 48·48 = 2304.
* Decoding: each anchor regresses 16 numbers — box centre offset, width, height, then six
  keypoints (right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion),
  all in input pixels relative to the anchor centre. Score = sigmoid of the clipped logit.
* Weighted non-maximum suppression (MediaPipe's ``WEIGHTED`` mode): the best detection absorbs
  every other one overlapping it by IoU ≥ 0.3, and its box and keypoints become the
  score-weighted mean of the group.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .backends import open_backend
from .boxes import BoxAdapter, iou
from .errors import InputError, ModelLoadError
from .formats import FORMATS, format_of

DATA_DIR = Path(__file__).resolve().parent / "data" / "blazeface"
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class BlazeFaceVariant:
    """One BlazeFace network and the settings of MediaPipe's graph for it."""

    name: str
    file_stem: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with the interpolated anchor, 1 without
    score_threshold: float
    nms_iou: float = 0.3
    logit_clip: float = 100.0


VARIANTS: dict[str, BlazeFaceVariant] = {v.name: v for v in (
    BlazeFaceVariant("short", "face_detection_short_range", 128, (8, 16, 16, 16), 2, 0.5),
    BlazeFaceVariant("full", "face_detection_full_range", 192, (4,), 1, 0.6),
)}


def ssd_anchors(variant: BlazeFaceVariant) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1] of the input, in the network's output order.

    Consecutive layers with the same stride share one grid: their anchors are emitted cell by
    cell, all of that grid's anchors per cell together (MediaPipe's SsdAnchorsCalculator).
    """
    centres = []
    strides = list(variant.strides)
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 1
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        cells = int(np.ceil(variant.input_size / stride))
        per_cell = same * variant.anchors_per_layer
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def decode(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int, logit_clip: float = 100.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network outputs → (boxes (A, 4) [x1, y1, x2, y2], scores (A,), keypoints (A, 6, 2)), in [0, 1]
    of the input. ``raw``: (A, 16) regressors; ``logits``: (A,) or (A, 1)."""
    raw = np.asarray(raw, dtype=np.float64).reshape(len(anchors), -1)
    if raw.shape[1] < 4 or (raw.shape[1] - 4) % 2:
        raise ValueError(f"BlazeFace regressors must be 4 box values + keypoint pairs, got {raw.shape[1]} per anchor")
    a = anchors.astype(np.float64)
    cx = raw[:, 0] / input_size + a[:, 0]
    cy = raw[:, 1] / input_size + a[:, 1]
    w = raw[:, 2] / input_size
    h = raw[:, 3] / input_size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:].reshape(len(a), -1, 2) / input_size + a[:, None, :]
    z = np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -logit_clip, logit_clip)
    scores = 1.0 / (1.0 + np.exp(-z))
    return boxes, scores, kp


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of its overlap group
    (boxes and keypoints), scored by the group's best score. Inputs already thresholded."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.arange(len(scores))
    out_b, out_s, out_k = [], [], []
    overlap = iou(boxes, boxes) if len(boxes) else np.zeros((0, 0))
    while len(remaining):
        top = remaining[0]
        group = remaining[overlap[top, remaining] >= iou_threshold]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[top])
        remaining = remaining[overlap[top, remaining] < iou_threshold]
    if not out_b:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, keypoints.shape[1] if keypoints.ndim == 3 else 6, 2))
    return np.stack(out_b), np.asarray(out_s), np.stack(out_k)


@dataclass(frozen=True)
class Letterbox:
    """Where the frame sits in the square input: input pixel (corner origin) = image corner coordinate ·
    scale + pad, per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    size: int

    def to_image(self, points01: np.ndarray) -> np.ndarray:
        """Points (..., 2) in [0, 1] of the input → image pixels (pixel-centre convention, sdk.preprocess)."""
        p = np.asarray(points01, dtype=np.float64) * self.size
        x = (p[..., 0] - self.pad_x) / self.scale_x - 0.5
        y = (p[..., 1] - self.pad_y) / self.scale_y - 0.5
        return np.stack([x, y], axis=-1)


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The frame fitted into a size×size square (aspect kept, black border) as a (1, size, size, 3)
    RGB float32 batch in [-1, 1], and where it sits (MediaPipe's keep-aspect-ratio input)."""
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    nw, nh = min(size, max(1, int(round(w * scale)))), min(size, max(1, int(round(h * scale))))
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = resized[..., ::-1]
    tensor = canvas.astype(np.float32)
    tensor *= np.float32(2.0 / 255.0)
    tensor -= np.float32(1.0)
    return tensor[None], Letterbox(nw / w, nh / h, float(px), float(py), size)



# Detector box → landmark-model box (the box around the 68 landmarks), per variant: fitted by
# ``python -m benchmarks.detector_eval`` (centre and longer side, medians) on 500 AFLW training
# crops with the bundled model's 68-point boxes as targets — never on the test photos.
ADAPTERS: dict[str, BoxAdapter] = {
    "short": BoxAdapter(scale_x=0.9479, scale_y=0.9479, shift_x=-0.0012, shift_y=0.0541),
    "full": BoxAdapter(scale_x=0.9024, scale_y=0.9024, shift_x=-0.0017, shift_y=0.0949),
}


def default_detector_file(variant: BlazeFaceVariant, fmt: str | None = None) -> Path:
    """The shipped file of ``variant`` in format ``fmt`` (default: the first whose runtime is installed)."""
    if fmt is None:
        from .formats import installed_formats  # looked up per call: what is installed can change under test

        usable = installed_formats()
        if not usable:
            raise ModelLoadError("no inference runtime is installed, so the face detector cannot run: "
                                 + " or ".join(f.install_hint for f in FORMATS.values()))
        fmt = min(usable, key=lambda f: DETECTOR_FORMAT_PREFERENCE.index(f.name)).name
    return DATA_DIR / f"{variant.file_stem}{FORMATS[fmt].extension}"


# Which shipped format the detector runs when several runtimes are installed (fastest first, measured
# by benchmarks.detector_eval on this project's reference machine).
DETECTOR_FORMAT_PREFERENCE = ("tflite", "openvino", "onnx")


class BlazeFaceNet:
    """One BlazeFace network on one runtime: frame → detections in image pixels, in its own box convention."""

    def __init__(self, variant: str = "short", *, model: str | Path | None = None, backend: str | None = None,
                 threads: int | None = None, score_threshold: float | None = None, nms_iou: float | None = None):
        if variant not in VARIANTS:
            raise InputError(f"unknown BlazeFace variant {variant!r}; choose from {sorted(VARIANTS)}")
        self.variant = VARIANTS[variant]
        self.score_threshold = self.variant.score_threshold if score_threshold is None else float(score_threshold)
        self.nms_iou = self.variant.nms_iou if nms_iou is None else float(nms_iou)
        if not 0.0 <= self.score_threshold <= 1.0 or not 0.0 < self.nms_iou <= 1.0:
            raise InputError(f"score_threshold must be in [0, 1] and nms_iou in (0, 1], got "
                             f"{self.score_threshold}, {self.nms_iou}")
        path = Path(model) if model is not None else default_detector_file(self.variant)
        if backend is None:
            format_of(path)  # a clear error for an unknown extension
        self.backend = open_backend(path, backend=backend, threads=threads, raw=True)
        self.anchors = ssd_anchors(self.variant)
        self._check_outputs()
        self.thread_safe = bool(self.backend.thread_safe)
        self._lock = threading.Lock()
        self.box_adapter = ADAPTERS.get(self.variant.name, BoxAdapter())

    def _check_outputs(self) -> None:
        size = self.variant.input_size
        try:
            raw = self.backend.run(np.zeros((1, size, size, 3), np.float32))
        except Exception as exc:  # each runtime has its own shape-mismatch error type
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ModelLoadError(f"{self.backend.path} does not take BlazeFace {self.variant.name}'s 1x{size}x{size}x3 "
                                 f"input: is it the {self.variant.file_stem} model? ({first})") from None
        reg, _ = self._split(raw)
        if len(reg) != len(self.anchors):
            raise ModelLoadError(f"{self.backend.path} gives {len(reg)} anchors but BlazeFace {self.variant.name} "
                                 f"has {len(self.anchors)}: is it the {self.variant.file_stem} model?")

    @staticmethod
    def _split(raw: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        reg = [v for v in raw.values() if v.shape[-1] == 16]
        cls = [v for v in raw.values() if v.shape[-1] == 1]
        if len(reg) != 1 or len(cls) != 1:
            raise ModelLoadError(f"a BlazeFace model has one (1, A, 16) and one (1, A, 1) output, got "
                                 f"{[v.shape for v in raw.values()]}")
        return reg[0].reshape(-1, 16), cls[0].reshape(-1)

    def detect_with_keypoints(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A validated HxWx3 uint8 BGR frame → (boxes (F, 4), scores (F,), keypoints (F, 6, 2)), best first."""
        tensor, where = letterbox(image, self.variant.input_size)
        if self.thread_safe:
            raw = self.backend.run(tensor)
        else:
            with self._lock:
                raw = self.backend.run(tensor)
        reg, cls = self._split(raw)
        boxes, scores, kps = decode(reg, cls, self.anchors, self.variant.input_size, self.variant.logit_clip)
        keep = scores >= self.score_threshold
        boxes, scores, kps = weighted_nms(boxes[keep], scores[keep], kps[keep], self.nms_iou)
        corners = where.to_image(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return corners.astype(np.float32), scores.astype(np.float32), where.to_image(kps).astype(np.float32)


class BlazeFaceDetector:
    """``FaceDetector`` on MediaPipe's BlazeFace: ``detect(image_bgr) -> (boxes (F, 4), scores (F,))`` in
    image pixels, and ``detect_with_keypoints`` for the six keypoints (``KEYPOINT_NAMES``) too.

    ``variant``: "auto" (default: the short-range network, and the full-range one only when the
    short-range one finds no face — large faces fast, small and distant faces still found),
    "short" (128 px input, faces filling a good part of the frame) or "full" (192 px, small
    faces too, ~4× slower); ``model``: a file of that variant in any format (not with "auto";
    default: the shipped one for an installed runtime); ``score_threshold`` / ``nms_iou``:
    MediaPipe's values unless given; ``max_faces``: keep the best N. Boxes come in the first
    network's convention, and ``box_adapter`` maps them onto the landmark models' boxes.
    """

    def __init__(self, variant: str = "auto", *, model: str | Path | None = None, backend: str | None = None,
                 threads: int | None = None, score_threshold: float | None = None, nms_iou: float | None = None,
                 max_faces: int | None = None):
        if max_faces is not None and (not isinstance(max_faces, int) or max_faces < 1):
            raise InputError(f"max_faces must be a positive integer or None, got {max_faces!r}")
        if variant == "auto" and model is not None:
            raise InputError("variant='auto' runs both shipped networks; give variant='short' or 'full' with model=")
        names = ("short", "full") if variant == "auto" else (variant,)
        self.variant = variant
        self.nets = [BlazeFaceNet(v, model=model, backend=backend, threads=threads, score_threshold=score_threshold,
                                  nms_iou=nms_iou) for v in names]
        self.max_faces = max_faces
        self.box_adapter = self.nets[0].box_adapter
        self.thread_safe = all(n.thread_safe for n in self.nets)

    @property
    def backend(self):
        return self.nets[0].backend

    def detect_with_keypoints(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (F, 4) float32 [x1, y1, x2, y2], scores (F,), keypoints (F, 6, 2)) in image pixels,
        best first; keypoints in ``KEYPOINT_NAMES`` order."""
        from .preprocess import validate_image

        image = validate_image(image_bgr)
        first = self.nets[0]
        boxes, scores, kps = np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        for net in self.nets:
            boxes, scores, kps = net.detect_with_keypoints(image)
            if len(boxes):
                if net is not first:  # into the first network's box convention, which box_adapter expects
                    boxes = first.box_adapter.invert(net.box_adapter.apply(boxes))
                break
        if self.max_faces is not None:
            boxes, scores, kps = boxes[: self.max_faces], scores[: self.max_faces], kps[: self.max_faces]
        return boxes, scores, kps

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores, _ = self.detect_with_keypoints(image_bgr)
        return boxes, scores

    def __repr__(self) -> str:
        return f"BlazeFaceDetector({self.variant!r}, models={[str(n.backend.path) for n in self.nets]})"


__all__ = ["ADAPTERS", "DATA_DIR", "KEYPOINT_NAMES", "VARIANTS", "BlazeFaceDetector", "BlazeFaceNet", "BlazeFaceVariant",
           "Letterbox", "decode", "default_detector_file", "letterbox", "ssd_anchors", "weighted_nms"]
