"""Accuracy through the very Predictor users call: dataset → predictions → NME report."""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from sdk.predictor import Predictor

from sdk.schemes import map_landmarks

from .datasets import LandmarkDataset
from .metrics import aflw2000_3d_report, auc, box_normaliser, failure_rate, interocular_normaliser, nme


def predict_dataset(predictor: Predictor, dataset: LandmarkDataset, *, progress: bool = True,
                    desc: str = "predict") -> np.ndarray:
    """Landmarks (N, L, 2) in image pixels for every face of ``dataset``, from its own boxes."""
    out = []
    for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False, unit="face"):
        sample = dataset[i]
        out.append(predictor.predict(dataset.load_image(i), sample.box[None]).landmarks[0])
    return np.stack(out)


def score_predictions(pred: np.ndarray, dataset: LandmarkDataset, pred_scheme: str) -> dict[str, Any]:
    """NME report in the dataset's scheme (predictions mapped, e.g. 98 → 68) with its standard normaliser."""
    mapped = map_landmarks(pred, pred_scheme, dataset.scheme)
    gt = np.stack([s.landmarks for s in dataset])
    protocol = dataset.protocol
    normaliser = box_normaliser(gt) if protocol.normaliser == "box" else interocular_normaliser(gt, dataset.scheme)
    per_face = nme(mapped, gt, normaliser)
    if protocol.yaw_bins:
        report = aflw2000_3d_report(per_face, np.array([s.yaw for s in dataset], dtype=np.float64))
    else:
        report = {"nme": float(np.mean(per_face)), "count": int(len(per_face)),
                  "fr_10": float(failure_rate(per_face)), "auc_10": float(auc(per_face))}
    report["per_face_nme"] = per_face
    return report


def evaluate(predictor: Predictor, dataset: LandmarkDataset, *, progress: bool = True) -> dict[str, Any]:
    pred = predict_dataset(predictor, dataset, progress=progress)
    report = score_predictions(pred, dataset, predictor.metadata.scheme.name)
    report["predictions"] = pred
    return report
