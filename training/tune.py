"""Choose a decoder parameter on the held-out validation split (never on test data).

SHR publishes no temperature: the paper says to pick it on training/validation data and
store it with the model. This runs the trained network once on the validation faces of a
training config and decodes the same outputs with each candidate value.

    python -m training.tune training/configs/shr_mnv2_128.yaml runs/shr_mnv2_128/best.pth \
        --param temperature --values 0.03 0.05 0.07 0.09 0.12 0.15 0.2
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sdk.decoders import decode
from sdk.preprocess import crop_regions, to_image_coords, warp_matrices


def tune_decoder_param(config: str | Path, checkpoint: str | Path, param: str, values: Sequence[float],
                       *, progress: bool = True) -> dict[float, float]:
    """Validation NME (%) for each value of decoder parameter ``param`` (other parameters as trained)."""
    from landmarkdata.metrics import box_normaliser, nme
    from converters.checkpoints import load_checkpoint

    from .data import AugmentedFaces, make_sets
    from .objectives import outputs_dict
    from .trainer import Trainer, load_config

    cfg = load_config(config)
    train, val = make_sets(cfg["data"], int(cfg["num_points"]), progress=progress)
    trainer = Trainer(cfg, train_set=train, val_set=val, progress=False)  # model + metadata as trained
    load_checkpoint(trainer.model, checkpoint, cfg["arch"])
    meta = trainer.meta
    if param not in meta.decoder.params:
        raise ValueError(f"decoder {meta.decoder.name} has no parameter {param!r}: {sorted(meta.decoder.params)}")
    data = AugmentedFaces(val, meta, None)
    trainer.model.eval()
    outs = []
    with torch.no_grad():
        for lo in range(0, len(data), 64):
            x = torch.stack([data[i][0] for i in range(lo, min(lo + 64, len(data)))])
            o = outputs_dict(trainer.model(x), trainer.spec.output_roles)
            outs.append({k: v.numpy() for k, v in o.items()})
    raw = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    mats = warp_matrices(crop_regions(val.boxes, meta.crop), meta.input.width, meta.input.height)
    to68 = meta.scheme.to68
    norm = box_normaliser(val.landmarks[:, list(to68)] if to68 is not None else val.landmarks)
    result = {}
    for v in values:
        params = {**meta.decoder.params, param: float(v)}
        pts = to_image_coords(decode(meta.decoder.name, raw, params)[0], mats, meta.crop.coordinate_origin)
        result[float(v)] = float(np.nanmean(nme(pts, val.landmarks, norm)))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.tune", description=__doc__.split("\n")[0])
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--param", default="temperature")
    p.add_argument("--values", nargs="+", type=float, required=True)
    args = p.parse_args(argv)
    res = tune_decoder_param(args.config, args.checkpoint, args.param, args.values)
    best = min(res, key=res.get)
    print(json.dumps({"param": args.param, "val_nme": res, "best": best}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
