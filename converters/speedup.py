"""INT8 that is not faster is not a win: the INT8/FP32 speed-up of a written file, measured at once.

Both files of one format are opened on their own runtime, and each file's raw call (``backend.run``
on its own input tensor for the same real face crop, batch 1) and whole ``Predictor.predict`` on the
photo the crop comes from are timed in short blocks, the two files' blocks in turns
(``time_in_blocks``), so a load change on the machine hits both alike. The speed-up is FP32 ÷ INT8
of the raw medians where both files do the same work in their graphs, and of the predict medians
where they do not (an OpenVINO INT8 file keeps its maps and is decoded in numpy while its FP32
sibling decodes in its graph; or one of them normalises in its graph). ``edgemark convert`` prints it for every INT8 file and stores it in the
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
# Blocks of BLOCK timed turns per file, each after SETTLE_S of untimed calls: measured (ONNX Runtime,
# H3R-160, 2 threads) the file called right after the other one ran 2-4x slower than alone for ~20
# calls (~30 ms) — the other session's idle thread pool — so calls timed one file after the other
# were not either file's speed (OpenVINO: 0.91 vs 0.63 ms for 4 calls; LiteRT within 5 %).
BLOCK, SETTLE_S = 10, 0.1
METHOD = f"blocks of {BLOCK} after {SETTLE_S:g} s"  # stored with each measurement: a changed method re-measures


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


def time_in_blocks(groups: Sequence[Sequence[Callable[[], Any]]], runs: int, warmup: int = 5,
                   block: int = BLOCK, settle_s: float = SETTLE_S,
                   clock: Callable[[], float] = time.perf_counter) -> list[list[list[float]]]:
    """Durations (seconds) of ``runs`` calls of each function of each group: the groups take turns (the order
    reversed each turn), a group's turn being ``settle_s`` of untimed calls (at least one) and then ``block``
    calls of each of its functions in turns (``time_interleaved``).

    Why: two model files each keep their runtime's thread pool; right after one file's calls the other's
    run slower until that pool goes idle (see ``BLOCK``), so files are compared block by block, while
    the functions of one file (its raw call and its ``predict``, one pool) still alternate call by call.
    """
    if runs < 1 or block < 1:
        raise ValueError(f"runs and block must be >= 1, got {runs} and {block}")
    if warmup < 0 or settle_s < 0:
        raise ValueError(f"warmup and settle_s must be >= 0, got {warmup} and {settle_s}")
    durations: list[list[list[float]]] = [[[] for _ in fns] for fns in groups]
    for fns in groups:
        for _ in range(warmup):
            for fn in fns:
                fn()
    turn = 0
    while len(durations[0][0]) < runs:
        order = range(len(groups)) if turn % 2 == 0 else range(len(groups) - 1, -1, -1)
        for g in order:
            fns, n = groups[g], min(block, runs - len(durations[g][0]))
            start = clock()
            while True:  # untimed: until the other group's pool is idle and this one's is busy
                for fn in fns:
                    fn()
                if clock() - start >= settle_s:
                    break
            for got, d in zip(durations[g], time_interleaved(fns, n, 0, clock)):
                got.extend(d)
        turn += 1
    return durations


def measure_speedup(fp32_path: str | Path, int8_path: str | Path, threads: tuple[int, ...] = (1, 2),
                    runs: int = RUNS, warmup: int = WARMUP) -> dict[str, Any]:
    """Per thread count: raw and predict medians (ms) of both files, timed in blocks (``time_in_blocks``), and the
    INT8 speed-up (FP32 ÷ INT8, on ``basis``: raw where the files do the same work in their graphs, else predict)."""
    from sdk.predictor import Predictor
    from sdk.preprocess import prepare_batch

    from .graph_rewrite import sample_face

    image, box = sample_face()
    out: dict[str, Any] = {"fp32_file": Path(fp32_path).name, "runs": runs, "batch": 1, "method": METHOD}
    for t in threads:
        fp32, int8 = Predictor(fp32_path, threads=t), Predictor(int8_path, threads=t)
        out["basis"] = "raw" if same_work(fp32.metadata, int8.metadata) else "predict"
        groups = []
        for p in (fp32, int8):
            tensor, _ = prepare_batch(image, box, p.metadata.input, p.metadata.crop)
            groups.append([lambda p=p, tensor=tensor: p.backend.run(tensor), lambda p=p: p.predict(image, box)])
        (raw32, pred32), (raw8, pred8) = ([float(np.median(d) * 1e3) for d in file_durations]
                                          for file_durations in time_in_blocks(groups, runs, warmup))
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
