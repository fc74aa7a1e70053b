"""INT8 that is not faster is not a win: the INT8/FP32 speed-up of a written file, measured at once.

Both files of one format are opened on their own runtime, and four calls are timed in turns — each
file's raw call (``backend.run`` on its own input tensor for the same real face crop, batch 1) and
each file's whole ``Predictor.predict`` on the photo the crop comes from — so a load change on the
machine hits all of them alike. The speed-up is FP32 ÷ INT8 of the raw medians where both files do
the same work in their graphs, and of the predict medians where they do not (an OpenVINO INT8 file
keeps its maps and is decoded in numpy while its FP32 sibling decodes in its graph; or one of them
normalises in its graph). ``edgemark convert`` prints it for every INT8 file and stores it in the
file's metadata (``provenance.extra.int8_speedup``); below ``NOT_FASTER`` the file is flagged. The
bench (``benchmarks.bench``) measures the same pairs again in its own run.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

NOT_FASTER = 1.05  # below this the INT8 file is not worth its accuracy cost
RUNS, WARMUP = 60, 10


def same_work(a, b) -> bool:
    """Whether two files' graphs do the same work around the network (decoding, map back, normalisation)."""
    from sdk.decoders import IN_GRAPH, MAPS_BACK

    return (all(bool(a.decoder.params.get(k)) == bool(b.decoder.params.get(k)) for k in (IN_GRAPH, MAPS_BACK))
            and a.input.name == b.input.name)


def time_interleaved(fns: Sequence[Callable[[], Any]], runs: int, warmup: int = 5,
                     clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """Durations (seconds) of ``runs`` calls of each of ``fns``, called in turns, the order reversed each turn.

    Why: on a shared CPU the machine's speed drifts over seconds, so two calls timed one after
    the other are compared under the same conditions, where two blocks of calls timed in sequence
    are not — a ratio of two such blocks (the SDK's overhead, predict ÷ raw call) moved by ±30 %.
    The garbage collector is paused while timing. ``benchmarks.latency`` uses this one too.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        for fn in fns:
            fn()
    durations: list[list[float]] = [[] for _ in fns]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for turn in range(runs):
            order = range(len(fns)) if turn % 2 == 0 else range(len(fns) - 1, -1, -1)
            for i in order:
                start = clock()
                fns[i]()
                durations[i].append(clock() - start)
    finally:
        if was_enabled:
            gc.enable()
    return durations


def measure_speedup(fp32_path: str | Path, int8_path: str | Path, threads: tuple[int, ...] = (1, 2),
                    runs: int = RUNS, warmup: int = WARMUP) -> dict[str, Any]:
    """Per thread count: raw and predict medians (ms) of both files, timed in turns, and the INT8 speed-up
    (FP32 ÷ INT8, on ``basis``: raw where the files do the same work in their graphs, else predict)."""
    from sdk.predictor import Predictor
    from sdk.preprocess import prepare_batch

    from .graph_rewrite import sample_face

    image, box = sample_face()
    out: dict[str, Any] = {"fp32_file": Path(fp32_path).name, "runs": runs, "batch": 1}
    for t in threads:
        fp32, int8 = Predictor(fp32_path, threads=t), Predictor(int8_path, threads=t)
        out["basis"] = "raw" if same_work(fp32.metadata, int8.metadata) else "predict"
        fns = []
        for p in (fp32, int8):
            tensor, _ = prepare_batch(image, box, p.metadata.input, p.metadata.crop)
            fns.append(lambda p=p, tensor=tensor: p.backend.run(tensor))
        fns += [lambda p=p: p.predict(image, box) for p in (fp32, int8)]
        raw32, raw8, pred32, pred8 = (float(np.median(d) * 1e3) for d in time_interleaved(fns, runs, warmup))
        f, i = (raw32, raw8) if out["basis"] == "raw" else (pred32, pred8)
        out[f"threads_{t}"] = {"fp32_ms": round(raw32, 4), "int8_ms": round(raw8, 4),
                               "fp32_predict_ms": round(pred32, 4), "int8_predict_ms": round(pred8, 4),
                               "speedup": round(f / i, 3)}
    worst = min(v["speedup"] for k, v in out.items() if k.startswith("threads_"))
    out["not_faster"] = worst < NOT_FASTER
    return out


def speedup_text(s: dict[str, Any]) -> str:
    cells = [f"{k.split('_')[1]}t {v['speedup']:.2f}x" for k, v in s.items() if k.startswith("threads_")]
    basis = " (whole predict)" if s.get("basis") == "predict" else ""
    return " / ".join(cells) + basis + ("  NOT FASTER" if s.get("not_faster") else "")
