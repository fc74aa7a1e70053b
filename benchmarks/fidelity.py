"""Accuracy and fidelity of converted files against their reference, face by face.

``python -m benchmarks.fidelity --reference REF --models A B ... --out DIR`` evaluates every
model on the dataset through the Predictor, and reports NME and the landmark difference
(image pixels) against the reference — a torch checkpoint (give --arch/--input-size) or a
model file. Predictions are cached per file in DIR so tables can be rebuilt cheaply.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.predictor import Predictor

from landmarkdata.datasets import LandmarkDataset, load_aflw2000_3d
from landmarkdata.evaluate import predict_dataset, score_predictions


def open_any(path: str, arch: str | None = None, input_size: int | None = None, threads: int | None = None,
             backend: str | None = None) -> Predictor:
    """A Predictor on a model file (``backend``: force a runtime), or on a torch checkpoint (needs the
    converter stack)."""
    if Path(path).suffix.lower() in (".pth", ".pt", ".ckpt"):
        from converters.api import load_source
        from converters.torch_backend import TorchBackend

        source = load_source(path, arch=arch, input_size=input_size)
        return Predictor(TorchBackend(source.torch_module, source.meta, threads=threads, source=path))
    return Predictor(path, threads=threads, backend=backend)


def cached_predictions(path: str, data: LandmarkDataset, cache: Path, **open_kw: Any) -> tuple[np.ndarray, str]:
    """Predictions for every face (cached by file content + dataset), and the model's scheme name."""
    p = Path(path)
    stat = p.stat()
    key = hashlib.sha1(f"{p.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{data.name}:{len(data)}:"
                       f"{data.landmarks.sum():.3f}".encode()).hexdigest()[:16]
    file = cache / f"{p.stem}.{key}.npz"
    if file.exists():
        z = np.load(file)
        return z["pred"], str(z["scheme"])
    predictor = open_any(path, **open_kw)
    pred = predict_dataset(predictor, data, desc=p.name)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, pred=pred, scheme=predictor.metadata.scheme.name)
    return pred, predictor.metadata.scheme.name


def fidelity_table(reference: str, models: Sequence[str], data: LandmarkDataset, cache: Path,
                   arch: str | None = None, input_size: int | None = None) -> list[dict[str, Any]]:
    ref_pred, scheme = cached_predictions(reference, data, cache, arch=arch, input_size=input_size)
    ref_report = score_predictions(ref_pred, data, scheme)
    rows = [{"model": Path(reference).name, "role": "reference", "nme": ref_report["nme"],
             "nme_bin_mean": ref_report.get("nme_bin_mean"), "delta_nme": 0.0, "diff_mean_px": 0.0, "diff_max_px": 0.0}]
    for m in models:
        pred, s = cached_predictions(m, data, cache)
        report = score_predictions(pred, data, s)
        dist = np.linalg.norm(pred.astype(np.float64) - ref_pred, axis=-1)
        rows.append({"model": Path(m).name, "role": "candidate", "nme": report["nme"],
                     "nme_bin_mean": report.get("nme_bin_mean"), "delta_nme": report["nme"] - ref_report["nme"],
                     "diff_mean_px": float(dist.mean()), "diff_max_px": float(dist.max())})
    return rows


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    lines = [f"**{title}**", "", "| model | NME % | Δ NME | mean diff px | max diff px |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['nme']:.3f} | {r['delta_nme']:+.3f} | {r['diff_mean_px']:.2e} | "
                     f"{r['diff_max_px']:.2e} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--arch")
    ap.add_argument("--input-size", type=int)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--labels", default="reannotated")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", required=True, help="directory for the cache and <title>.json/.md")
    ap.add_argument("--title", default="fidelity")
    args = ap.parse_args(argv)
    data = load_aflw2000_3d(labels=args.labels, limit=args.limit)
    out = Path(args.out)
    rows = fidelity_table(args.reference, args.models, data, out / "cache", args.arch, args.input_size)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.title}.json").write_text(json.dumps(rows, indent=2))
    text = markdown(rows, f"{args.title} — AFLW2000-3D ({len(data)} faces, {args.labels} labels)")
    (out / f"{args.title}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
