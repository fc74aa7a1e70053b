"""``edgemark`` command line. Each subcommand imports its heavy dependencies lazily,
so ``edgemark predict`` works with only the runtime installed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a torch checkpoint or an ONNX file into ONNX / OpenVINO / TFLite")
    p.add_argument("source", nargs="?", help="checkpoint (.pth) or model (.onnx)")
    p.add_argument("--arch", help="architecture of a torch checkpoint (see --list-archs)")
    p.add_argument("--points", type=int, help="number of landmarks (default: read from the checkpoint)")
    p.add_argument("--input-size", type=int, help="square input side in pixels")
    p.add_argument("--meanface", help="PIPNet mean-face file (neighbour tables go into the metadata)")
    p.add_argument("--metadata", help="JSON metadata for an ONNX file that has none (full schema)")
    g = p.add_argument_group("metadata of an ONNX-only model (instead of, or overriding, --metadata)")
    g.add_argument("--decoder", help="decoder name (regression, h3r_topk, shr_local_softargmax, argmax, pipnet, ...)")
    g.add_argument("--decoder-param", action="append", metavar="KEY=VALUE", help="decoder parameter (repeatable)")
    g.add_argument("--scheme", help="landmark scheme (wflw98, ibug68, aflw21; default: from --points)")
    g.add_argument("--output", action="append", metavar="NAME=ROLE",
                   help="ONNX output tensor and its role (heatmap, landmarks, cls, ...); repeatable")
    g.add_argument("--mean", nargs="+", type=float, help="per-channel mean after scaling (1 or 3 values)")
    g.add_argument("--std", nargs="+", type=float, help="per-channel std after scaling (1 or 3 values)")
    g.add_argument("--scale", type=float, help="pixel scale before mean/std (default 1/255)")
    g.add_argument("--color", choices=["rgb", "bgr"], help="channel order the network expects")
    g.add_argument("--crop-expand", type=float, help="crop side = expand x box side")
    g.add_argument("--crop-side-mode", choices=["max_wh", "max_wh_plus1", "diag"], help="box side measure")
    g.add_argument("--crop-origin", choices=["pixel_center", "pixel_corner"],
                   help="where the model's decoded coordinates count from")
    p.add_argument("--tflite-converter", default="auto", choices=["auto", "onnx2tf", "litert-torch"],
                   help="TFLite path (auto: litert-torch for checkpoints, onnx2tf for ONNX files)")
    p.add_argument("--name", help="base name of the output files (default: <arch>_<size> or the ONNX stem)")
    p.add_argument("--to", nargs="+", default=["onnx"], choices=["onnx", "openvino", "tflite"], help="formats")
    p.add_argument("--fp16", action="store_true", help="also write FP16 variants where the format has them")
    _add_int8_arguments(p)
    p.add_argument("--out", default="models", help="output directory")
    p.add_argument("--no-verify", action="store_true", help="skip the landmark comparison on real face crops")
    p.add_argument("--list-archs", action="store_true", help="list known architectures and exit")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from converters.api import ConversionError, convert, load_source, metadata_from_json
    from converters.architectures import list_archs

    if args.list_archs:
        print("\n".join(list_archs()))
        return 0
    if not args.source:
        raise SystemExit("edgemark convert: give a checkpoint or ONNX file (or --list-archs)")
    from converters.metadata_options import has_metadata_options, metadata_from_options, parse_key_values

    meta = metadata_from_json(args.metadata) if args.metadata else None
    if has_metadata_options(args):
        if Path(args.source).suffix.lower() != ".onnx":
            raise SystemExit("edgemark convert: --decoder/--mean/--crop-... describe ONNX files; a checkpoint's "
                             "metadata comes from --arch")
        meta = metadata_from_options(
            args.source, meta, decoder=args.decoder, decoder_params=parse_key_values(args.decoder_param),
            points=args.points, scheme=args.scheme, input_size=args.input_size, mean=args.mean, std=args.std,
            scale=args.scale, color=args.color, crop_expand=args.crop_expand, crop_side_mode=args.crop_side_mode,
            crop_origin=args.crop_origin, outputs=parse_key_values(args.output, "--output") or None)
    if meta is None and Path(args.source).suffix.lower() == ".onnx":
        from converters.onnx_io import read_metadata
        from sdk.metadata import MetadataError

        try:
            read_metadata(args.source)
        except MetadataError as exc:
            raise MetadataError(f"{args.source}: {exc}; describe the model with --metadata FILE.json or with "
                                "--decoder and the preprocessing options (see `edgemark convert --help`)") from None
        except Exception:  # unreadable file: load_source reports it
            pass
    source = load_source(args.source, arch=args.arch, points=args.points, input_size=args.input_size,
                         meanface=args.meanface, metadata=meta, name=args.name)
    source.options["tflite_converter"] = args.tflite_converter
    precisions = ["fp32", "fp16"] if args.fp16 else ["fp32"]
    if args.int8:
        source.options["int8"] = _int8_options(args)
        precisions.append("int8")
    from tqdm import tqdm

    jobs = [(f, p) for f in args.to for p in precisions if not (f == "onnx" and p == "fp16")]
    rows = []
    bar = tqdm(total=len(jobs), desc="convert", unit="file", disable=args.json)
    failure = None
    with source:  # removes the intermediate files whatever happens
        for fmt, precision in jobs:
            bar.set_postfix_str(f"{fmt} {precision}")
            try:
                (result,) = convert(source, [fmt], args.out, precisions=[precision], verify=not args.no_verify)
            except ConversionError as exc:
                failure = f"{fmt} {precision}: {exc}"
                break
            rows.append({**result.as_row(), **(_int8_summary(result.path) if precision == "int8" else {})})
            bar.update()
    bar.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    sys.stdout.flush()  # TensorFlow/LiteRT teardown can kill the process at exit; keep the report
    if failure:  # what was written is reported above; the failed file was not written
        print(f"edgemark convert: {failure}", file=sys.stderr)
        return 2
    return 0


def _add_int8_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("INT8 (calibrated on real faces, checked against FP32 on held-out faces)")
    g.add_argument("--int8", action="store_true", help="also write INT8 variants (ONNX Runtime QDQ, OpenVINO via "
                   "NNCF, TFLite full-integer)")
    g.add_argument("--calib", default="aflw-faces", metavar="aflw-faces|PATH|NAME=PATH",
                   help="calibration faces: 'aflw-faces' (default), a folder with boxes.json/boxes.csv, a boxes "
                        "file, or NAME=PATH for a benchmarks dataset (e.g. 300w=/data/300W); never the test set")
    g.add_argument("--calib-size", type=int, default=200, help="calibration faces (default 200)")
    g.add_argument("--calib-val-size", type=int, default=100, help="held-out validation faces (default 100)")
    g.add_argument("--calib-seed", type=int, default=0, help="seed of the calibration/validation draw")
    g.add_argument("--max-nme-increase", metavar="PCT", help="accuracy budget in NME points, e.g. '1%%' or 0.5: "
                   "landmarks of INT8 vs FP32 on the validation faces; more layers stay float until it fits")
    g.add_argument("--int8-io", action="store_true", help="TFLite: int8 input/output tensors (integer-only targets)")
    g.add_argument("--int8-recipe", default="auto", choices=["auto", "naive"],
                   help="auto: budget-driven recipe search (default); naive: min-max, everything INT8 incl. outputs "
                        "(a baseline for comparison)")


def _parse_budget(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.strip().rstrip("%").strip()
    try:
        budget = float(value)
    except ValueError:
        raise SystemExit(f"edgemark convert: --max-nme-increase takes NME points such as '1%' or 0.5, got {text!r}")
    if budget < 0:
        raise SystemExit(f"edgemark convert: --max-nme-increase must be >= 0, got {text!r}")
    return budget


def _int8_options(args: argparse.Namespace) -> Any:
    from converters.int8 import Int8Options

    return Int8Options(calib=args.calib, calib_size=args.calib_size, val_size=args.calib_val_size,
                       seed=args.calib_seed, max_nme_increase=_parse_budget(args.max_nme_increase),
                       io="int8" if args.int8_io else "float", recipe=args.int8_recipe, progress=not args.json)


def _int8_summary(path: Path) -> dict[str, Any]:
    """Recipe and measured validation numbers of an INT8 file, read back from its metadata."""
    from .backends import open_backend

    extra = open_backend(path).metadata.provenance.extra
    recipe, val = extra.get("int8_recipe", {}), extra.get("validation", {})
    return {"int8_recipe": recipe.get("name", ""), "val_nme_vs_fp32": val.get("nme_vs_fp32")}


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="landmarks for the faces of an image, a video file or a camera")
    p.add_argument("image", metavar="IMAGE_VIDEO_OR_CAMERA",
                   help="image file, video file (.mp4, .avi, ...) or camera index (0, 1, ...)")
    p.add_argument("--model", help="model file (.onnx, .xml, .tflite); default: the bundled model")
    p.add_argument("--backend", help="force a runtime (onnxruntime, openvino, litert)")
    p.add_argument("--box", nargs=4, type=float, action="append", metavar=("X1", "Y1", "X2", "Y2"),
                   help="face box in pixels (repeat for several faces); default: detect faces")
    p.add_argument("--whole-image", action="store_true", help="use the whole image as the face box (face crops)")
    p.add_argument("--flip-test", action="store_true", help="average a mirrored pass (more accurate, 2x slower)")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="write an annotated copy of the image / video (mp4) here")
    p.add_argument("--json", help="write landmarks as JSON here ('-' for stdout)")
    p.add_argument("--redetect-every", type=int, default=30, help="video: run the face detector every N frames")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="video: re-detect when a face's confidence drops below this")
    p.add_argument("--no-smooth", action="store_true", help="video: no One-Euro smoothing")
    p.add_argument("--max-frames", type=int, help="video/camera: stop after N frames")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from .predictor import Predictor
    from .video import is_video_source

    if is_video_source(args.image):
        from .video import run_video

        predictor = Predictor(args.model, backend=args.backend, threads=args.threads, flip_test=args.flip_test)
        return run_video(args.image, predictor, out=args.out, json_path=args.json,
                         redetect_every=args.redetect_every, min_confidence=args.min_confidence,
                         smooth=not args.no_smooth, max_frames=args.max_frames)
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"edgemark predict: cannot read image {args.image} (missing, corrupt or not an image)")
    predictor = Predictor(args.model, backend=args.backend, threads=args.threads, flip_test=args.flip_test)
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
        text = json.dumps(payload)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    if args.out:
        from .draw import draw_landmarks

        if not cv2.imwrite(args.out, draw_landmarks(image, result)):
            raise SystemExit(f"edgemark predict: cannot write {args.out}")
    if not args.json:
        conf = ", ".join(f"{c:.2f}" for c in result.face_confidence)
        print(f"{len(result)} face(s), {result.landmarks.shape[1]} points each ({result.scheme})"
              + (f"; confidence {conf}" if len(result) else "")
              + (f"; annotated image: {args.out}" if args.out else ""))
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="NME of a model file on a landmark dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--backend")
    p.add_argument("--dataset", default="aflw2000-3d")
    p.add_argument("--data-root", help="dataset location (default: from ../shared or EDGEMARK_SHARED)")
    p.add_argument("--labels", default="reannotated", choices=["reannotated", "original"])
    p.add_argument("--limit", type=int, help="first N faces only")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--arch", help="architecture, when --model or --reference is a torch checkpoint")
    p.add_argument("--input-size", type=int, help="input size of a torch checkpoint")
    p.add_argument("--reference", help="a second model (file or checkpoint) to compare landmarks with, face by face")
    p.set_defaults(func=cmd_eval)


def _open_predictor(path: str, args: argparse.Namespace):
    from benchmarks.fidelity import open_any

    return open_any(path, arch=args.arch, input_size=args.input_size, threads=args.threads)


def cmd_eval(args: argparse.Namespace) -> int:
    from benchmarks.datasets import load_aflw2000_3d, load_dataset
    from benchmarks.evaluate import evaluate

    if args.dataset == "aflw2000-3d":
        data = load_aflw2000_3d(args.data_root, labels=args.labels, limit=args.limit)
    else:
        data = load_dataset(args.dataset, args.data_root)
        data = data[: args.limit] if args.limit else data
    predictor = _open_predictor(args.model, args)
    report = evaluate(predictor, data, progress=not args.json)
    predictions = report.pop("predictions")
    report.pop("per_face_nme")
    report = {"model": args.model, "backend": predictor.backend.name, "dataset": args.dataset,
              "labels": args.labels, **_jsonable(report)}
    if args.reference:
        ref = evaluate(_open_predictor(args.reference, args), data, progress=not args.json)
        dist = np.linalg.norm(predictions.astype(np.float64) - ref["predictions"], axis=-1)
        report["reference"] = {"model": args.reference, "nme": float(ref["nme"]),
                               "landmark_diff_mean_px": float(dist.mean()), "landmark_diff_max_px": float(dist.max())}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.model} [{predictor.backend.name}] on {args.dataset} ({report['count']} faces): "
              f"NME {report['nme']:.3f} %" + (f", bins {report['nme_bins']}, bin mean {report['nme_bin_mean']:.3f} %"
                                              if "nme_bins" in report else ""))
        if "reference" in report:
            r = report["reference"]
            print(f"reference {r['model']}: NME {r['nme']:.3f} %; landmark difference mean "
                  f"{r['landmark_diff_mean_px']:.2e} px, max {r['landmark_diff_max_px']:.2e} px")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency vs NME of model files on every runtime, with a report")
    from benchmarks.bench import add_arguments  # argparse definitions only; measuring imports stay lazy

    add_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.bench import BenchError, config_from_args, run_bench

    cfg = config_from_args(args)
    try:
        data = run_bench(cfg)
    except BenchError as exc:
        print(f"edgemark bench: {exc}", file=sys.stderr)
        return 2
    print(f"{len(data['models'])} model rows; report: {cfg.out / 'report.md'}, data: {cfg.out / 'results.json'}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(c for r in rows for c in r))  # rows may add columns (INT8 rows do)
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a landmark model from a YAML config (training/configs/*.yaml)")
    p.add_argument("config", help="training config (YAML)")
    p.add_argument("--out", help="output directory (default: the config's out_dir, runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from training.trainer import TrainConfigError, train

    train_over = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps), ("device", args.device))
                  if v is not None}
    overrides: dict[str, Any] = {"train": train_over} if train_over else {}
    if args.out:
        overrides["out_dir"] = args.out
    try:
        trainer = train(args.config, overrides=overrides, resume=args.resume, progress=not args.quiet)
    except TrainConfigError as exc:
        print(f"edgemark train: {exc}", file=sys.stderr)
        return 2
    best = trainer.best_nme
    print(f"trained {trainer.cfg['arch']} in {trainer.out}: best validation NME {best:.3f} % "
          f"({len(trainer.val_set)} held-out faces); convert with: edgemark convert {trainer.out / 'best.pth'} "
          f"--arch {trainer.cfg['arch']} --input-size {trainer.cfg['input_size']}"
          + (f" --meanface {trainer.out / 'meanface.txt'}" if trainer.meanface is not None else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgemark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_convert, _add_predict, _add_eval, _add_bench, _add_train):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import EdgemarkError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (EdgemarkError, FileNotFoundError) as exc:
        print(f"edgemark {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
