"""Face-confidence gate of each model, checked on data it was not calibrated on.

False rejects: real faces of the test photos found by the built-in detector (the real no-box
path, re-crop included) whose face confidence is below the model's gate. False accepts: boxes
on face-free corners of the test photos (the whole corner and its central 60 %) that pass the
gate. The gate is the one in each file's metadata (``calibration.confidence``), compared with
the fixed 0.5 used before calibration.

``python -m benchmarks.confidence_eval MODEL... --faces 500 --out benchmarks/results/confidence.json``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from landmarkdata.datasets import load_aflw2000_3d
from sdk.atomic import write_text
from sdk.predictor import Predictor, PredictorOptions

from .detector_eval import face_free_crops


def evaluate_gate(model: str, faces: int = 500, negatives: int = 300) -> dict[str, Any]:
    data = load_aflw2000_3d(limit=faces)
    gated = Predictor(model)
    gate = gated.face_gate
    raw = Predictor(model, options=PredictorOptions(min_face_confidence=0.0))
    real = []
    for i in range(len(data)):
        found = raw.predict(data.load_image(i))
        if len(found):
            real.append(float(found.face_confidence.max()))
    neg = []
    for crop in face_free_crops(load_aflw2000_3d(), negatives):
        h, w = crop.shape[:2]
        boxes = np.array([[0, 0, w - 1, h - 1], [0.2 * w, 0.2 * h, 0.8 * w, 0.8 * h]], np.float32)
        neg.extend(raw.predict(crop, boxes).face_confidence.tolist())
    real_a, neg_a = np.array(real), np.array(neg)
    row: dict[str, Any] = {"model": Path(model).name, "gate": gate, "informative": gate is not None,
                           "real_faces": len(real_a), "face_free_boxes": len(neg_a),
                           "real_median": float(np.median(real_a)), "face_free_median": float(np.median(neg_a))}
    for name, t in (("calibrated", gate), ("fixed_0.5", 0.5)):
        if t is None:
            row[name] = {"false_reject_pct": 0.0, "false_accept_pct": None}
            continue
        row[name] = {"false_reject_pct": round(100 * float(np.mean(real_a < t)), 2),
                     "false_accept_pct": round(100 * float(np.mean(neg_a >= t)), 2)}
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--faces", type=int, default=500)
    p.add_argument("--negatives", type=int, default=300)
    p.add_argument("--out")
    args = p.parse_args(argv)
    rows = []
    for m in args.models:
        rows.append(evaluate_gate(m, args.faces, args.negatives))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        write_text(args.out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
