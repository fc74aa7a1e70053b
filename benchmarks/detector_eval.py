"""Face detectors side by side: box adapters fitted on training crops, then recall, false detections,
speed and landmark NME on the test photos, in one run.

    python -m benchmarks.detector_eval --out benchmarks/results/detectors.json

* **Fit** (``--fit N`` AFLW training crops, never the test photos): each crop is centred in a
  canvas twice its size (a face in a frame, not a face filling it); the target is the box the
  landmark models use — the 68-point subset box of the default model's landmarks on that crop,
  re-cropped once (the same rule that made the training crops) — and ``BoxAdapter.fit`` (centre
  and longer side) maps the detector's boxes onto it.
* **Recall** on all AFLW2000-3D photos, per |yaw| bin: the photo goes through
  ``Predictor.predict(image)`` with that detector (adapter, one landmark re-crop, the face
  confidence gate: the user's path); the face is found when one returned face has NME ≤ 10 %.
* **False detections** on face-free crops cut from the AFLW2000-3D photos away from the
  labelled face (corners that do not touch the face box enlarged ×1.5, upscaled to 320 px):
  raw detections, and faces that survive the Predictor's confidence gate.
* **Speed**: milliseconds per 640×480 frame (a test photo letterboxed into it), 1 and 2 threads.
* **NME** with the detected box vs the ground-truth box, over the faces each detector found.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from calibration.confidence import in_double_frame
from landmarkdata.datasets import load_aflw2000_3d, load_aflw_faces
from landmarkdata.metrics import YAW_BINS, box_normaliser, nme, yaw_bins
from sdk.boxes import BoxAdapter, box_from_landmarks, iou
from sdk.predictor import Predictor, PredictorOptions
from sdk.schemes import map_landmarks

from .options import emit_report
from .pipeline import frame_640x480

FOUND_NME = 10.0


def make_detector(name: str, threads: int | None = None):
    """"blazeface-auto" (the default detector), "blazeface-short", "blazeface-full" or "cascade" (numpy Haar)."""
    if name.startswith("blazeface-"):
        from sdk.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(name.split("-", 1)[1], threads=threads)
    if name == "cascade":
        from sdk.detection import CascadeDetector

        return CascadeDetector()
    raise ValueError(f"unknown detector {name!r}")


def fit_adapter(detector, predictor: Predictor, count: int, seed: int = 0, progress: bool = True
                ) -> tuple[BoxAdapter, dict[str, Any]]:
    """BoxAdapter from the detector's boxes to the model's 68-subset landmark box, on AFLW training crops."""
    data = load_aflw_faces()
    order = np.random.default_rng(seed).permutation(len(data))
    to68 = predictor.metadata.scheme.to68
    det_boxes, targets, tried = [], [], 0
    for i in tqdm(order, desc="fit", disable=not progress, leave=False):
        if len(targets) >= count:
            break
        tried += 1
        crop = data.load_image(int(i))
        canvas, ox, oy = in_double_frame(crop)
        box = data.boxes[int(i)] + np.array([ox, oy, ox, oy], np.float32)
        if not np.isfinite(box).all():
            continue
        lm = predictor.predict(canvas, box[None]).landmarks[0]
        lm = predictor.predict(canvas, box_from_landmarks(lm, to68)[None]).landmarks[0]
        target = box_from_landmarks(lm, to68)
        boxes, _ = detector.detect(canvas)
        if len(boxes) == 0:
            continue
        best = int(np.argmax(iou(boxes, target)[:, 0]))
        if iou(boxes[best], target)[0, 0] < 0.3:
            continue
        det_boxes.append(boxes[best])
        targets.append(target)
    adapter = BoxAdapter.fit(np.stack(det_boxes), np.stack(targets), mode="crop")
    return adapter, {"crops_tried": tried, "crops_fitted": len(targets)}


def recall_and_nme(predictor: Predictor, data, progress: bool = True, desc: str = "recall") -> dict[str, Any]:
    """Per test photo: found (a returned face within FOUND_NME), its NME, and the GT-box NME."""
    found = np.zeros(len(data), bool)
    nme_det = np.full(len(data), np.nan)
    detections = np.zeros(len(data), np.int64)
    scheme = predictor.metadata.scheme.name
    for i in tqdm(range(len(data)), desc=desc, disable=not progress, leave=False):
        image = data.load_image(i)
        gt = data.landmarks[i][None]
        result = predictor.predict(image)
        detections[i] = len(result)
        if len(result):
            errs = nme(map_landmarks(result.landmarks, scheme, data.scheme), np.repeat(gt, len(result), 0),
                       np.repeat(box_normaliser(gt), len(result)))
            nme_det[i] = float(np.min(errs))
            found[i] = nme_det[i] <= FOUND_NME
    bins = yaw_bins(data.yaws)
    return {"found": found, "nme_detected": nme_det, "detections": detections, "bins": bins}


def face_free_crops(data, count: int, size: int = 320, seed: int = 0) -> list[np.ndarray]:
    """Corners of the test photos that stay clear of the labelled face box enlarged ×1.5."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in rng.permutation(len(data)):
        if len(crops) >= count:
            break
        image = data.load_image(int(i))
        h, w = image.shape[:2]
        x1, y1, x2, y2 = data.boxes[int(i)]
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.75 * max(x2 - x1, y2 - y1)
        fx1, fy1, fx2, fy2 = cx - half, cy - half, cx + half, cy + half
        side = int(min(h, w) * 0.3)
        for ox, oy in ((0, 0), (w - side, 0), (0, h - side), (w - side, h - side)):
            if ox + side <= fx1 or ox >= fx2 or oy + side <= fy1 or oy >= fy2:
                crop = image[oy:oy + side, ox:ox + side]
                crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR))
                break
    return crops


def ms_per_frame(detector, frame: np.ndarray, runs: int) -> float:
    detector.detect(frame)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        detector.detect(frame)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def evaluate_detectors(names: Sequence[str], *, fit: int = 500, limit: int | None = None, negatives: int = 300,
                       model: str | None = None, threads: int = 2, progress: bool = True) -> dict[str, Any]:
    data = load_aflw2000_3d(limit=limit)
    gt_pred = Predictor(model, threads=threads)
    scheme = gt_pred.metadata.scheme.name
    gt_nme = np.array([float(nme(map_landmarks(gt_pred.predict(data.load_image(i), data.boxes[i][None]).landmarks,
                                               scheme, data.scheme), data.landmarks[i][None],
                                 box_normaliser(data.landmarks[i][None]))[0])
                       for i in tqdm(range(len(data)), desc="gt boxes", disable=not progress, leave=False)])
    negatives_set = face_free_crops(data, negatives)
    frame = frame_640x480(data.load_image(0))
    report: dict[str, Any] = {"faces": len(data), "found_rule": f"a returned face with NME <= {FOUND_NME} %",
                              "negatives": len(negatives_set), "model": str(gt_pred.model_path),
                              "nme_gt_boxes_all": float(np.mean(gt_nme)), "detectors": {}}
    for name in names:
        detector = make_detector(name, threads=threads)
        adapter, fit_info = fit_adapter(detector, gt_pred, fit, progress=progress)
        detector.box_adapter = adapter
        predictor = Predictor(model, options=PredictorOptions(threads=threads, detector=detector))
        r = recall_and_nme(predictor, data, progress=progress, desc=name)
        raw_false = sum(len(detector.detect(c)[0]) for c in negatives_set)
        kept_false = sum(len(predictor.predict(c)) for c in negatives_set)
        found = r["found"]
        entry = {
            "adapter": adapter.__dict__, "fit": fit_info,
            "recall": float(found.mean()),
            "recall_by_yaw": {label: float(found[r["bins"] == k].mean()) for k, label in enumerate(YAW_BINS)},
            "faces_by_yaw": {label: int((r["bins"] == k).sum()) for k, label in enumerate(YAW_BINS)},
            "false_detections_raw": int(raw_false), "false_faces_after_confidence_gate": int(kept_false),
            "nme_detected_boxes_found": float(np.nanmean(r["nme_detected"][found])),
            "nme_gt_boxes_same_faces": float(np.mean(gt_nme[found])),
        }
        for t in (1, 2):
            det_t = make_detector(name, threads=t)
            entry[f"ms_per_640x480_frame_{t}_thread{'s' if t > 1 else ''}"] = ms_per_frame(
                det_t, frame, runs=5 if name == "cascade" else 50)
        report["detectors"][name] = entry
        if progress:
            print(name, json.dumps({k: v for k, v in entry.items() if k not in ("fit",)}), file=sys.stderr)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=["blazeface-auto", "blazeface-short", "blazeface-full", "cascade"])
    ap.add_argument("--fit", type=int, default=500, help="AFLW training crops to fit each adapter on")
    ap.add_argument("--limit", type=int, help="first N test photos only")
    ap.add_argument("--negatives", type=int, default=300, help="face-free crops")
    ap.add_argument("--model", help="landmark model (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the report (JSON) here")
    args = ap.parse_args(argv)
    report = evaluate_detectors(args.detectors, fit=args.fit, limit=args.limit, negatives=args.negatives,
                                model=args.model, threads=args.threads)
    return emit_report(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
