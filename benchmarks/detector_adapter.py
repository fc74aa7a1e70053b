"""Fit a detector's BoxAdapter on AFLW2000-3D and measure what it costs in NME.

    python -m benchmarks.detector_adapter --model h3r_mobilenetv2_128_fp32.onnx [--fit 300 --test 300]

Faces are taken in file order; a face counts as found when a detection overlaps its
ground-truth 68-landmark box with IoU >= 0.3 (the best one is used). The first ``--fit``
found faces fit the adapter (medians of the box ratios); the next ``--test`` found faces
(other images) measure NME (box-normalised, 98 → 68 mapping) with the ground-truth box,
the adapted detection and the raw detection. Three fits are compared: "box" (width and height
medians), "crop" (centre and longer side: the crop the model sees) and "nme" (a grid over
scale and vertical shift, keeping the one with the lowest NME on the fit faces).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sdk.boxes import iou


def match_detections(detector, dataset, wanted: int, min_iou: float = 0.3, progress: bool = True) -> dict[str, Any]:
    """Run ``detector`` over ``dataset`` in order until ``wanted`` faces are matched."""
    found_idx, found_boxes, extra = [], [], 0
    seen = 0
    bar = tqdm(total=wanted, desc="detect", unit="face", disable=not progress)
    for i in range(len(dataset)):
        if len(found_idx) >= wanted:
            break
        seen += 1
        boxes, _ = detector.detect(dataset.load_image(i))
        if len(boxes):
            ov = iou(boxes, dataset.boxes[i])[:, 0]
            best = int(np.argmax(ov))
            extra += int((ov < min_iou).sum())
            if ov[best] >= min_iou:
                found_idx.append(i)
                found_boxes.append(boxes[best])
                bar.update()
    bar.close()
    return {"indices": np.array(found_idx, np.int64), "boxes": np.array(found_boxes, np.float32).reshape(-1, 4),
            "images_seen": seen, "unmatched_detections": extra}


def nme_with_boxes(predictor, dataset, indices: np.ndarray, boxes: np.ndarray, refine: int = 0) -> np.ndarray:
    """Per-face NME from the given boxes, optionally re-cropped ``refine`` times from the landmarks
    (what ``Predictor.predict`` does after detection)."""
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme
    from sdk.detection import landmark_box

    def one(image, box):
        lm = predictor.predict(image, box[None]).landmarks[0]
        for _ in range(refine):
            lm = predictor.predict(image, landmark_box(lm, predictor.metadata.scheme.to68)[None]).landmarks[0]
        return lm

    pred = np.stack([one(dataset.load_image(int(i)), b) for i, b in zip(indices, boxes)])
    gt = dataset.landmarks[indices]
    return nme(map_landmarks(pred, predictor.metadata.scheme.name, dataset.scheme), gt, box_normaliser(gt))


def fit_for_nme(predictor, dataset, indices: np.ndarray, boxes: np.ndarray, base, scales, shifts_y,
                progress: bool = True):
    """The adapter (from a grid over scale and vertical shift, ``base.shift_x`` kept) with the lowest
    mean NME on the given faces: the crop the model does best with, not just the closest box.
    Returns (adapter, {(scale, shift_y): nme})."""
    from sdk.detection import BoxAdapter

    grid = {}
    images = {int(i): dataset.load_image(int(i)) for i in indices}
    combos = [(s, dy) for s in scales for dy in shifts_y]
    for s, dy in tqdm(combos, desc="grid", disable=not progress):
        a = BoxAdapter(scale_x=s, scale_y=s, shift_x=base.shift_x, shift_y=dy)
        pred = np.stack([predictor.predict(images[int(i)], a.apply(b[None])).landmarks[0] for i, b in zip(indices, boxes)])
        from sdk.schemes import map_landmarks
        from landmarkdata.metrics import box_normaliser, nme

        gt = dataset.landmarks[indices]
        grid[(s, dy)] = float(nme(map_landmarks(pred, predictor.metadata.scheme.name, dataset.scheme), gt,
                                  box_normaliser(gt)).mean())
    s, dy = min(grid, key=grid.get)
    return BoxAdapter(scale_x=s, scale_y=s, shift_x=base.shift_x, shift_y=dy), grid


def main(argv: list[str] | None = None) -> int:
    from landmarkdata.datasets import load_aflw2000_3d
    from sdk.detection import BoxAdapter, CascadeDetector
    from sdk.predictor import Predictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="landmark model used for the NME figures")
    ap.add_argument("--fit", type=int, default=300)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--cache", help="npz file caching the matched detections (re-used when present)")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.84, 0.92, 1.0, 1.08, 1.16, 1.24, 1.32, 1.4, 1.5])
    ap.add_argument("--shifts-y", type=float, nargs="+", default=[-0.05, 0.0, 0.05, 0.1])
    args = ap.parse_args(argv)

    data = load_aflw2000_3d()
    det = CascadeDetector(engine=args.engine)
    if args.cache and Path(args.cache).is_file():
        cached = np.load(args.cache)
        m = {k: cached[k] for k in ("indices", "boxes")}
        m.update(images_seen=int(cached["images_seen"]), unmatched_detections=int(cached["unmatched_detections"]))
    else:
        m = match_detections(det, data, args.fit + args.test)
        if args.cache:
            np.savez(args.cache, **m)
    if len(m["indices"]) < args.fit + args.test:
        print(f"only {len(m['indices'])} faces found", file=sys.stderr)
    fit_i, test_i = m["indices"][: args.fit], m["indices"][args.fit:]
    fit_b, test_b = m["boxes"][: args.fit], m["boxes"][args.fit:]
    adapters = {mode: BoxAdapter.fit(fit_b, data.boxes[fit_i], mode=mode) for mode in ("crop", "box")}
    predictor = Predictor(args.model)
    report: dict[str, Any] = {
        "detector": repr(det), "images_seen": m["images_seen"], "faces_found": int(len(m["indices"])),
        "found_rate": len(m["indices"]) / m["images_seen"], "unmatched_detections": m["unmatched_detections"],
        "fit_faces": int(len(fit_i)), "test_faces": int(len(test_i)),
        "test_nme_gt_box": float(nme_with_boxes(predictor, data, test_i, data.boxes[test_i]).mean()),
        "test_nme_raw_detection": float(nme_with_boxes(predictor, data, test_i, test_b).mean()),
        "test_box_iou_raw": float(np.mean([iou(b, data.boxes[i])[0, 0] for i, b in zip(test_i, test_b)])),
    }
    for mode, adapter in adapters.items():
        report[f"adapter_{mode}"] = adapter.__dict__
        report[f"test_nme_adapted_{mode}"] = float(nme_with_boxes(predictor, data, test_i, adapter.apply(test_b)).mean())
        report[f"fit_nme_adapted_{mode}"] = float(nme_with_boxes(predictor, data, fit_i, adapter.apply(fit_b)).mean())
        report[f"test_box_iou_adapted_{mode}"] = float(np.mean([iou(adapter.apply(b[None]), data.boxes[i])[0, 0]
                                                               for i, b in zip(test_i, test_b)]))
    best, grid = fit_for_nme(predictor, data, fit_i, fit_b, adapters["crop"], args.scales, args.shifts_y)
    report["adapter_nme"] = best.__dict__
    report["fit_nme_adapted_nme"] = grid[(best.scale_x, best.shift_y)]
    report["test_nme_adapted_nme"] = float(nme_with_boxes(predictor, data, test_i, best.apply(test_b)).mean())
    report["test_box_iou_adapted_nme"] = float(np.mean([iou(best.apply(b[None]), data.boxes[i])[0, 0]
                                                       for i, b in zip(test_i, test_b)]))
    for mode, adapter in (("raw", BoxAdapter()), ("crop", adapters["crop"]), ("nme", best)):
        report[f"test_nme_{mode}_refined_once"] = float(
            nme_with_boxes(predictor, data, test_i, adapter.apply(test_b), refine=1).mean())
    report["fit_grid"] = {f"scale={k[0]:.3f},shift_y={k[1]:.3f}": round(v, 4) for k, v in sorted(grid.items())}
    report["fit_nme_gt_box"] = float(nme_with_boxes(predictor, data, fit_i, data.boxes[fit_i]).mean())
    report["fit_nme_raw_detection"] = float(nme_with_boxes(predictor, data, fit_i, fit_b).mean())
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
