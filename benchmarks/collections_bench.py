"""Photo-collection throughput on all AFLW2000-3D photos, local engine vs Ray Data, in one run.

    python -m benchmarks.collections_bench --out benchmarks/results/collections.json

Every photo goes through the built-in detector and the bundled model (``edgemark predict FOLDER
--out rows``). Reported per setting: faces/s (whole job, start-up included), rows and their schema,
and, for the faces whose box matches the ground-truth face (IoU ≥ 0.5), the NME of the rows against
the labels next to ``edgemark eval``'s NME (ground-truth boxes) on the same faces.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from landmarkdata.datasets import load_aflw2000_3d
from landmarkdata.evaluate import predict_dataset
from landmarkdata.metrics import box_normaliser, nme
from sdk.batch import SCHEMA, BatchOptions, read_rows, run_batch
from sdk.boxes import iou
from sdk.predictor import Predictor
from sdk.schemes import map_landmarks

from .options import emit_report


def _matched_nme(rows: list[dict[str, Any]], data) -> tuple[np.ndarray, np.ndarray]:
    """(indices of test faces found, their NME) from the rows, matching boxes to the GT box."""
    by_name = {}
    for r in rows:
        if r["status"] == "ok":
            by_name.setdefault(Path(r["source"]).name, []).append(r)
    found, errs = [], []
    for i, name in enumerate(data.names):
        cands = by_name.get(name, [])
        if not cands:
            continue
        overlap = iou(np.array([c["box"] for c in cands]), data.boxes[i])[:, 0]
        best = int(np.argmax(overlap))
        if overlap[best] < 0.5:
            continue
        lm = np.reshape(cands[best]["landmarks"], (1, -1, 2))
        gt = data.landmarks[i][None]
        errs.append(float(nme(map_landmarks(lm, cands[best]["scheme"], data.scheme), gt, box_normaliser(gt))[0]))
        found.append(i)
    return np.array(found, np.int64), np.array(errs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="first N photos only")
    ap.add_argument("--out", help="write the report (JSON) here")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args(argv)
    data = load_aflw2000_3d(limit=args.limit)
    folder = data.image_paths[0].parent
    inputs = [str(p) for p in data.image_paths]
    report: dict[str, Any] = {"photos": len(inputs), "schema": [list(c) for c in SCHEMA], "runs": {}}
    work = Path(tempfile.mkdtemp(prefix="edgemark-collections-"))
    rows = None
    try:
        for workers, threads in ((1, 1), (1, 2), (2, 1)):
            out = work / f"local_{workers}x{threads}.jsonl"
            summary = run_batch(inputs, out, BatchOptions(workers=workers, threads=threads, progress=False))
            rows = read_rows(out)
            report["runs"][f"local {workers} worker(s) x {threads} thread(s)"] = {
                "seconds": round(summary.seconds, 2), "faces": summary.faces, "rows": len(rows),
                "faces_per_s": round(summary.faces / summary.seconds, 2)}
            print(json.dumps(report["runs"]), file=sys.stderr)
        if not args.no_ray:
            import ray

            from sdk.batch.ray_engine import run_ray

            ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # 2 for actors, 1 for reading
            try:
                for actors in (1, 2):
                    out = work / f"ray_{actors}.parquet"
                    start = time.perf_counter()
                    counts = run_ray(inputs, out, BatchOptions(progress=False), actors=actors,
                                     cpus_per_actor=2 / actors)
                    seconds = time.perf_counter() - start
                    faces = sum(1 for r in read_rows(out) if r["status"] == "ok")
                    report["runs"][f"ray {actors} actor(s) x {2 // actors} thread(s)"] = {
                        "seconds": round(seconds, 2), "faces": faces, "rows": counts["rows"],
                        "faces_per_s": round(faces / seconds, 2)}
                    print(json.dumps(report["runs"]), file=sys.stderr)
            finally:
                ray.shutdown()
        found, errs = _matched_nme(rows, data)
        gt_pred = predict_dataset(Predictor(threads=2), data.subset(found), progress=False)
        gt = data.landmarks[found]
        gt_nme = nme(map_landmarks(gt_pred, "wflw98", data.scheme), gt, box_normaliser(gt))
        report.update(matched_faces=int(len(found)), nme_rows_matched=float(errs.mean()),
                      nme_eval_gt_boxes_same_faces=float(gt_nme.mean()), folder=str(folder))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return emit_report(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
