"""INT8 that is not faster is not a win: the INT8/FP32 speed-up of a written file, measured at once.

Both files of one format are opened on their own runtime and their raw call (``backend.run`` on the
same real face crop, batch 1) is timed alternately — FP32, INT8, FP32, INT8 … — so a load change on
the machine hits both alike; the medians' ratio is the speed-up. ``edgemark convert`` prints it
for every INT8 file and stores it in the file's metadata (``provenance.extra.int8_speedup``); below
``NOT_FASTER`` the file is flagged.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from sdk.backends import open_backend

NOT_FASTER = 1.05  # below this the INT8 file is not worth its accuracy cost
RUNS, WARMUP = 60, 10


def _tensor(meta) -> np.ndarray:
    from .graph_rewrite import reference_tensors

    return reference_tensors(meta, count=1)


def measure_speedup(fp32_path: str | Path, int8_path: str | Path, threads: tuple[int, ...] = (1, 2),
                    runs: int = RUNS, warmup: int = WARMUP) -> dict[str, Any]:
    """Raw-call medians (ms) of both files per thread count, interleaved, and INT8 speed-up = FP32 ÷ INT8."""
    out: dict[str, Any] = {"fp32_file": Path(fp32_path).name, "runs": runs, "batch": 1}
    for t in threads:
        fp32, int8 = open_backend(fp32_path, threads=t), open_backend(int8_path, threads=t)
        tensor = _tensor(fp32.metadata)
        for _ in range(warmup):
            fp32.run(tensor)
            int8.run(tensor)
        times = {"fp32": [], "int8": []}
        for _ in range(runs):
            for key, backend in (("fp32", fp32), ("int8", int8)):
                start = time.perf_counter()
                backend.run(tensor)
                times[key].append(time.perf_counter() - start)
        f, i = (float(np.median(times[k]) * 1e3) for k in ("fp32", "int8"))
        out[f"threads_{t}"] = {"fp32_ms": round(f, 4), "int8_ms": round(i, 4), "speedup": round(f / i, 3)}
    worst = min(v["speedup"] for k, v in out.items() if k.startswith("threads_"))
    out["not_faster"] = worst < NOT_FASTER
    return out


def speedup_text(s: dict[str, Any]) -> str:
    cells = [f"{k.split('_')[1]}t {v['speedup']:.2f}x" for k, v in s.items() if k.startswith("threads_")]
    return " / ".join(cells) + ("  NOT FASTER" if s.get("not_faster") else "")
