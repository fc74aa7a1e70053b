"""dlib's 68-point shape predictor as a benchmark peer (an ensemble of regression trees, Kazemi &
Sullivan 2014), on the same face boxes as edgemark.

The model is ``shape_predictor_68_face_landmarks.dat`` from the ``face-recognition-models`` 0.3.0
package (the package declares its models CC0; dlib's own notes say the model was trained on iBUG
300-W, whose licence excludes commercial use — so it is a benchmark peer only, never shipped), run
by the prebuilt ``dlib-bin`` 20.0.1. Its 68 points are the iBUG scheme AFLW2000-3D is labelled in.

dlib returns whole-pixel part positions (``dlib.point`` holds integers): that rounding is part of
what a dlib user gets, so it is kept. The predictor was trained on boxes from dlib's HOG frontal
face detector; ``hog_boxes`` runs that detector (its own box rule) for the row that uses it.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import cv2
import numpy as np

from .facemesh import PeerUnavailable

PACKAGE = "face-recognition-models"
MODEL_IN_PACKAGE = "face_recognition_models/models/shape_predictor_68_face_landmarks.dat"


def _dlib():
    try:
        import dlib
    except ImportError:
        raise PeerUnavailable("the dlib peer needs dlib: pip install dlib-bin==20.0.1 (bench extra)") from None
    return dlib


def model_file() -> Path:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise PeerUnavailable(f"the dlib peer needs {PACKAGE}==0.3.0 (bench extra)") from None
    path = Path(str(dist.locate_file(MODEL_IN_PACKAGE)))
    if not path.is_file():
        raise PeerUnavailable(f"{PACKAGE} is installed but {MODEL_IN_PACKAGE} is missing from it")
    return path


class DlibShapePredictor:
    """68 points per face box of a BGR image. dlib runs single-threaded whatever ``threads`` says."""

    def __init__(self, model: str | Path | None = None):
        self._lib = _dlib()
        self.path = Path(model) if model is not None else model_file()
        self._predict = self._lib.shape_predictor(str(self.path))
        self._hog = None

    @staticmethod
    def gray(image_bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)

    def _rect(self, box: np.ndarray):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        return self._lib.rectangle(x1, y1, x2, y2)

    def landmarks_gray(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(F, 68, 2) float32 image pixels for boxes ``[x1, y1, x2, y2]`` on a grayscale image."""
        out = np.empty((len(boxes), 68, 2), np.float32)
        for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
            shape = self._predict(gray, self._rect(box))
            out[i] = [(p.x, p.y) for p in shape.parts()]
        return out

    def landmarks(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.landmarks_gray(self.gray(image_bgr), boxes)

    def hog_boxes(self, image_bgr: np.ndarray, upsample: int = 1) -> np.ndarray:
        """dlib's own HOG frontal face detector → (F, 4) boxes (the boxes the predictor was trained on)."""
        if self._hog is None:
            self._hog = self._lib.get_frontal_face_detector()
        rects = self._hog(self.gray(image_bgr), upsample)
        return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
