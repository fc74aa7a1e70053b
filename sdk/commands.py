"""The runtime's command: ``edgemark predict`` (images, videos, cameras). Imports only ``sdk``."""
from __future__ import annotations

import argparse
import json

import numpy as np

from .commandline import Command, defaults_of, positive_int, unit_float
from .formats import RUNTIMES
from .tracking import LandmarkTracker

TRACKER_DEFAULTS = defaults_of(LandmarkTracker)


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="+", metavar="INPUT",
                   help="image, video (.mp4, .avi, ...) or camera index (0, 1, ...); or, for a batch job, folders, "
                        "globs ('photos/**/*.jpg') and list files (.txt, one path per line)")
    p.add_argument("--model", help="model file (.onnx, .xml, .tflite); default: the bundled model")
    p.add_argument("--backend", choices=sorted(RUNTIMES), help="force a runtime (default: from the file extension)")
    p.add_argument("--box", nargs=4, type=float, action="append", metavar=("X1", "Y1", "X2", "Y2"),
                   help="face box in pixels (repeat for several faces); default: detect faces")
    p.add_argument("--whole-image", action="store_true", help="use the whole image as the face box (face crops)")
    p.add_argument("--flip-test", action="store_true", help="average a mirrored pass (more accurate, 2x slower)")
    p.add_argument("--threads", type=positive_int, help="CPU threads of the runtime (default: the runtime's)")
    p.add_argument("--out", help="one image or video: its annotated copy (.jpg, .png, .mp4); a batch: the rows, by "
                                 "extension: .jsonl, .csv or .parquet (a folder of parts), resumed when it exists")
    p.add_argument("--json", help="write landmarks as JSON here ('-' for stdout)")
    p.add_argument("--redetect-every", type=positive_int, default=TRACKER_DEFAULTS["redetect_every"],
                   help="video: run the face detector every N frames (default %(default)s)")
    p.add_argument("--min-confidence", type=unit_float, default=TRACKER_DEFAULTS["min_confidence"],
                   help="video: re-detect when a face's confidence drops below this (default %(default)s)")
    p.add_argument("--no-smooth", action="store_true", help="video: no One-Euro smoothing")
    p.add_argument("--max-frames", type=positive_int, help="video/camera: stop after N frames")
    g = p.add_argument_group("batch jobs (several inputs, a folder, a glob or a list, or --out .jsonl/.csv/.parquet)")
    g.add_argument("--recursive", action="store_true", help="also take the photos in sub-folders")
    g.add_argument("--workers", type=positive_int, help="worker processes (default: the cores)")
    g.add_argument("--scheme", choices=["native", "68"], default="native",
                   help="landmarks in the model's scheme, or its 68-point subset")
    g.add_argument("--annotate", metavar="DIR", help="also write annotated copies into DIR")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local processes, or a Ray Data pipeline (pip install 'edgemark[ray]'; writes Parquet)")
    g.add_argument("--actors", type=positive_int, default=1, help="Ray: actors in the pool (default 1)")
    g.add_argument("--cpus-per-actor", type=float, help="Ray: CPUs (and runtime threads) per actor")
    g.add_argument("--ray-address", help="Ray: cluster to join (e.g. 'auto'; default: start a local instance)")


def is_batch(args: argparse.Namespace) -> bool:
    """Several inputs, a folder, a glob, a list file, a row output or the Ray engine make a batch job."""
    from pathlib import Path

    from .batch.sources import LIST_EXTENSIONS
    from .batch.writers import OUTPUT_EXTENSIONS

    if len(args.image) > 1 or args.engine == "ray" or args.annotate:
        return True
    only = args.image[0]
    return (Path(only).is_dir() or any(c in only for c in "*?[") or Path(only).suffix.lower() in LIST_EXTENSIONS
            or (args.out is not None and Path(args.out).suffix.lower() in OUTPUT_EXTENSIONS))


def run_batch_job(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, run_batch
    from .errors import InputError

    if not args.out:
        raise InputError("a batch job needs --out FILE.jsonl, FILE.csv or FOLDER.parquet for its rows")
    options = BatchOptions(model=args.model, backend=args.backend, workers=args.workers, threads=args.threads,
                           recursive=args.recursive, scheme68=args.scheme == "68", flip_test=args.flip_test,
                           annotate=args.annotate, max_frames=args.max_frames)
    if args.engine == "ray":
        from .batch.ray_engine import run_ray

        counts = run_ray(args.image, args.out, options, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                         address=args.ray_address)
        print(f"{counts['files']} files ({counts['skipped']} already done); {counts['rows']} rows in {args.out} "
              f"(Ray Data, {args.actors} actor(s))")
        return 0
    summary = run_batch(args.image, args.out, options)
    print(summary.line() + f"; rows: {args.out}")
    for source, error in summary.errors[:5]:
        print(f"  unreadable: {source}: {error}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import cv2

    from .atomic import write_text
    from .errors import InputError
    from .predictor import Predictor
    from .video import is_video_source

    if is_batch(args):
        return run_batch_job(args)
    args.image = args.image[0]
    predictor = Predictor(args.model, backend=args.backend, threads=args.threads, flip_test=args.flip_test)
    if is_video_source(args.image):
        from .video import run_video

        return run_video(args.image, predictor, out=args.out, json_path=args.json,
                         redetect_every=args.redetect_every, min_confidence=args.min_confidence,
                         smooth=not args.no_smooth, max_frames=args.max_frames)
    from pathlib import Path

    if not Path(args.image).is_file():  # before OpenCV, which would print its own WARN line first
        raise InputError(f"cannot read image {args.image}: no such file")
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {args.image} (missing, corrupt or not an image)")
    boxes = np.array(args.box, dtype=np.float32) if args.box else None
    if boxes is None and args.whole_image:
        h, w = image.shape[:2]
        boxes = np.array([[0, 0, w - 1, h - 1]], dtype=np.float32)
    if boxes is None:  # boxes priority: --box > --whole-image > sidecar JSON beside the image > detector
        from .sidecar import sidecar_boxes

        boxes = sidecar_boxes(args.image)
    result = predictor.predict(image, boxes)
    payload = {"image": args.image, "model": str(predictor.model_path), "scheme": result.scheme,
               "faces": [{"box": b.tolist(), "confidence": round(float(c), 4), "landmarks": lm.round(3).tolist(),
                          "scores": s.round(4).tolist(), "point_confidence": pc.round(4).tolist()}
                         for b, c, lm, s, pc in zip(result.boxes, result.face_confidence, result.landmarks,
                                                    result.scores, result.point_confidence)]}
    if args.json:
        write_text(args.json, json.dumps(payload))
    if args.out:
        from .draw import draw_landmarks

        ok, encoded = cv2.imencode(_image_suffix(args.out), draw_landmarks(image, result))
        if not ok:
            raise InputError(f"cannot write {args.out}: OpenCV cannot encode that image type")
        from .atomic import atomic_paths

        with atomic_paths(args.out) as (tmp,):
            tmp.write_bytes(encoded.tobytes())
    if args.json != "-":
        conf = ", ".join(f"{c:.2f}" for c in result.face_confidence)
        print(f"{len(result)} face(s), {result.landmarks.shape[1]} points each ({result.scheme})"
              + (f"; confidence {conf}" if len(result) else "")
              + (f"; annotated image: {args.out}" if args.out else ""))
    return 0


def _image_suffix(path: str) -> str:
    from pathlib import Path

    from .errors import InputError

    suffix = Path(path).suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"):
        raise InputError(f"--out {path}: unknown image extension {suffix or '(none)'!r}; use .jpg, .png, .bmp, "
                         ".webp or .tif")
    return suffix


COMMANDS = {"predict": Command(add_predict_arguments, run_predict)}
