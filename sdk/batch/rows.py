"""One output row per face (or per face-less / failed frame), the same in JSONL, CSV and Parquet.

Columns (``SCHEMA``): ``source`` (the input path), ``frame`` (0 for photos, the frame index in a
video), ``face`` (index of the face in the frame; -1 when there is none), ``faces`` (faces found in
that frame), ``status`` (``ok``, ``no_face`` or ``error``), ``error`` (the reason an input could not
be used), ``box`` ([x1, y1, x2, y2], image pixels: the box the landmarks were cropped from),
``face_confidence``, ``detector_score`` (None when boxes were given), ``landmarks`` (x0, y0, x1, y1, …
flattened, image pixels), ``point_confidence`` (one per point), ``scheme``, ``model``,
``model_sha256``, ``file_size`` and ``file_mtime_ns`` (what a rerun compares to skip done inputs).
CSV flattens the lists into ``box_x1 … box_y2``, ``x0, y0, …`` and ``c0, …`` columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np

SCHEMA: tuple[tuple[str, str], ...] = (
    ("source", "string"), ("frame", "int32"), ("face", "int32"), ("faces", "int32"), ("status", "string"),
    ("error", "string"), ("box", "list<float32>[4]"), ("face_confidence", "float32"), ("detector_score", "float32"),
    ("landmarks", "list<float32>[2·points]"), ("point_confidence", "list<float32>[points]"), ("scheme", "string"),
    ("model", "string"), ("model_sha256", "string"), ("file_size", "int64"), ("file_mtime_ns", "int64"),
)
COLUMNS = tuple(name for name, _ in SCHEMA)


def _round(values: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def prediction_rows(source: Any, frame: int, prediction: Any, model: dict[str, str], *,
                    to68: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Rows for one frame's ``sdk.Prediction`` (``to68``: write the 68-point subset instead)."""
    base = {"source": source.path, "frame": int(frame), "faces": len(prediction), "error": None,
            "scheme": "ibug68" if to68 is not None else prediction.scheme, **model,
            "file_size": source.size, "file_mtime_ns": source.mtime_ns}
    if len(prediction) == 0:
        return [{**base, "face": -1, "status": "no_face", "box": None, "face_confidence": None,
                 "detector_score": None, "landmarks": None, "point_confidence": None}]
    scores = prediction.extra.get("detector_scores")
    rows = []
    for i in range(len(prediction)):
        lm, pc = prediction.landmarks[i], prediction.point_confidence[i]
        if to68 is not None:
            lm, pc = lm[list(to68)], pc[list(to68)]
        rows.append({**base, "face": i, "status": "ok", "box": _round(prediction.boxes[i], 2),
                     "face_confidence": round(float(prediction.face_confidence[i]), 4),
                     "detector_score": None if scores is None else round(float(scores[i]), 4),
                     "landmarks": _round(lm, 3), "point_confidence": _round(pc, 4)})
    return rows


def error_row(source: Any, frame: int, error: str, model: dict[str, str], scheme: str) -> dict[str, Any]:
    return {"source": source.path, "frame": int(frame), "face": -1, "faces": 0, "status": "error", "error": error,
            "box": None, "face_confidence": None, "detector_score": None, "landmarks": None,
            "point_confidence": None, "scheme": scheme, **model, "file_size": source.size,
            "file_mtime_ns": source.mtime_ns}


def done_key(row: dict[str, Any]) -> tuple[str, int, int, int]:
    """What identifies a finished (input, frame): a rerun skips it when the file did not change."""
    return (str(row["source"]), int(row["file_size"]), int(row["file_mtime_ns"]), int(row["frame"]))


__all__ = ["COLUMNS", "SCHEMA", "done_key", "error_row", "prediction_rows"]
