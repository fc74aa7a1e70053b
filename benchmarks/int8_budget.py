"""The INT8 budget rule checked on the 2,000 test faces: predicted vs measured NME increase per file.

For each INT8 file (beside its ``_fp32`` sibling of the same format): what its metadata says the
search predicted on the held-out calibration faces (``d``, ``N``, predicted %), and what the
2,000 AFLW2000-3D faces measure — the relative NME increase itself, and the rule applied to the
test faces' own labels (does the decorrelated rule hold where it can be checked?).

``python -m benchmarks.int8_budget /tmp/m12/*_int8.onnx ... --out benchmarks/results/int8_budget --cache /tmp/c``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from calibration.sets import agreement_nme
from converters.int8.validate import decorrelated_increase
from landmarkdata.metrics import box_normaliser
from sdk.schemes import map_landmarks
from landmarkdata.datasets import LABEL_SETS, load_aflw2000_3d
from landmarkdata.evaluate import score_predictions
from sdk.atomic import write_text
from sdk.backends import open_backend
from sdk.formats import format_of

from .fidelity import cached_predictions

RUNTIME_NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO", "tflite": "TFLite"}


def fp32_sibling(int8_path: Path) -> Path:
    stem = int8_path.stem
    base = stem[: stem.rindex("_int8")]
    return int8_path.with_name(f"{base}_fp32{int8_path.suffix}")


def budget_row(int8_path: Path, cache: Path, label_sets: Sequence[str] = LABEL_SETS) -> dict[str, Any]:
    fp32_path = fp32_sibling(int8_path)
    val = dict(open_backend(int8_path).metadata.provenance.extra.get("validation", {}))
    recipe = dict(open_backend(int8_path).metadata.provenance.extra.get("int8_recipe", {}))
    row: dict[str, Any] = {"file": int8_path.name, "runtime": RUNTIME_NAMES[format_of(int8_path).name],
                           "recipe": recipe.get("name", ""), "scope": recipe.get("scope", ""),
                           "val_d": val.get("nme_vs_fp32"), "val_N": val.get("fp32_nme"),
                           "predicted_pct": val.get("predicted_increase_pct"), "budget_pct": val.get("budget")}
    for labels in label_sets:
        data = load_aflw2000_3d(labels=labels)
        ref, scheme = cached_predictions(str(fp32_path), data, cache)
        cand, _ = cached_predictions(str(int8_path), data, cache)
        n_fp32 = score_predictions(ref, data, scheme)["nme"]
        n_int8 = score_predictions(cand, data, scheme)["nme"]
        d_test = float(np.mean(agreement_nme(cand, ref, data.boxes)))
        gt = data.landmarks.astype(np.float64)
        rule = decorrelated_increase(map_landmarks(ref, scheme, data.scheme), map_landmarks(cand, scheme, data.scheme),
                                     gt, box_normaliser(gt))
        row[labels] = {"fp32_nme": n_fp32, "int8_nme": n_int8, "measured_pct": 100 * (n_int8 / n_fp32 - 1),
                       "test_d": d_test, "rule_on_test_pct": rule}
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| file | runtime | recipe | held-out d / N | predicted on held-out % | test d | rule on test labels % | "
             "FP32 → INT8 NME (reannotated) | measured % | measured % (original) |",
             "|---|---|---|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        a, b = r["reannotated"], r.get("original", {"measured_pct": float("nan")})
        lines.append(f"| {r['file']} | {r['runtime']} | {r['recipe']} | {r['val_d']:.3f} / {r['val_N']:.3f} | "
                     f"{r['predicted_pct']:+.3f} | {a['test_d']:.3f} | {a['rule_on_test_pct']:+.3f} | "
                     f"{a['fp32_nme']:.3f} → {a['int8_nme']:.3f} | {a['measured_pct']:+.3f} | {b['measured_pct']:+.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="INT8 model files, each beside its _fp32 file")
    p.add_argument("--out", required=True, help="folder for int8_budget.json / .md")
    p.add_argument("--cache", help="prediction cache folder (default: OUT/cache)")
    p.add_argument("--labels", nargs="+", default=list(LABEL_SETS), choices=LABEL_SETS)
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = []
    for f in sorted(args.files):
        rows.append(budget_row(Path(f), Path(args.cache) if args.cache else out / "cache", args.labels))
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("scope",)}), flush=True)
    write_text(out / "int8_budget.json", json.dumps(rows, indent=1) + "\n")
    text = markdown(rows)
    write_text(out / "int8_budget.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
