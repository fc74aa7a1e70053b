"""Synthetic face videos with known landmarks, and the tracking benchmark run on them.

    python -m benchmarks.video_bench --model h3r_mobilenetv2_128_fp32.onnx --out /tmp/video_bench

A real AFLW2000-3D photo is moved over a 640×480 canvas by a slow affine warp
(translation, rotation, scale, each a sinusoid) and written with ``cv2.VideoWriter``
(mp4v); the warped ground-truth landmarks of every frame come with it. A second, still
video with sensor noise measures jitter. The benchmark reports, for the detector on
every frame and for ``LandmarkTracker`` (raw and One-Euro smoothed): frames/s of the
whole loop (decode + landmarks), NME per frame against the warped ground truth, and
jitter (frame-to-frame point motion on the still video, in % of the face size).
Timings depend on machine load; NME and jitter do not.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def affine_at(t: float, size: tuple[int, int], face_center: np.ndarray, still: bool = False) -> np.ndarray:
    """2×3 matrix placing the photo on the canvas at time ``t`` seconds (slow sinusoidal motion)."""
    w, h = size
    if still:
        dx = dy = rot = 0.0
        scale = 0.6
    else:
        dx = 70 * math.sin(2 * math.pi * t / 4.0)
        dy = 35 * math.sin(2 * math.pi * t / 3.0 + 0.7)
        rot = 10 * math.sin(2 * math.pi * t / 5.0)
        scale = 0.6 + 0.08 * math.sin(2 * math.pi * t / 6.0)
    m = cv2.getRotationMatrix2D((float(face_center[0]), float(face_center[1])), rot, scale)
    m[:, 2] += np.array([w / 2 + dx, h / 2 + dy]) - face_center
    return m


def make_video(image: np.ndarray, landmarks: np.ndarray, path: str | Path, *, frames: int = 120, fps: float = 30.0,
               size: tuple[int, int] = (640, 480), still: bool = False, noise: float = 0.0,
               seed: int = 0) -> np.ndarray:
    """Write the video; return the ground-truth landmarks of every frame (frames, L, 2)."""
    rng = np.random.default_rng(seed)
    center = np.nanmean(landmarks, axis=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path} with mp4v")
    gts = []
    try:
        for i in range(frames):
            m = affine_at(i / fps, size, center, still=still)
            frame = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=(114, 114, 114))
            if noise > 0:
                frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
            writer.write(frame)
            gts.append(landmarks @ m[:, :2].T + m[:, 2])
    finally:
        writer.release()
    return np.stack(gts).astype(np.float32)


def read_frames(path: str | Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def frame_nme(pred: np.ndarray, gt: np.ndarray, scheme: str) -> float:
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme

    return float(nme(map_landmarks(pred[None], scheme, "ibug68"), gt[None], box_normaliser(gt[None]))[0])


def run_loop(kind: str, predictor, frames_path: Path, gts: np.ndarray, redetect_every: int = 30,
             tracker=None) -> dict[str, Any]:
    """One pass over the video: 'detect' = ``predictor.predict`` on every frame; 'track' = ``tracker.update``
    (default: a ``LandmarkTracker`` over ``predictor``; a peer passes its own video mode)."""
    from sdk.tracking import LandmarkTracker, OneEuroParams

    if kind == "track" and tracker is None:
        tracker = LandmarkTracker(predictor, redetect_every=redetect_every, one_euro=OneEuroParams())
    step = predictor.predict if kind == "detect" else tracker.update
    num_points = None
    cap = cv2.VideoCapture(str(frames_path))
    nmes, raw_nmes, pts, raw_pts, n = [], [], [], [], 0
    t0 = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        result = step(frame)
        if len(result):
            centres = result.landmarks.mean(axis=1)
            best = int(np.argmin(np.linalg.norm(centres - gts[n].mean(axis=0), axis=1)))  # the face of the GT
            pts.append(result.landmarks[best])
            num_points = len(pts[-1])
            raw = result.extra.get("raw_landmarks", result.landmarks)[best]
            raw_pts.append(raw)
            nmes.append(frame_nme(result.landmarks[best], gts[n], result.scheme))
            raw_nmes.append(frame_nme(raw, gts[n], result.scheme))
        else:
            pts.append(None)
            raw_pts.append(None)
        n += 1
    seconds = time.perf_counter() - t0
    cap.release()
    blank = np.full((num_points or len(gts[0]), 2), np.nan, np.float32)
    report = {"frames": n, "seconds": seconds, "fps": n / seconds, "faces_found_frames": len(nmes),
              "nme": float(np.mean(nmes)) if nmes else None, "nme_unsmoothed": float(np.mean(raw_nmes)) if raw_nmes else None}
    report["detector_runs"] = n if kind == "detect" else getattr(tracker, "detections_run", None)
    report["_pts"] = np.stack([blank if p is None else p for p in pts])
    report["_raw_pts"] = np.stack([blank if p is None else p for p in raw_pts])
    return report


def jitter(points: np.ndarray, gts: np.ndarray) -> float:
    """Mean frame-to-frame point displacement in % of the face size (sqrt of the GT box area)."""
    from landmarkdata.metrics import box_normaliser

    step = np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(axis=-1)
    return float(np.nanmean(step / box_normaliser(gts[1:])) * 100)


def main(argv: list[str] | None = None) -> int:
    from landmarkdata.datasets import load_aflw2000_3d
    from sdk.predictor import Predictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default="/tmp/edgemark_video_bench")
    ap.add_argument("--face", type=int, default=0, help="AFLW2000-3D face index used for the video")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--redetect-every", type=int, default=30)
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_aflw2000_3d()
    image, gt = data.load_image(args.face), data.landmarks[args.face]
    moving = out / "moving.mp4"
    still = out / "still.mp4"
    gts_moving = make_video(image, gt, moving, frames=args.frames)
    gts_still = make_video(image, gt, still, frames=args.frames, still=True, noise=3.0)
    predictor = Predictor(args.model, threads=args.threads)
    report: dict[str, Any] = {"model": args.model, "face": args.face, "frames": args.frames}
    for kind in ("detect", "track"):
        r = run_loop(kind, predictor, moving, gts_moving, args.redetect_every)
        s = run_loop(kind, predictor, still, gts_still, args.redetect_every)
        r["jitter_still"] = jitter(s.pop("_pts"), gts_still)
        r["jitter_still_unsmoothed"] = jitter(s.pop("_raw_pts"), gts_still)
        r.pop("_pts"), r.pop("_raw_pts")
        report[kind] = r
    text = json.dumps(report, indent=2)
    print(text)
    (out / "report.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
