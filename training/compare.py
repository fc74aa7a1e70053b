"""What sub-pixel decoding is worth: each model's own decoder vs plain argmax baselines, same network outputs.

The network runs once per face; every decoder variant reads the same raw outputs, so the
differences between columns come from decoding alone. Variants:

* heat-map models (H3R, SHR): the model's decoder, ``argmax`` (integer peak cell × stride)
  and ``argmax_quarter`` (peak moved ¼ cell towards the higher neighbour);
* PIPNet: ``pipnet`` (cell + offset, merged with the neighbours' predictions — the full
  decoder), ``pipnet_own_offset`` (argmax cell + its own offset, no neighbours) and
  ``pipnet_cell_centre`` (argmax cell only, read at the cell's centre ``(c + ½) · stride``:
  PIPNet counts from the input's corner, so the centre, not the corner, is the unbiased
  integer-cell estimate — the analogue of heat-map argmax).

Scored with the AFLW2000-3D protocol (98 → 68 mapping, GT-box crops, sqrt(w·h) normaliser).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from sdk.decoders import decode
from sdk.metadata import ModelMetadata
from sdk.outputs import outputs_by_role
from sdk.predictor import Predictor
from sdk.preprocess import prepare_batch, to_image_coords

Variant = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _pipnet_cells(outs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cls = np.asarray(outs["cls"], dtype=np.float32)
    n, l, h, w = cls.shape
    k = cls.reshape(n, l, h * w).argmax(axis=2)
    return k, (k % w).astype(np.float64), (k // w).astype(np.float64)


def decoder_variants(meta: ModelMetadata) -> dict[str, Variant]:
    """name → function(outputs by role) → landmarks (N, L, 2) in network-input coordinates."""
    own = meta.decoder.name
    params = dict(meta.decoder.params)
    stride = float(params["stride"])
    variants: dict[str, Variant] = {own: lambda o: decode(own, o, params)[0]}
    if own == "pipnet":
        def own_offset(o: Mapping[str, np.ndarray]) -> np.ndarray:
            k, col, row = _pipnet_cells(o)
            n, l = k.shape
            ox = np.take_along_axis(np.asarray(o["offset_x"]).reshape(n, l, -1), k[..., None], 2)[..., 0]
            oy = np.take_along_axis(np.asarray(o["offset_y"]).reshape(n, l, -1), k[..., None], 2)[..., 0]
            return (np.stack([col + ox, row + oy], axis=-1) * stride).astype(np.float32)

        def cell_centre(o: Mapping[str, np.ndarray]) -> np.ndarray:
            _, col, row = _pipnet_cells(o)
            return (np.stack([col + 0.5, row + 0.5], axis=-1) * stride).astype(np.float32)

        variants["pipnet_own_offset"] = own_offset
        variants["pipnet_cell_centre"] = cell_centre
    else:
        for name in ("argmax", "argmax_quarter"):
            variants[name] = (lambda nm: (lambda o: decode(nm, o, {"stride": stride})[0]))(name)
    return variants


def evaluate_variants(model: str | Path, dataset, *, batch: int = 32, threads: int | None = None,
                      progress: bool = True) -> dict[str, dict]:
    """NME report per decoder variant for one model file on ``dataset`` (boxes from the dataset)."""
    from tqdm import tqdm

    from landmarkdata.evaluate import score_predictions

    predictor = Predictor(model, threads=threads)
    meta = predictor.metadata
    variants = decoder_variants(meta)
    preds: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    for lo in tqdm(range(0, len(dataset), batch), desc=Path(model).name, disable=not progress, leave=False):
        tensors, mats = [], []
        for i in range(lo, min(lo + batch, len(dataset))):
            t, m = prepare_batch(dataset.load_image(i), dataset[i].box[None], meta.input, meta.crop)
            tensors.append(t)
            mats.append(m)
        raw = predictor.backend.run(np.concatenate(tensors))
        outs = outputs_by_role(meta, raw)
        for name, fn in variants.items():
            preds[name].append(to_image_coords(fn(outs), np.concatenate(mats), meta.crop.coordinate_origin))
    reports = {}
    for name, chunks in preds.items():
        rep = score_predictions(np.concatenate(chunks), dataset, meta.scheme.name)
        rep.pop("per_face_nme", None)
        reports[name] = {k: v for k, v in rep.items() if not isinstance(v, np.ndarray)}
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="model files (ONNX with edgemark metadata)")
    p.add_argument("--limit", type=int, help="first N AFLW2000-3D faces only")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="write all reports here")
    args = p.parse_args(argv)
    from landmarkdata.datasets import load_aflw2000_3d

    data = load_aflw2000_3d(limit=args.limit)
    results = {}
    for model in args.models:
        results[str(model)] = evaluate_variants(model, data, threads=args.threads)
        for name, rep in results[str(model)].items():
            print(f"{Path(model).name:40s} {name:22s} NME {rep['nme']:.3f} %  bins {rep.get('nme_bins')}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
