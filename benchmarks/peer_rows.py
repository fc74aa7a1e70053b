"""Bench rows beyond "a model file on the protocol's boxes": the landmark peers (MediaPipe Face
Mesh, dlib) and the end-to-end rows that find their own faces (``box_rule`` ``detector`` /
``pipeline``), measured the same way for edgemark and for the peers.

* **Accuracy of a row that detects**: every test photo goes through ``predict(image)`` without
  boxes; the returned face nearest the labels (lowest NME) is scored, and the photo counts as
  *found* when that NME is ≤ 10 % (``FOUND_NME``, as ``benchmarks.detector_eval``). Photos with no
  face found have no NME (left out of the mean, counted in ``found_pct``).
* **Latency of a row that detects**: ``predict(frame)`` on a 640×480 camera-sized frame
  (``benchmarks.pipeline.frame_640x480`` of the sample photo): detector + landmarks, frames/s.
* **Video modes**: a synthetic moving-face video (``benchmarks.video_bench.make_video``: a test
  photo under a smooth similarity motion, labels moved with it), once detecting on every frame and
  once in the row's tracker mode (edgemark's ``LandmarkTracker``; MediaPipe's ROI-from-landmarks).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .peers import sha256_file

DETECTING_RULES = ("detector", "pipeline")
FOUND_NME = 10.0
VIDEO_FRAMES = 90


def landmark_peer_records(names: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(plan items, skipped) for the landmark peers ``names``, one item per box rule."""
    from .landmark_peers import BOX_RULES, available_peers
    from . import dlib_peer, facemesh

    from .machine import package_version
    from .paths import display_path

    missing = available_peers()
    items, skipped = [], []
    for name in names:
        if missing.get(name):
            skipped.append({"file": name, "error": missing[name]})
            continue
        path = facemesh.model_file() if name == "mediapipe_facemesh" else dlib_peer.model_file()
        digest = sha256_file(path)
        mediapipe = name == "mediapipe_facemesh"
        for rule in BOX_RULES[name]:
            items.append({
                "id": f"{name}.{rule}.{digest[:12]}", "kind": "landmark_peer", "peer": name, "box_rule": rule,
                "name": ("MediaPipe Face Mesh" if mediapipe else "dlib 68 ERT") + f" [{rule}]",
                "file": display_path(path), "files": [display_path(path)], "sha256": digest,
                "size_bytes": path.stat().st_size, "format": "tflite" if mediapipe else "dat",
                "runtime": "litert" if mediapipe else "dlib",
                "runtime_version": package_version("ai_edge_litert" if mediapipe else "dlib-bin"),
                "precision": "fp32", "architecture": "mediapipe_face_mesh" if mediapipe else "dlib_shape_predictor",
                "source": facemesh.PACKAGE if mediapipe else dlib_peer.PACKAGE, "source_sha256": None,
                "origin_sha256": None, "scheme": "ibug68", "num_points": 68,
                "input_size": [facemesh.INPUT_SIZE] * 2 if mediapipe else None,
                "decoder": "mesh_regression" if mediapipe else "regression_trees", "decoder_params": None,
                "graph": None, "measure_video": rule == "pipeline",
            })
    return items, skipped


def detector_records(models: list[dict[str, Any]], default_dir: Path) -> list[dict[str, Any]]:
    """An end-to-end row (built-in detector, ``box_rule='detector'``) for each bundled default file."""
    root = default_dir.resolve()
    rows = []
    for m in models:
        if Path(m["file"]).resolve().parent != root:
            continue
        rows.append({**m, "id": m["id"] + ".detector", "box_rule": "detector", "name": m["name"] + " [detector]",
                     "measure_video": True})
    return rows


def open_row(job: dict[str, Any], threads: int, max_batch: int):
    """The predictor of a landmark-peer row (None for other rows)."""
    if job.get("kind") != "landmark_peer":
        return None
    from .landmark_peers import open_peer

    return open_peer(job["peer"], job["box_rule"], threads)


def scheme_of(predictor) -> str:
    return getattr(predictor, "scheme", None) or predictor.metadata.scheme.name


def camera_frame() -> np.ndarray:
    import cv2

    from .pipeline import SAMPLE, frame_640x480

    return frame_640x480(cv2.imread(str(SAMPLE)))


class RowTiming(NamedTuple):
    """A row's latency statistics: the raw backend call, the whole ``predict``, and, for an edgemark
    ``Predictor`` (None for the peers), what each ``predict`` spent outside its backend calls (``own``) and,
    of that, in ``sdk.preprocess.prepare_faces`` (``prepare``: box checks, crop geometry, the crop itself
    and any normalisation in numpy), each paired call by call."""

    raw: Any
    predict: Any
    own: Any = None
    prepare: Any = None


def raw_and_predict(predictor, image: np.ndarray, boxes: np.ndarray | None, runs: int, warmup: int) -> RowTiming:
    """``RowTiming`` of one row, the raw and predict calls timed in turns (``benchmarks.latency.
    time_interleaved``); ``boxes=None`` times the detecting path on ``image``.

    ``own`` and ``prepare`` time the SDK's stages inside the very ``predict`` calls that are timed (the
    backend's ``run`` and ``sdk.predictor``'s ``prepare_faces`` wrapped for the duration, then restored), so
    the network's run-to-run noise drops out of both, and ``prepare`` shows how much of the SDK's own cost
    is the crop its file's crop rule asks for.
    """
    import sdk.predictor as predictor_module
    from sdk.preprocess import prepare_batch

    from .latency import summarize, time_interleaved

    call_boxes = boxes
    if boxes is None:  # the network's own call on the face the row finds in the frame
        found = predictor.predict(image)
        if len(found) == 0:
            raise RuntimeError("the row's detector finds no face in the benchmark frame")
        call_boxes = found.boxes[:1]
    backend = None if hasattr(predictor, "raw_call") else predictor.backend
    if backend is None:
        raw_fn = predictor.raw_call(image, call_boxes)
        predict_fn = lambda: predictor.predict(image, boxes)  # noqa: E731
        raw_d, predict_d = time_interleaved([raw_fn, predict_fn], runs, warmup)
        return RowTiming(summarize(raw_d), summarize(predict_d))
    meta = predictor.metadata
    tensor, _ = prepare_batch(image, call_boxes, meta.input, meta.crop)
    run, prepare = backend.run, predictor_module.prepare_faces
    raw_fn = lambda: run(tensor)  # noqa: E731
    inside: list[float] = []
    preparing: list[float] = []

    def timed(fn, totals: list[float]):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[-1] += time.perf_counter() - start
        return call

    def predict_fn():
        inside.append(0.0)
        preparing.append(0.0)
        predictor.predict(image, boxes)

    before = backend.__dict__.get("run")  # an instance's own run (a test's), else the class's method
    backend.run = timed(run, inside)
    predictor_module.prepare_faces = timed(prepare, preparing)
    try:
        raw_d, predict_d = time_interleaved([raw_fn, predict_fn], runs, warmup)
    finally:
        predictor_module.prepare_faces = prepare
        if before is None:
            del backend.run
        else:
            backend.run = before
    own = np.maximum(np.asarray(predict_d) - np.asarray(inside[-runs:]), 0.0)
    return RowTiming(summarize(raw_d), summarize(predict_d), summarize(own),
                     summarize(np.minimum(np.asarray(preparing[-runs:]), own)))


def detected_accuracy(predictor, dataset, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Per photo: predictions (N, 68-or-L, 2) of the face nearest the labels (NaN when none) and found (N,)."""
    from tqdm import tqdm

    from landmarkdata.metrics import box_normaliser, nme
    from sdk.schemes import map_landmarks

    scheme = scheme_of(predictor)
    preds, found = [], np.zeros(len(dataset), bool)
    for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False, unit="photo"):
        result = predictor.predict(dataset.load_image(i))
        gt = dataset.landmarks[i][None]
        if len(result) == 0:
            preds.append(None)
            continue
        errs = nme(map_landmarks(result.landmarks, scheme, dataset.scheme), np.repeat(gt, len(result), 0),
                   np.repeat(box_normaliser(gt), len(result)))
        best = int(np.nanargmin(errs))
        found[i] = errs[best] <= FOUND_NME
        preds.append(result.landmarks[best] if found[i] else None)
    shape = next((p.shape for p in preds if p is not None), (len(dataset.landmarks[0]), 2))
    out = np.stack([np.full(shape, np.nan, np.float32) if p is None else p for p in preds])
    return out, found


def video_modes(predictor, job: dict[str, Any], dataset) -> dict[str, Any]:
    """fps and NME of detect-every-frame and of the tracker mode on the synthetic moving-face video."""
    from .video_bench import make_video, run_loop

    peer = job.get("kind") == "landmark_peer"
    modes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgemark-video-") as tmp:
        path = Path(tmp) / "moving.mp4"
        gts = make_video(dataset.load_image(0), dataset.landmarks[0], path, frames=VIDEO_FRAMES)
        for mode in ("detect", "track"):
            tracker = predictor.tracker() if peer and mode == "track" else None
            if peer and mode == "track" and tracker is None:
                continue  # no video mode of its own (dlib)
            r = run_loop(mode, predictor, path, gts, tracker=tracker)
            modes[mode] = {"frames": r["frames"], "fps": round(r["fps"], 2),
                           "ms_per_frame": round(r["seconds"] / r["frames"] * 1e3, 3),
                           "frames_with_face": r["faces_found_frames"],
                           "nme": None if r["nme"] is None else round(r["nme"], 4), "detector_runs": r["detector_runs"]}
    modes["video"] = f"{VIDEO_FRAMES} frames 640x480 (decode included), photo 0 of the dataset moving"
    return modes
