"""Face-box geometry shared by every layer: the box around landmarks, IoU, and mirroring.

Boxes are ``[x1, y1, x2, y2]`` in image pixels; points ``(..., L, 2)``; the pixel-centre
convention of ``sdk.preprocess`` (mirroring maps x to W − 1 − x).
"""
from __future__ import annotations

import warnings
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


__all__ = ["box_from_landmarks", "iou", "mirror_boxes", "unmirror_points"]
