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
    p.add_argument("image", metavar="IMAGE_VIDEO_OR_CAMERA",
                   help="image file, video file (.mp4, .avi, ...) or camera index (0, 1, ...)")
    p.add_argument("--model", help="model file (.onnx, .xml, .tflite); default: the bundled model")
    p.add_argument("--backend", choices=sorted(RUNTIMES), help="force a runtime (default: from the file extension)")
    p.add_argument("--box", nargs=4, type=float, action="append", metavar=("X1", "Y1", "X2", "Y2"),
                   help="face box in pixels (repeat for several faces); default: detect faces")
    p.add_argument("--whole-image", action="store_true", help="use the whole image as the face box (face crops)")
    p.add_argument("--flip-test", action="store_true", help="average a mirrored pass (more accurate, 2x slower)")
    p.add_argument("--threads", type=positive_int, help="CPU threads of the runtime (default: the runtime's)")
    p.add_argument("--out", help="write an annotated copy of the image / video (mp4) here")
    p.add_argument("--json", help="write landmarks as JSON here ('-' for stdout)")
    p.add_argument("--redetect-every", type=positive_int, default=TRACKER_DEFAULTS["redetect_every"],
                   help="video: run the face detector every N frames (default %(default)s)")
    p.add_argument("--min-confidence", type=unit_float, default=TRACKER_DEFAULTS["min_confidence"],
                   help="video: re-detect when a face's confidence drops below this (default %(default)s)")
    p.add_argument("--no-smooth", action="store_true", help="video: no One-Euro smoothing")
    p.add_argument("--max-frames", type=positive_int, help="video/camera: stop after N frames")


def run_predict(args: argparse.Namespace) -> int:
    import cv2

    from .atomic import write_text
    from .errors import InputError
    from .predictor import Predictor
    from .video import is_video_source

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
