"""Face-box geometry shared by every layer: the box around landmarks, IoU, and mirroring.

Boxes are ``[x1, y1, x2, y2]`` in image pixels; points ``(..., L, 2)``; the pixel-centre
convention of ``sdk.preprocess`` (mirroring maps x to W − 1 − x).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def box_from_landmarks(points: np.ndarray, subset: Sequence[int] | None = None) -> np.ndarray:
    """``[min x, min y, max x, max y]`` of the annotated points, for (L, 2) → (4,) or (N, L, 2) → (N, 4).

    ``subset``: only these point indices (a 98-point face's 68-point subset gives the box the
    AFLW2000-3D protocol and the landmark models use). NaN points are ignored; a face with no
    annotated point gets a NaN box.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (..., L, 2), got {pts.shape}")
    if subset is not None:
        pts = pts[..., list(subset), :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN faces → NaN box, on purpose
        lo = np.nanmin(pts, axis=-2)
        hi = np.nanmax(pts, axis=-2)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) of boxes ``a`` (N, 4) and ``b`` (M, 4); a single box (4,) counts as one row."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Boxes of the horizontally mirrored image: x → W − 1 − x."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.stack([width - 1 - b[:, 2], b[:, 1], width - 1 - b[:, 0], b[:, 3]], axis=1)


def unmirror_points(points: np.ndarray, edge: float, permutation: Sequence[int]) -> np.ndarray:
    """Points predicted on a mirrored image (or crop) → the original's, in scheme order.

    ``edge``: x ↦ edge − x undoes the mirror (W − 1 for pixel-centre coordinates, W for
    corner coordinates); ``permutation``: the scheme's flip permutation (left ↔ right points).
    """
    p = np.asarray(points, dtype=np.float64)[..., list(permutation), :].copy()
    p[..., 0] = edge - p[..., 0]
    return p


@dataclass(frozen=True)
class BoxAdapter:
    """Detector box → landmark-model box: centre shifted by ``shift_x·w, shift_y·h``, size scaled.

    Detectors and landmark training sets disagree on what a "face box" is (a Haar box
    is a square from brows to mouth; the landmark models expect the box around the 68
    landmarks, jaw included). A box off by 10 % costs more NME than most model changes,
    so each detector gets an adapter fitted on real faces (:meth:`fit`).
    """

    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def __post_init__(self) -> None:
        if not (self.scale_x > 0 and self.scale_y > 0):
            raise ValueError(f"box adapter scales must be positive, got {self.scale_x}, {self.scale_y}")
        if not all(np.isfinite([self.scale_x, self.scale_y, self.shift_x, self.shift_y])):
            raise ValueError("box adapter parameters must be finite")

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """Detector boxes (F, 4) → model boxes (F, 4), float32."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        cx = (b[:, 0] + b[:, 2]) / 2 + self.shift_x * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.shift_y * h
        nw, nh = w * self.scale_x, h * self.scale_y
        return np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], axis=1).astype(np.float32)

    def invert(self, boxes: np.ndarray) -> np.ndarray:
        """Model boxes (F, 4) → detector-style boxes: the exact inverse of :meth:`apply`."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        w, h = (b[:, 2] - b[:, 0]) / self.scale_x, (b[:, 3] - b[:, 1]) / self.scale_y
        cx = (b[:, 0] + b[:, 2]) / 2 - self.shift_x * w
        cy = (b[:, 1] + b[:, 3]) / 2 - self.shift_y * h
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)

    @classmethod
    def fit(cls, detected: np.ndarray, target: np.ndarray, mode: str = "crop") -> "BoxAdapter":
        """The adapter mapping ``detected`` boxes onto ``target`` boxes (paired rows), by medians.

        ``mode="crop"`` (default) matches what the landmark model sees: the centre and the longer
        side (the crop is a square of side ∝ max(w, h)), scaling both axes alike. ``mode="box"``
        matches width and height separately (the box itself, e.g. for drawing). Medians, not
        means: a few wrong pairings (a detection on the wrong face) would otherwise drag the fit.
        """
        d = np.asarray(detected, dtype=np.float64).reshape(-1, 4)
        t = np.asarray(target, dtype=np.float64).reshape(-1, 4)
        if len(d) == 0 or len(d) != len(t):
            raise ValueError(f"need equally many detected and target boxes (got {len(d)} and {len(t)})")
        if mode not in ("crop", "box"):
            raise ValueError(f"mode must be 'crop' or 'box', got {mode!r}")
        dw, dh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
        tw, th = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        if mode == "crop":
            sx = sy = float(np.median(np.maximum(tw, th) / np.maximum(dw, dh)))
        else:
            sx, sy = float(np.median(tw / dw)), float(np.median(th / dh))
        return cls(scale_x=sx, scale_y=sy,
                   shift_x=float(np.median(((t[:, 0] + t[:, 2]) - (d[:, 0] + d[:, 2])) / 2 / dw)),
                   shift_y=float(np.median(((t[:, 1] + t[:, 3]) - (d[:, 1] + d[:, 3])) / 2 / dh)))


__all__ = ["BoxAdapter", "box_from_landmarks", "iou", "mirror_boxes", "unmirror_points"]
