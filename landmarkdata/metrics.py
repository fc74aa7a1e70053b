"""Landmark accuracy metrics (REFERENCE.md §2): NME, FR, AUC, CED and protocol reports.

Pure, vectorised numpy. NaN-aware in one precise sense: ground-truth points that
are NaN (not annotated) are ignored, and a face whose NME is NaN (nothing to
score: no annotated point, or a NaN normaliser) is left out of every summary.
A NaN *prediction* at an annotated point is a model failure, not a missing
label, so it scores as an infinite error (it counts as a failure and makes the
mean infinite rather than silently vanishing).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sdk.boxes import box_from_landmarks
from sdk.metadata import LandmarkScheme
from sdk.schemes import INTEROCULAR

YAW_BINS: tuple[str, ...] = ("0-30", "30-60", "60-90")


def _as_batch(points: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(points, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"{what} must have shape (N, L, 2) or (L, 2), got {np.shape(points)}")
    return a


def nme(pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray | float) -> np.ndarray:
    """Per-face NME in %: mean Euclidean error over annotated points / normaliser × 100.

    ``pred``/``gt``: (N, L, 2) or (L, 2); ``normaliser``: scalar or (N,). Returns (N,) float64.
    """
    p, g = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} differ in shape")
    norm = np.broadcast_to(np.asarray(normaliser, dtype=np.float64), (g.shape[0],))
    annotated = ~np.isnan(g).any(axis=-1)  # (N, L)
    err = np.linalg.norm(p - g, axis=-1)
    err = np.where(annotated & np.isnan(err), np.inf, err)  # NaN prediction on a labelled point
    count = annotated.sum(axis=-1)
    total = np.where(annotated, err, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_err = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return mean_err / norm * 100.0


def _nan_box(gt: np.ndarray) -> np.ndarray:
    return box_from_landmarks(_as_batch(gt, "gt"))


def box_normaliser(gt: np.ndarray) -> np.ndarray:
    """sqrt(w·h) of each face's GT-landmark box (AFLW / AFLW2000-3D protocol), (N,)."""
    b = _nan_box(gt)
    return np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


def interocular_normaliser(gt: np.ndarray, scheme: str | LandmarkScheme) -> np.ndarray:
    """Outer-eye-corner distance (300W 36/45, WFLW 60/72, COFW 8/9), (N,).

    NaN where either corner is not annotated, which leaves that face out.
    """
    name = scheme.name if isinstance(scheme, LandmarkScheme) else str(scheme)
    if name not in INTEROCULAR:
        raise ValueError(f"no inter-ocular points known for scheme {name!r}; known: {sorted(INTEROCULAR)}")
    a, b = INTEROCULAR[name]
    g = _as_batch(gt, "gt")
    if g.shape[1] <= max(a, b):
        raise ValueError(f"scheme {name!r} needs points {a} and {b} but gt has {g.shape[1]} points")
    return np.linalg.norm(g[:, a] - g[:, b], axis=-1)


def diag_normaliser(boxes: np.ndarray) -> np.ndarray:
    """Diagonal of each ``[x1, y1, x2, y2]`` box, (N,)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def _scored(nmes: np.ndarray | Sequence[float]) -> np.ndarray:
    a = np.asarray(nmes, dtype=np.float64).reshape(-1)
    return a[~np.isnan(a)]


def failure_rate(nmes: np.ndarray | Sequence[float], threshold: float = 10.0) -> float:
    """Percent of faces with NME > threshold (strictly greater); NaN when no face is scored."""
    a = _scored(nmes)
    return float(np.mean(a > threshold) * 100.0) if a.size else float("nan")


def auc(nmes: np.ndarray | Sequence[float], threshold: float = 10.0) -> float:
    """Area under the CED curve on [0, threshold] divided by threshold, in [0, 1].

    Exact for the step-shaped empirical CED: face i adds the step 1/n on [e_i, t], so the
    area is mean(max(0, t − e_i)) — no sampling grid, no discretisation error.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    a = _scored(nmes)
    if not a.size:
        return float("nan")
    return float(np.mean(np.clip(threshold - np.maximum(a, 0.0), 0.0, threshold)) / threshold)


def ced_curve(
    nmes: np.ndarray | Sequence[float], threshold: float = 10.0, steps: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution for plotting: x in [0, threshold], y = share with NME ≤ x."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    a = np.sort(_scored(nmes))
    x = np.linspace(0.0, threshold, steps)
    y = np.searchsorted(a, x, side="right") / a.size if a.size else np.full(steps, np.nan)
    return x, y


def summary(nmes: np.ndarray | Sequence[float], threshold: float = 10.0) -> dict[str, float | int]:
    """Mean NME, scored count, FR and AUC at ``threshold`` (keys ``fr_10``/``auc_10`` for 10)."""
    a = _scored(nmes)
    t = f"{threshold:g}"
    return {
        "nme": float(a.mean()) if a.size else float("nan"),
        "count": int(a.size),
        f"fr_{t}": failure_rate(a, threshold),
        f"auc_{t}": auc(a, threshold),
    }


def yaw_bins(yaw: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bin index per face from |yaw|: 0 for ≤30°, 1 for (30, 60], 2 for >60° (incl. beyond 90°)."""
    y = np.abs(np.asarray(yaw, dtype=np.float64).reshape(-1))
    if np.isnan(y).any():
        raise ValueError("yaw contains NaN; every face needs a yaw to be binned")
    return np.where(y <= 30.0, 0, np.where(y <= 60.0, 1, 2))


def aflw2000_3d_report(
    nmes: np.ndarray | Sequence[float], yaw: np.ndarray | Sequence[float], threshold: float = 10.0
) -> dict[str, Any]:
    """AFLW2000-3D protocol summary (3DDFA-style): all faces, three |yaw| bins, mean of bins."""
    e = np.asarray(nmes, dtype=np.float64).reshape(-1)
    bins = yaw_bins(yaw)
    if bins.shape != e.shape:
        raise ValueError(f"{e.size} NMEs but {bins.size} yaw values")
    per_bin = {label: summary(e[bins == k], threshold) for k, label in enumerate(YAW_BINS)}
    bin_means = [per_bin[label]["nme"] for label in YAW_BINS]
    report: dict[str, Any] = dict(summary(e, threshold))
    report["nme_bins"] = {label: per_bin[label]["nme"] for label in YAW_BINS}
    report["nme_bin_mean"] = float(np.mean(bin_means))  # NaN if a bin is empty: undefined then
    report["count_bins"] = {label: per_bin[label]["count"] for label in YAW_BINS}
    return report


def subset_report(
    nmes: np.ndarray | Sequence[float],
    subsets: Sequence[str | None],
    threshold: float = 10.0,
    full: Sequence[str] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Per-subset summaries plus "full" (300W common/challenge/full, WFLW attribute subsets).

    A label may hold several comma-separated names (WFLW "pose,occlusion"): the face then
    counts in each. "full" covers every face, or with ``full`` given only faces carrying
    one of those names (e.g. ``full=("common", "challenge")`` to leave training faces out).
    """
    e = np.asarray(nmes, dtype=np.float64).reshape(-1)
    if len(subsets) != e.size:
        raise ValueError(f"{e.size} NMEs but {len(subsets)} subset labels")
    members = [frozenset(p.strip() for p in s.split(",") if p.strip()) if s else frozenset() for s in subsets]
    names = sorted(set().union(*members)) if members else []
    report = {n: summary(e[np.array([n in m for m in members], dtype=bool)], threshold) for n in names}
    if full is None:
        report["full"] = summary(e, threshold)
    else:
        wanted = set(full)
        report["full"] = summary(e[np.array([bool(m & wanted) for m in members], dtype=bool)], threshold)
    return report


__all__ = [
    "YAW_BINS", "aflw2000_3d_report", "auc", "box_normaliser", "ced_curve", "diag_normaliser", "failure_rate",
    "interocular_normaliser", "nme", "subset_report", "summary", "yaw_bins",
]
