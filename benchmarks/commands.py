"""The benchmark commands: ``edgemark eval`` (NME of one model) and ``edgemark bench`` (latency vs NME)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from landmarkdata.datasets import open_dataset
from sdk.commandline import Command, positive_int
from sdk.formats import RUNTIMES

from .options import add_dataset_arguments


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model file (.onnx, .xml, .tflite) or a torch checkpoint (--arch)")
    p.add_argument("--backend", choices=sorted(RUNTIMES), help="force a runtime (default: from the file extension)")
    add_dataset_arguments(p)
    p.add_argument("--threads", type=positive_int)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--arch", help="architecture, when --model or --reference is a torch checkpoint")
    p.add_argument("--input-size", type=positive_int, help="input size of a torch checkpoint")
    p.add_argument("--reference", help="a second model (file or checkpoint) to compare landmarks with, face by face")


def _open_predictor(path: str, args: argparse.Namespace):
    from .fidelity import open_any

    return open_any(path, arch=args.arch, input_size=args.input_size, threads=args.threads, backend=args.backend)


def run_eval(args: argparse.Namespace) -> int:
    from landmarkdata.evaluate import evaluate

    data = open_dataset(args.dataset, args.data_root, image_root=args.image_root, labels=args.labels,
                        limit=args.limit)
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


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from .bench import add_arguments  # argparse definitions only; measuring imports stay lazy

    add_arguments(p)


def run_bench(args: argparse.Namespace) -> int:
    from .bench import BenchError, config_from_args, run_bench as bench

    cfg = config_from_args(args)
    try:
        data = bench(cfg)
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


COMMANDS = {"eval": Command(add_eval_arguments, run_eval), "bench": Command(add_bench_arguments, run_bench)}
