"""The same photo job on Ray Data, for collections that outgrow one machine.

``run_ray(inputs, out, options, actors=2, cpus_per_actor=1)`` reads the files with
``ray.data.read_binary_files`` (local paths, or any pyarrow filesystem: ``filesystem=`` with
``s3://…`` / ``gs://…`` paths), runs ``map_batches`` with ``PredictorActor`` — a callable class that
holds one Predictor per actor (actor pool of ``actors``, ``cpus_per_actor`` CPUs each, that many
runtime threads) — and writes Parquet with the schema of ``sdk.batch.rows``. Rows are the ones the
local engine writes for the same files. A rerun skips inputs the output folder already holds.

On an existing cluster: ``ray.init(address="auto")`` (or ``ray job submit -- edgemark predict …
--engine ray --ray-address auto``) before calling; the workers need edgemark installed with one
runtime extra. Ray comes with ``pip install 'edgemark[ray]'``, never with the runtime alone.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .job import BatchOptions, FileProcessor, usable_cores
from .rows import done_key
from .sources import SourceFile, expand_inputs


class PredictorActor:
    """One Predictor per Ray actor; a batch of (bytes, path) becomes a pyarrow table of rows."""

    def __init__(self, options: BatchOptions, threads: int):
        self.processor = FileProcessor(options, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import cv2

        from .writers import rows_to_table

        rows = []
        for data, path in zip(batch["bytes"], batch["path"]):
            path = str(path)
            try:
                st = os.stat(path)
                size, mtime = int(st.st_size), int(st.st_mtime_ns)
            except OSError:  # a remote object: its content length, no modification time
                size, mtime = len(data), -1
            source = SourceFile(path, "image", size, mtime)
            buf = np.frombuffer(data, dtype=np.uint8)
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
            error = None if image is not None else ("empty file" if buf.size == 0 else
                                                    "cannot decode the file as an image (corrupt or not an image)")
            rows += self.processor.rows_for_image(source, image, error)
        return rows_to_table(rows)


def _local_todo(inputs: Sequence[str | Path], out: Path, options: BatchOptions) -> tuple[list[str], int]:
    sources = expand_inputs(inputs, recursive=options.recursive)
    videos = [s.path for s in sources if s.kind == "video"]
    if videos:
        raise InputError(f"the Ray engine reads photos; run videos with the local engine ({videos[0]} …)")
    done: set[str] = set()
    if out.is_dir():
        import pyarrow.parquet as pq

        for part in out.glob("*.parquet"):
            done |= {f"{k[0]}|{k[1]}|{k[2]}" for k in map(done_key, pq.read_table(
                part, columns=["source", "file_size", "file_mtime_ns", "frame"]).to_pylist())}
    todo = [s.path for s in sources if s.key not in done]
    return todo, len(sources) - len(todo)


def run_ray(inputs: Sequence[str | Path], out: str | Path, options: BatchOptions = BatchOptions(), *,
            actors: int = 1, cpus_per_actor: float | None = None, batch_size: int = 8, filesystem: Any = None,
            address: str | None = None) -> dict[str, Any]:
    """Run the job as a Ray Data pipeline; return counts. ``out`` is a Parquet folder."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'edgemark[ray]'") from None
    out = Path(out) if filesystem is None else out
    if isinstance(out, Path) and out.suffix.lower() != ".parquet":
        raise InputError(f"the Ray engine writes Parquet: give an output ending in .parquet, not {out}")
    if actors < 1:
        raise InputError(f"actors must be >= 1, got {actors}")
    if filesystem is None:
        todo, skipped = _local_todo(inputs, Path(out), options)
        todo = [str(Path(p).resolve()) if not Path(p).is_absolute() else p for p in todo]
    else:
        todo, skipped = [str(p) for p in inputs], 0
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else usable_cores(), include_dashboard=False,
                 log_to_driver=False)
    # one CPU stays free for the read tasks that feed the actors (all CPUs in actors would deadlock them)
    total = float(ray.cluster_resources().get("CPU", 1))
    cpus = cpus_per_actor or max(0.5, (total - 1.0) / actors)
    threads = max(1, int(cpus))
    if not todo:
        return {"files": skipped, "skipped": skipped, "rows": 0}
    ds = ray.data.read_binary_files(todo, include_paths=True, filesystem=filesystem)
    ds = ds.map_batches(PredictorActor, fn_constructor_kwargs={"options": options, "threads": threads},
                        batch_size=batch_size, concurrency=actors, num_cpus=cpus)
    ds.write_parquet(str(out), filesystem=filesystem)
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(p).num_rows for p in Path(out).glob("*.parquet")) if filesystem is None else None
    return {"files": len(todo) + skipped, "skipped": skipped, "rows": rows, "actors": actors, "cpus_per_actor": cpus}


__all__ = ["PredictorActor", "run_ray"]
