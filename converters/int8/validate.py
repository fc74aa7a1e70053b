"""How much a quantized model costs in accuracy, estimated on the calibration source's held-out split.

The budget is the **relative increase of NME against ground truth**, ``NME_int8 / NME_fp32 − 1``.
Measured directly on 100 held-out faces it is too noisy to bound 0.5 %: the cross term between
the model's own error ``e`` and the INT8 displacement ``δ`` (INT8 minus FP32 landmarks) is
zero on average but dominates a small sample. The estimate keeps what is not noise, the sizes:

    predicted = Σ_points mean_θ |e + R_θ δ| / Σ_points |e| − 1     (16 angles θ; per face, / box size)

— the expected error when the displacement's direction is unrelated to the error's. ``e`` comes
from the held-out faces' labels in the model's scheme or a mapped subset (WFLW-98 → AFLW-21 for
the default AFLW calibration faces). Without usable labels (``reference_nme`` given) the
aggregate rule ``sqrt(1 + (d / N)²) − 1`` is used, d the INT8-vs-FP32 NME. On the 2,000 test
faces the labelled estimate errs high (safe): H3R-128 INT8 predicted +0.30 / +0.44 / +0.29 % on
400 held-out faces (ORT / TFLite / OpenVINO) where the test faces measure +0.16 / +0.28 / +0.01 %;
measured directly on those 400 faces the same files gave −0.26 / −0.23 / −0.79 %.
Checked on the 2,000 AFLW2000-3D faces, predicted vs measured per file:
``python -m benchmarks.int8_budget`` (README, INT8 table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.sets import CalibrationSet, agreement_nme
from sdk.backends.base import Backend
from sdk.predictor import Predictor
from sdk.preprocess import to_image_coords


def landmarks_on(backend: Backend, cs: CalibrationSet, batch: int = 16) -> np.ndarray:
    """Landmarks (M, L, 2) in image pixels for the validation crops of ``cs``."""
    pred = Predictor(backend)
    meta = pred.metadata
    tensors = cs.as_layout(meta.input.layout, "validation")
    pts = [pred.infer(tensors[i:i + batch])[0] for i in range(0, len(tensors), batch)]
    return to_image_coords(np.concatenate(pts), cs.val_matrices, meta.crop.coordinate_origin)


def aggregate_increase(displacement_nme: float, fp32_nme: float) -> float:
    """Aggregate rule: relative NME increase in % from the INT8-vs-FP32 NME ``d`` and FP32 NME ``N``."""
    return 100.0 * (float(np.sqrt(1.0 + (displacement_nme / fp32_nme) ** 2)) - 1.0)


ANGLES = 16


def decorrelated_increase(fp32: np.ndarray, int8: np.ndarray, gt: np.ndarray, normaliser: np.ndarray) -> float:
    """Relative NME increase in % expected when INT8's displacement is unrelated in direction to the
    FP32 error (module doc). Arrays (N, L, 2) in one scheme; NaN ground-truth points are skipped."""
    norm = np.asarray(normaliser, dtype=np.float64)[:, None, None]
    e = (np.asarray(fp32, np.float64) - gt) / norm
    d = (np.asarray(int8, np.float64) - fp32) / norm
    ok = ~np.isnan(e).any(-1) & ~np.isnan(d).any(-1)
    e, d = e[ok], d[ok]
    theta = np.arange(ANGLES) * (2 * np.pi / ANGLES)
    c, s = np.cos(theta), np.sin(theta)
    rx = e[:, 0, None] + d[:, 0, None] * c - d[:, 1, None] * s
    ry = e[:, 1, None] + d[:, 0, None] * s + d[:, 1, None] * c
    base = np.linalg.norm(e, axis=-1).sum()
    return 100.0 * (float(np.sqrt(rx ** 2 + ry ** 2).mean(-1).sum() / base) - 1.0) if base > 0 else float("inf")


@dataclass(frozen=True)
class Validation:
    faces: int
    nme_vs_fp32: float  # d: mean agreement NME of INT8 vs FP32 landmarks, %
    nme_vs_fp32_p95: float
    max_px_vs_fp32: float  # largest landmark move in image pixels
    gt: dict[str, float] | None = None
    fp32_nme: float | None = None  # N: the FP32 model's NME vs ground truth the relative budget refers to
    fp32_nme_source: str = ""
    labelled_increase: float | None = None  # the decorrelated estimate on held-out labels, %

    @property
    def predicted_increase(self) -> float:
        """Predicted relative GT-NME increase in % (inf when nothing to predict it from)."""
        if self.labelled_increase is not None:
            return self.labelled_increase
        if self.fp32_nme is None or not self.fp32_nme > 0:
            return float("inf")
        return aggregate_increase(self.nme_vs_fp32, self.fp32_nme)

    def to_dict(self) -> dict[str, Any]:
        out = {"faces": self.faces, "nme_vs_fp32": round(self.nme_vs_fp32, 4),
               "nme_vs_fp32_p95": round(self.nme_vs_fp32_p95, 4), "max_px_vs_fp32": round(self.max_px_vs_fp32, 3)}
        if self.gt is not None:
            out["gt"] = {k: round(v, 4) for k, v in self.gt.items()}
        if self.fp32_nme is not None:
            out.update(fp32_nme=round(self.fp32_nme, 4), fp32_nme_source=self.fp32_nme_source,
                       predicted_increase_pct=round(self.predicted_increase, 4))
        return out


def compare_on_validation(reference: np.ndarray, candidate: np.ndarray, cs: CalibrationSet,
                          scheme: str, reference_nme: float | None = None) -> Validation:
    """Agreement of ``candidate`` with ``reference`` landmarks (both image px) on ``cs``'s validation faces,
    and N: the held-out labels' FP32 NME (``reference_nme``, when given, wins)."""
    per_face = agreement_nme(candidate, reference, cs.val_boxes)
    moved = np.linalg.norm(candidate.astype(np.float64) - reference, axis=-1)
    gt = _gt_report(reference, candidate, cs, scheme)
    labelled = None
    if reference_nme is not None:
        n, source = float(reference_nme), "given (--reference-nme); aggregate rule"
    elif gt is not None:
        n, source = gt["nme_fp32"], f"{len(per_face)} held-out faces, labels {gt['labels']}"
        labelled = gt.pop("decorrelated_increase")
    else:
        n, source = None, ""
    return Validation(len(per_face), float(np.mean(per_face)), float(np.percentile(per_face, 95)),
                      float(moved.max()) if moved.size else 0.0,
                      None if gt is None else {k: v for k, v in gt.items() if k != "labels"}, n, source, labelled)


def _gt_report(reference: np.ndarray, candidate: np.ndarray, cs: CalibrationSet, scheme: str) -> dict | None:
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme

    if cs.gt_scheme is None or cs.val_landmarks.shape[1] == 0:
        return None
    try:
        ref = map_landmarks(reference, scheme, cs.gt_scheme)
        cand = map_landmarks(candidate, scheme, cs.gt_scheme)
    except ValueError:  # e.g. a WFLW-98 model on AFLW-21 faces: no mapping, agreement only
        return None
    gt = np.where(np.isnan(ref).any(-1, keepdims=True), np.nan, cs.val_landmarks)  # score mapped points only
    norm = box_normaliser(cs.val_landmarks)
    a = float(np.nanmean(nme(ref, gt, norm)))
    b = float(np.nanmean(nme(cand, gt, norm)))
    mapped = scheme == cs.gt_scheme
    return {"nme_fp32": a, "nme_int8": b, "increase": b - a,
            "decorrelated_increase": decorrelated_increase(ref, cand, gt, norm),
            "labels": cs.gt_scheme if mapped else f"{cs.gt_scheme} (mapped subset of {scheme})"}
