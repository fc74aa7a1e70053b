"""How much a quantized model moves the landmarks, measured on the calibration source's held-out split.

The budget metric is *agreement with the FP32 model*: NME (%, box-normalised) of the
quantized model's landmarks against the FP32 model's landmarks on the same crops. It
needs no ground truth in the model's scheme (the default calibration source, AFLW faces,
has 21 sparse points, not WFLW-98), and it bounds the ground-truth NME increase from
above (triangle inequality, see ``calibration.sets.agreement_nme``). Where the source's
ground truth can be mapped to the model's scheme the GT NME of both models is reported too.
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


@dataclass(frozen=True)
class Validation:
    faces: int
    nme_vs_fp32: float  # mean agreement NME, %, the budget metric
    nme_vs_fp32_p95: float
    max_px_vs_fp32: float  # largest landmark move in image pixels
    gt: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"faces": self.faces, "nme_vs_fp32": round(self.nme_vs_fp32, 4),
               "nme_vs_fp32_p95": round(self.nme_vs_fp32_p95, 4), "max_px_vs_fp32": round(self.max_px_vs_fp32, 3)}
        if self.gt is not None:
            out["gt"] = {k: round(v, 4) for k, v in self.gt.items()}
        return out


def compare_on_validation(reference: np.ndarray, candidate: np.ndarray, cs: CalibrationSet,
                          scheme: str) -> Validation:
    """Agreement of ``candidate`` with ``reference`` landmarks (both image px) on ``cs``'s validation faces."""
    per_face = agreement_nme(candidate, reference, cs.val_boxes)
    moved = np.linalg.norm(candidate.astype(np.float64) - reference, axis=-1)
    gt = _gt_report(reference, candidate, cs, scheme)
    return Validation(len(per_face), float(np.mean(per_face)), float(np.percentile(per_face, 95)),
                      float(moved.max()) if moved.size else 0.0, gt)


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
    norm = box_normaliser(cs.val_landmarks)
    a = float(np.nanmean(nme(ref, cs.val_landmarks, norm)))
    b = float(np.nanmean(nme(cand, cs.val_landmarks, norm)))
    return {"nme_fp32": a, "nme_int8": b, "increase": b - a}
