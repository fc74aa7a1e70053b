"""Latency of the real path, stage by stage: ``predict(image)`` without boxes on a 640×480 frame.

The stages are those ``Predictor.predict`` runs, timed one by one on the same inputs (median of
``runs`` calls each): JPEG decode, face detection (with the box adapter), crop (``prepare_batch``),
inference (the backend), decoding (outputs by role, decoder, confidence), mapping back to image
pixels, then the one re-crop pass from the landmarks that ``predict`` makes after a detection
(``PredictorOptions.refine``; crop + inference + decoding + mapping again). The whole
``predict(image)`` and ``predict(image, boxes)`` are timed too: their ratio is what the detector
costs a user who has no boxes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"


def frame_640x480(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to fit 640×480, centred on black (a camera-sized frame)."""
    h, w = image.shape[:2]
    scale = min(640 / w, 480 / h)
    resized = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - resized.shape[0]) // 2, (640 - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return frame


def _median_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def measure_pipeline(predictor, frame: np.ndarray | None = None, runs: int = 50, warmup: int = 5) -> dict[str, Any]:
    """Per-stage medians (ms) of ``predictor.predict(frame)`` without boxes, plus the whole calls."""
    from sdk.decoders import decode, point_confidence
    from sdk.detection import landmark_box
    from sdk.outputs import outputs_by_role
    from sdk.preprocess import prepare_batch, to_image_coords

    frame = frame_640x480(cv2.imread(str(SAMPLE))) if frame is None else frame
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("cannot encode the benchmark frame as JPEG")
    meta = predictor.metadata
    boxes, _, _ = predictor.detect_faces(frame)
    if len(boxes) == 0:
        raise RuntimeError("the detector finds no face in the benchmark frame")
    tensor, matrices = prepare_batch(frame, boxes, meta.input, meta.crop)
    raw = predictor.backend.run(tensor)

    def decoding():
        by_role = outputs_by_role(meta, raw)
        pts, scores = decode(meta.decoder.name, by_role, meta.decoder.params)
        return pts, point_confidence(meta.decoder.name, scores)

    pts, _ = decoding()
    landmarks = to_image_coords(pts, matrices, meta.crop.coordinate_origin)
    refined = np.stack([landmark_box(lm, meta.scheme.to68) for lm in landmarks])

    def recrop():
        t, m = prepare_batch(frame, refined, meta.input, meta.crop)
        p, _ = predictor.infer(t)
        return to_image_coords(p, m, meta.crop.coordinate_origin)

    stages = {
        "decode_jpeg": _median_ms(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), runs, warmup),
        "detect": _median_ms(lambda: predictor.detect_faces(frame), runs, warmup),
        "crop": _median_ms(lambda: prepare_batch(frame, boxes, meta.input, meta.crop), runs, warmup),
        "inference": _median_ms(lambda: predictor.backend.run(tensor), runs, warmup),
        "decoding": _median_ms(decoding, runs, warmup),
        "map_back": _median_ms(lambda: to_image_coords(pts, matrices, meta.crop.coordinate_origin), runs, warmup),
        "recrop_pass": _median_ms(recrop, runs, warmup),
    }
    whole = _median_ms(lambda: predictor.predict(frame), runs, warmup)
    given = _median_ms(lambda: predictor.predict(frame, boxes), runs, warmup)
    return {"frame": "640x480", "faces": int(len(boxes)), "stages_ms": {k: round(v, 4) for k, v in stages.items()},
            "stages_sum_ms": round(sum(stages.values()), 4), "predict_no_boxes_ms": round(whole, 4),
            "predict_with_boxes_ms": round(given, 4), "no_boxes_over_boxes": round(whole / given, 3),
            "detector": repr(predictor.detector), "runs": runs}


__all__ = ["frame_640x480", "measure_pipeline"]
