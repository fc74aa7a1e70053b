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
    p.add_argument("--name", help="base name of the output files (default: <arch>_<size> or the ONNX stem)")
    p.add_argument("--to", nargs="+", default=["onnx"], choices=["onnx", "openvino", "tflite"], help="formats")
    p.add_argument("--fp16", action="store_true", help="also write FP16 variants where the format has them")
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
    meta = metadata_from_json(args.metadata) if args.metadata else None
    source = load_source(args.source, arch=args.arch, points=args.points, input_size=args.input_size,
                         meanface=args.meanface, metadata=meta, name=args.name)
    precisions = ["fp32", "fp16"] if args.fp16 else ["fp32"]
    from tqdm import tqdm

    jobs = [(f, p) for f in args.to for p in precisions if not (f == "onnx" and p == "fp16")]
    rows = []
    bar = tqdm(total=len(jobs), desc="convert", unit="file", disable=args.json)
    try:
        for fmt, precision in jobs:
            bar.set_postfix_str(f"{fmt} {precision}")
            (result,) = convert(source, [fmt], args.out, precisions=[precision], verify=not args.no_verify)
            rows.append(result.as_row())
            bar.update()
    except ConversionError as exc:
        bar.close()
        print(f"edgemark convert: {exc}", file=sys.stderr)
        return 2
    bar.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="landmarks for the faces of an image")
    p.add_argument("image", help="image file")
    p.add_argument("--model", help="model file (.onnx, .xml, .tflite); default: the bundled model")
    p.add_argument("--backend", help="force a runtime (onnxruntime, openvino, litert)")
    p.add_argument("--box", nargs=4, type=float, action="append", metavar=("X1", "Y1", "X2", "Y2"),
                   help="face box in pixels (repeat for several faces)")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="write an annotated copy of the image here")
    p.add_argument("--json", help="write landmarks as JSON here ('-' for stdout)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from .predictor import Predictor

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"edgemark predict: cannot read image {args.image} (missing, corrupt or not an image)")
    predictor = Predictor(args.model, backend=args.backend, threads=args.threads)
    boxes = np.array(args.box, dtype=np.float32) if args.box else None
    if boxes is None:
        h, w = image.shape[:2]
        boxes = np.array([[0, 0, w - 1, h - 1]], dtype=np.float32)
        print("edgemark predict: no --box given; using the whole image as the face box", file=sys.stderr)
    result = predictor.predict(image, boxes)
    payload = {"image": args.image, "model": str(predictor.model_path), "scheme": result.scheme,
               "faces": [{"box": b.tolist(), "landmarks": lm.round(3).tolist(), "scores": s.round(4).tolist()}
                         for b, lm, s in zip(result.boxes, result.landmarks, result.scores)]}
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
        print(f"{len(result)} face(s), {result.landmarks.shape[1]} points each ({result.scheme})"
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
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgemark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_convert, _add_predict, _add_eval):
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
