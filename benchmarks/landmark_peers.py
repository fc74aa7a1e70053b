"""The landmarkers a user would pick instead of edgemark, behind the one call the benchmark times.

Each peer answers ``predict(image, boxes)`` with a :class:`sdk.predictor.Prediction` in the iBUG-68
scheme (``boxes=None``: the peer finds the faces its own way), ``raw_call(image, boxes)`` (the
bare network / regressor call on a ready input, what "raw" means for edgemark files) and
``tracker()`` (its video mode). Box rules, one bench row each (``BOX_RULES``):

* ``gt`` — the box the ground-truth protocol gives edgemark, read by the peer's own rule:
  MediaPipe's ROI (long side × 1.5, square; no eye keypoints, so no rotation), dlib's box as given.
* ``gt_own`` — dlib only: the same box mapped onto the boxes dlib's predictor was trained on
  (its HOG detector's), by a ``BoxAdapter`` fitted on AFLW *training* faces at run time.
* ``detector`` — edgemark's built-in detector (BlazeFace): MediaPipe builds its ROI from the raw
  box and the eye keypoints (rotation included, as MediaPipe does); dlib gets the box edgemark's
  adapter makes of it, mapped onto dlib's convention as in ``gt_own``.
* ``pipeline`` — the peer's own end-to-end path: MediaPipe's BlazeFace short-range + Face Mesh
  (the same as ``detector`` for MediaPipe, whose detector *is* BlazeFace); dlib's HOG detector +
  shape predictor.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from sdk.predictor import Prediction

from .facemesh import (FACE_PRESENCE_THRESHOLD, INPUT_SIZE, FaceMesh, PeerUnavailable, mesh_to_ibug68,
                       roi_from_box, roi_from_detection, roi_from_mesh)

PEER_MODELS = ("mediapipe_facemesh", "dlib_68")
BOX_RULES = {"mediapipe_facemesh": ("gt", "pipeline"), "dlib_68": ("gt", "gt_own", "detector", "pipeline")}
SCHEME = "ibug68"
ADAPTER_FIT_FACES = 300


def _box_rule(model: str, rule: str) -> str:
    """``rule`` when the peer ``model`` has it (``BOX_RULES``), else a ValueError naming its rules."""
    if rule not in BOX_RULES[model]:
        raise ValueError(f"{model} box rules: {BOX_RULES[model]}, not {rule!r}")
    return rule


def _prediction(landmarks: np.ndarray, boxes: np.ndarray, presence: np.ndarray | None = None,
                extra: dict[str, Any] | None = None) -> Prediction:
    n = len(landmarks)
    conf = np.ones(n, np.float32) if presence is None else presence.astype(np.float32)
    return Prediction(landmarks=landmarks.astype(np.float32), scores=np.repeat(conf[:, None], 68, axis=1),
                      boxes=np.asarray(boxes, np.float32).reshape(-1, 4), scheme=SCHEME, extra=extra or {},
                      point_confidence=np.repeat(conf[:, None], 68, axis=1), face_confidence=conf)


class FaceMeshPeer:
    """MediaPipe Face Mesh with MediaPipe's ROI rules (``benchmarks.facemesh``)."""

    scheme = SCHEME

    def __init__(self, box_rule: str = "gt", threads: int | None = None):
        from sdk.blazeface import BlazeFaceDetector

        self.box_rule = _box_rule("mediapipe_facemesh", box_rule)
        self.mesh = FaceMesh(threads=threads)
        self.detector = BlazeFaceDetector("short", threads=threads)  # MediaPipe's Face Mesh front pipeline

    def _detected_rois(self, image: np.ndarray):
        boxes, _, keypoints = self.detector.detect_with_keypoints(image)
        return [roi_from_detection(b, k) for b, k in zip(boxes, keypoints)], boxes

    def predict(self, image: np.ndarray, boxes=None) -> Prediction:
        detected = boxes is None
        if detected:
            rois, boxes = self._detected_rois(image)
        else:
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            rois = [roi_from_box(b) for b in boxes]
        mesh, presence = self.mesh.landmarks(image, rois)
        if detected:  # MediaPipe drops a detected face whose presence is low
            keep = presence > FACE_PRESENCE_THRESHOLD
            mesh, presence, boxes = mesh[keep], presence[keep], boxes[keep]
        return _prediction(mesh_to_ibug68(mesh), boxes, presence, {"mesh": mesh})

    def raw_call(self, image: np.ndarray, boxes: np.ndarray) -> Callable[[], Any]:
        tensor = np.repeat(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32), len(boxes), axis=0)
        return lambda: self.mesh.run(tensor)

    def tracker(self) -> "FaceMeshTracker":
        return FaceMeshTracker(self)


class FaceMeshTracker:
    """MediaPipe's video mode: the ROI of frame t+1 comes from the mesh of frame t; the detector runs
    only when no face is tracked or the face-presence score falls below 0.5."""

    def __init__(self, peer: FaceMeshPeer):
        self.peer = peer
        self.roi = None
        self.detections_run = 0

    def update(self, frame: np.ndarray, timestamp: float | None = None) -> Prediction:
        if self.roi is None:
            self.detections_run += 1
            rois, _ = self.peer._detected_rois(frame)
            if not rois:
                return _prediction(np.zeros((0, 68, 2)), np.zeros((0, 4)))
            self.roi = rois[0]
        mesh, presence = self.peer.mesh.landmarks(frame, [self.roi])
        if presence[0] <= FACE_PRESENCE_THRESHOLD:
            self.roi = None
            return _prediction(np.zeros((0, 68, 2)), np.zeros((0, 4)))
        self.roi = roi_from_mesh(mesh[0])
        return _prediction(mesh_to_ibug68(mesh), np.zeros((1, 4)), presence)


class DlibPeer:
    """dlib's 68-point shape predictor (``benchmarks.dlib_peer``)."""

    scheme = SCHEME

    def __init__(self, box_rule: str = "gt", threads: int | None = None):
        from .dlib_peer import DlibShapePredictor

        self.box_rule = _box_rule("dlib_68", box_rule)
        self.threads = threads
        self.shape = DlibShapePredictor()
        self._to_dlib = None
        self._edgemark = None
        if box_rule in ("gt_own", "detector"):
            self._to_dlib = self.fit_box_rule()

    def fit_box_rule(self):
        """BoxAdapter: dlib HOG box → edgemark's box convention, fitted on AFLW training faces (its
        ``invert`` maps a protocol box onto the boxes dlib was trained on)."""
        from .detector_eval import fit_adapter

        adapter, _ = fit_adapter(HogDetector(self.shape), self._default_predictor(), ADAPTER_FIT_FACES,
                                 progress=False)
        return adapter

    def _default_predictor(self):
        if self._edgemark is None:
            from sdk.predictor import Predictor

            self._edgemark = Predictor(threads=self.threads)
        return self._edgemark

    def _dlib_boxes(self, image: np.ndarray, boxes) -> np.ndarray:
        if boxes is None:
            if self.box_rule == "pipeline":
                return self.shape.hog_boxes(image)
            boxes, _, _ = self._default_predictor().detect_faces(image)  # edgemark's detector + adapter
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        return self._to_dlib.invert(boxes) if self._to_dlib is not None else boxes

    def predict(self, image: np.ndarray, boxes=None) -> Prediction:
        used = self._dlib_boxes(image, boxes)
        return _prediction(self.shape.landmarks(image, used), used)

    def raw_call(self, image: np.ndarray, boxes: np.ndarray) -> Callable[[], Any]:
        gray = self.shape.gray(image)
        used = self._dlib_boxes(image, boxes)
        return lambda: self.shape.landmarks_gray(gray, used)

    def tracker(self) -> None:
        return None  # dlib has no video mode of its own


class HogDetector:
    """dlib's HOG frontal face detector behind edgemark's ``FaceDetector`` protocol (for fitting)."""

    def __init__(self, shape):
        self.shape = shape

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = self.shape.hog_boxes(image_bgr)
        return boxes, np.ones(len(boxes), np.float32)


def open_peer(model: str, box_rule: str, threads: int | None = None):
    """A landmark peer by name (``PEER_MODELS``) and box rule (``BOX_RULES``)."""
    if model == "mediapipe_facemesh":
        return FaceMeshPeer(box_rule, threads)
    if model == "dlib_68":
        return DlibPeer(box_rule, threads)
    raise ValueError(f"unknown landmark peer {model!r}; known: {PEER_MODELS}")


def available_peers() -> dict[str, str | None]:
    """Each peer model → None when installed, else why not (the bench skips it and says so)."""
    from . import dlib_peer, facemesh

    out: dict[str, str | None] = {}
    for name, check in (("mediapipe_facemesh", facemesh.model_file), ("dlib_68", dlib_peer.model_file)):
        try:
            check()
            if name == "dlib_68":
                dlib_peer._dlib()
            out[name] = None
        except PeerUnavailable as exc:
            out[name] = str(exc)
    return out
