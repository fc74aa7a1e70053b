"""``edgemark predict`` on a video file or a camera: LandmarkTracker over the frames,
an annotated mp4 and/or per-frame JSON out."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_text
from .errors import InputError
from .predictor import Predictor
from .tracking import LandmarkTracker, OneEuroParams

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")


def is_video_source(source: str) -> bool:
    """A camera index ("0", "1", …) or a file with a video extension."""
    return source.strip().isdigit() or Path(source).suffix.lower() in VIDEO_EXTENSIONS


def open_capture(source: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(int(source)) if source.strip().isdigit() else cv2.VideoCapture(source)
    if not cap.isOpened():
        what = f"camera {source}" if source.strip().isdigit() else f"video {source} (missing, corrupt or unsupported codec)"
        raise InputError(f"cannot open {what}")
    return cap


def run_video(source: str, predictor: Predictor, *, out: str | None = None, json_path: str | None = None,
              redetect_every: int | None = None, min_confidence: float | None = None, smooth: bool = True,
              max_frames: int | None = None, progress: bool = True) -> int:
    """Track landmarks through ``source``; write ``out`` (mp4v) and ``json_path``; print a summary.
    ``redetect_every`` / ``min_confidence``: None keeps the tracker's own defaults."""
    from .draw import draw_landmarks

    cap = open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    chosen = {k: v for k, v in (("redetect_every", redetect_every), ("min_confidence", min_confidence))
              if v is not None}
    tracker = LandmarkTracker(predictor, one_euro=OneEuroParams() if smooth else None, fps=fps, **chosen)
    writer = None
    frames_json = []
    n, faces = 0, 0
    from tqdm import tqdm

    bar = tqdm(total=max_frames or total or None, desc="frames", unit="frame", disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            result = tracker.update(frame)
            faces += len(result)
            if out:
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise InputError(f"cannot write video {out} (mp4v)")
                writer.write(draw_landmarks(frame, result))
            if json_path:
                frames_json.append({"frame": n, "detected": bool(result.extra.get("detected")), "faces": [
                    {"track": int(tid), "box": b.round(2).tolist(), "confidence": round(float(c), 4),
                     "landmarks": lm.round(3).tolist()}
                    for tid, b, c, lm in zip(result.extra.get("track_ids", []), result.boxes, result.face_confidence,
                                             result.landmarks)]})
            n += 1
            bar.update()
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
    seconds = time.perf_counter() - t0
    if n == 0:
        raise InputError(f"no frame could be read from {source}")
    if json_path:
        text = json.dumps({"source": source, "model": str(predictor.model_path), "scheme": predictor.metadata.scheme.name,
                           "fps": fps, "frames": frames_json})
        write_text(json_path, text)
    if json_path != "-":
        print(f"{n} frames, {faces / n:.2f} face(s) per frame, detector ran on {tracker.detections_run} frames, "
              f"{n / seconds:.1f} frames/s" + (f"; annotated video: {out}" if out else ""))
    return 0
