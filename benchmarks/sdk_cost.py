"""The SDK's own cost per ``predict`` call on one model file, measured as the bench measures it.

``python -m benchmarks.sdk_cost MODEL [--threads 1 2] [--batch 1] [--runs 300]``: raw backend call and
whole ``predict`` on the bundled sample photo's face, timed in turns, what each ``predict`` spent
outside its backend calls and, of that, in ``prepare_faces`` (the crop stage;
``benchmarks.peer_rows.raw_and_predict``). ``--sdk DIR`` measures the ``sdk`` and ``converters``
packages of another checkout (with its own bundled models) by this same code: run it alternately for
two versions, a few times, since the host's load moves all four numbers.
"""
from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sdk_cost", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model file (.onnx, .xml, .tflite); 'default' for the bundled one")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sdk", metavar="DIR", help="another checkout whose sdk/ and converters/ are measured")
    args = parser.parse_args(argv)
    if args.sdk:
        import sys

        if "sdk" in sys.modules:
            parser.error("--sdk must be given before the SDK is imported (run as python -m benchmarks.sdk_cost)")
        sys.path.insert(0, str(args.sdk))

    from converters.graph_rewrite import sample_face
    from sdk.predictor import Predictor, PredictorOptions

    from .peer_rows import raw_and_predict

    image, box = sample_face()
    boxes = np.repeat(box, args.batch, axis=0).astype(np.float32)
    for t in args.threads:
        p = Predictor(None if args.model == "default" else args.model,
                      options=PredictorOptions(threads=t, max_batch=max(8, args.batch)))
        raw, full, own, prepare = raw_and_predict(p, image, boxes, args.runs, args.warmup)
        print(f"{p.model_path.name} threads {t} batch {args.batch}: raw {raw.median_ms:.3f} ms, predict "
              f"{full.median_ms:.3f} ms (x{full.median_ms / raw.median_ms:.3f}), SDK's own "
              f"{own.median_ms / args.batch:.3f} ms per face, of which prepare_faces (crop) "
              f"{prepare.median_ms / args.batch:.3f} (medians over {args.runs} calls)")


if __name__ == "__main__":
    main()
