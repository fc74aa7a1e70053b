"""Face detectors for ``Predictor.predict(image)`` without boxes, and the box adapter that
turns a detector's boxes into the boxes a landmark model was trained with.

Any object with ``detect(image_bgr) -> (boxes (F, 4) float32 [x1, y1, x2, y2], scores (F,))``
is a :class:`FaceDetector`. An optional ``box_adapter`` attribute says how its boxes relate to
the landmark models' boxes (the box around the 68 ground-truth landmarks); detectors
without one are taken as already matching.

Built in:

* :class:`sdk.blazeface.BlazeFaceDetector` (the default, ``default_detector``): MediaPipe's
  BlazeFace networks shipped in every runtime format, so it runs on whichever runtime is
  installed; short range first, full range when that finds no face.
* :class:`CascadeDetector` (a named fallback): OpenCV's frontal-face Haar cascade, evaluated by
  ``cv2.CascadeClassifier`` where the installed OpenCV has it (4.x) and by the numpy
  evaluator in :mod:`sdk.haar` otherwise (OpenCV 5 dropped the class and the cascade files;
  the cascade ships with edgemark in ``sdk/data``). Offline, no extra dependency, frontal
  faces only (|yaw| up to about 45°).
* :class:`YuNetDetector`: OpenCV's ``FaceDetectorYN`` on a user-supplied YuNet ONNX file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .boxes import BoxAdapter, box_from_landmarks
from .errors import InputError, ModelLoadError

CASCADE_ENV_VAR = "EDGEMARK_FACE_CASCADE"
DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(image_bgr) -> (boxes (F, 4) float32, scores (F,) float32)``."""

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


IDENTITY_ADAPTER = BoxAdapter()

# Fitted by benchmarks/detector_adapter.py on 300 AFLW2000-3D faces found by the default cascade
# (numpy engine), H3R-128 ONNX: the scale/shift with the lowest mean NME ("nme" fit). The purely
# geometric fit (centre and longer side of the 68-landmark box: scale 0.836, shift_y +0.136) gives
# the closest boxes (IoU 0.75) but worse NME on 300 other faces (3.55 % vs 3.45 %): a crop too
# tight where the detector is misplaced cuts the chin off, one too loose costs little. Predictor
# then re-crops from the landmarks (PredictorOptions.refine), which brings either to ~3.33 %.
CASCADE_ADAPTER = BoxAdapter(scale_x=1.32, scale_y=1.32, shift_x=-0.0016, shift_y=-0.05)


def landmark_box(points: np.ndarray, to68: tuple[int, ...] | None = None) -> np.ndarray:
    """Box ``[x1, y1, x2, y2]`` around a face's points (its 68-point subset when the scheme maps to
    68): the box the landmark models are trained and evaluated with (AFLW2000-3D protocol)."""
    return box_from_landmarks(points, to68)


def box_adapter_of(detector: object) -> BoxAdapter:
    """The detector's ``box_adapter`` attribute, or the identity for detectors that have none."""
    adapter = getattr(detector, "box_adapter", None)
    return adapter if isinstance(adapter, BoxAdapter) else IDENTITY_ADAPTER


def _as_gray(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError("the detector needs a uint8 image (HxW gray or HxWx3 BGR)")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise InputError(f"the detector needs HxW or HxWx3 uint8, got shape {image.shape}")


def find_cascade(name: str = DEFAULT_CASCADE) -> Path:
    """Locate a cascade file: ``$EDGEMARK_FACE_CASCADE``, the copy shipped in ``sdk/data``
    (gzip), then OpenCV 4's ``cv2.data.haarcascades``."""
    candidates = []
    if os.environ.get(CASCADE_ENV_VAR):
        candidates.append(Path(os.environ[CASCADE_ENV_VAR]))
    here = Path(__file__).resolve().parent / "data"
    candidates += [here / f"{name}.gz", here / name]
    cv_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if cv_dir:
        candidates.append(Path(cv_dir) / name)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelLoadError(f"face cascade {name!r} not found (looked in: {', '.join(map(str, candidates))}); "
                         f"set {CASCADE_ENV_VAR} to an OpenCV cascade XML file")


class CascadeDetector:
    """OpenCV Haar-cascade face detector (frontal faces), offline and dependency-free.

    ``engine``: "numpy" (the evaluator in :mod:`sdk.haar`, works on every OpenCV version),
    "opencv" (``cv2.CascadeClassifier``, OpenCV 4 only, faster) or "auto" (OpenCV's where it
    exists). Both give the same boxes (checked window by window against OpenCV 4.14).
    Scores are OpenCV's neighbour counts (how many raw windows merged into the face): a
    ranking signal, not a probability. Faces smaller than ``max(min_size,
    min_relative_size · shorter image side)`` pixels are not searched for (speed).
    """

    def __init__(self, cascade: str | Path | None = None, *, scale_factor: float = 1.1, min_neighbors: int = 3,
                 min_size: int = 24, min_relative_size: float = 0.08, engine: str = "auto",
                 box_adapter: BoxAdapter | None = None):
        if engine not in ("auto", "numpy", "opencv"):
            raise ValueError(f"engine must be 'auto', 'numpy' or 'opencv', got {engine!r}")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        path = Path(cascade) if cascade is not None else find_cascade()
        from .haar import HaarCascade

        self.cascade_path = path
        self._opencv = None
        has_cv = hasattr(cv2, "CascadeClassifier")
        if engine == "opencv" and not has_cv:
            raise ModelLoadError(f"cv2.CascadeClassifier is not available in OpenCV {cv2.__version__}; use engine='numpy'")
        if engine in ("opencv", "auto") and has_cv:
            self._opencv = _load_opencv_cascade(path)
        self._cascade = None if self._opencv is not None else HaarCascade.load(path)
        self.engine = "opencv" if self._opencv is not None else "numpy"
        self.thread_safe = self.engine == "numpy"  # the numpy evaluator keeps no per-call state
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.min_relative_size = float(min_relative_size)
        self.box_adapter = CASCADE_ADAPTER if box_adapter is None else box_adapter

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gray = _as_gray(image_bgr)
        if min(gray.shape) < 2:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        min_side = int(max(self.min_size, self.min_relative_size * min(gray.shape)))
        if self._opencv is not None:
            rects, neighbours = self._opencv.detectMultiScale2(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
            rects = np.asarray(rects, np.float64).reshape(-1, 4)
            counts = np.asarray(neighbours, np.float64).reshape(-1)
        else:
            from .haar import group_rectangles

            raw, _ = self._cascade.detect_raw(gray, self.scale_factor, min_side)
            rects, counts = group_rectangles(raw, self.min_neighbors)
            rects = rects.astype(np.float64)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        order = np.argsort(-counts, kind="stable")
        rects, counts = rects[order], counts[order]
        # OpenCV rectangles cover pixels x .. x+w-1: in pixel-centre coordinates that is [x, x+w-1].
        boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2] - 1, rects[:, 1] + rects[:, 3] - 1], 1)
        return boxes.astype(np.float32), counts.astype(np.float32)

    def __repr__(self) -> str:
        return f"CascadeDetector({str(self.cascade_path)!r}, engine={self.engine!r})"


def _load_opencv_cascade(path: Path):
    """``cv2.CascadeClassifier`` for a plain or gzip XML file (read from memory, no temp file)."""
    import gzip

    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    storage = cv2.FileStorage(raw.decode("utf-8"), cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    clf = cv2.CascadeClassifier()
    if not clf.read(storage.getFirstTopLevelNode()):
        raise ModelLoadError(f"OpenCV cannot read the cascade {path}")
    return clf


class YuNetDetector:
    """OpenCV's YuNet face detector (``cv2.FaceDetectorYN``) on a YuNet ONNX file you supply.

    Not exercised here beyond its error paths: no YuNet file is available offline. Its boxes
    are assumed to match the landmark models' boxes (identity adapter) until fitted —
    pass ``box_adapter=BoxAdapter.fit(...)`` after calibrating on your data.
    """

    def __init__(self, model_path: str | Path, *, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 top_k: int = 5000, box_adapter: BoxAdapter | None = None):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"YuNet model file not found: {self.model_path}")
        create = getattr(cv2, "FaceDetectorYN_create", None) or getattr(getattr(cv2, "FaceDetectorYN", None), "create", None)
        if create is None:
            raise ModelLoadError(f"cv2.FaceDetectorYN is not available in OpenCV {cv2.__version__}")
        try:
            self._net = create(str(self.model_path), "", (320, 320), score_threshold, nms_threshold, top_k)
        except cv2.error as exc:
            raise ModelLoadError(f"OpenCV cannot load {self.model_path} as a YuNet model: "
                                 f"{str(exc).strip().splitlines()[-1][:200]}") from None
        self.box_adapter = IDENTITY_ADAPTER if box_adapter is None else box_adapter

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3:
            raise InputError("YuNet needs an HxWx3 uint8 BGR image")
        h, w = image_bgr.shape[:2]
        self._net.setInputSize((w, h))
        _, faces = self._net.detect(image_bgr)
        if faces is None or len(faces) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        f = np.asarray(faces, np.float64)
        boxes = np.stack([f[:, 0], f[:, 1], f[:, 0] + f[:, 2], f[:, 1] + f[:, 3]], axis=1)
        return boxes.astype(np.float32), f[:, -1].astype(np.float32)


def default_detector(threads: int | None = None) -> "FaceDetector":
    """The detector ``Predictor`` uses when it has to find faces itself: BlazeFace ("auto": short
    range, full range when that finds none) on the first installed runtime (``sdk.blazeface``), with
    the landmark model's thread count."""
    from .blazeface import BlazeFaceDetector

    return BlazeFaceDetector("auto", threads=threads)


__all__ = ["BoxAdapter", "CASCADE_ADAPTER", "CascadeDetector", "FaceDetector", "IDENTITY_ADAPTER", "YuNetDetector",
           "box_adapter_of", "default_detector", "find_cascade", "landmark_box"]
