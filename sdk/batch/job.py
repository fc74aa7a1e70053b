"""A photo collection through the Predictor: resumable, parallel on one machine.

``run_batch(inputs, out, BatchOptions(...))`` expands the inputs (``sources``), skips what ``out``
already holds (``writers``), and predicts the rest with N worker processes, each with its own
Predictor and ``threads`` runtime threads (workers × threads ≤ the cores by default), or in this
process when ``workers=1`` with the decoding done by a background thread so the model never waits
for the disk. Photos without a face get a ``no_face`` row, unreadable files an ``error`` row;
neither stops the job. A progress bar shows files, faces/s and the time left.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..atomic import sha256_file
from ..errors import EdgemarkError, InputError
from .rows import error_row, prediction_rows
from .sources import SourceFile, expand_inputs
from .writers import open_writer


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchOptions:
    """``workers``: processes (None = the cores); ``threads``: runtime threads per worker (None =
    cores ÷ workers); ``scheme68``: write the 68-point subset; ``annotate``: folder for annotated
    copies; ``chunk``: files per task handed to a worker."""

    model: str | None = None
    backend: str | None = None
    workers: int | None = None
    threads: int | None = None
    recursive: bool = False
    scheme68: bool = False
    flip_test: bool = False
    annotate: str | None = None
    chunk: int = 8
    max_frames: int | None = None  # videos and cameras: stop after N frames (a camera needs it to end)
    progress: bool = True

    def plan(self) -> tuple[int, int]:
        """(workers, threads per worker) for this machine."""
        cores = usable_cores()
        workers = self.workers or cores
        threads = self.threads or max(1, cores // workers)
        if workers < 1 or threads < 1:
            raise InputError(f"workers and threads must be >= 1, got {workers} and {threads}")
        return workers, threads


@dataclass
class BatchSummary:
    files: int = 0
    skipped: int = 0
    frames: int = 0
    faces: int = 0
    no_face: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    workers: int = 1
    threads: int = 1

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.files} files ({self.skipped} already done), {self.frames} frames, {self.faces} faces, "
                f"{self.no_face} without a face, {len(self.errors)} unreadable; {self.rows} rows in "
                f"{self.seconds:.1f} s ({self.faces_per_s:.1f} faces/s, {self.workers} worker(s) × "
                f"{self.threads} thread(s))")


class FileProcessor:
    """Everything a worker needs: one Predictor and the per-file logic (photos and video frames)."""

    def __init__(self, options: BatchOptions, threads: int):
        from ..predictor import Predictor

        self.options = options
        self.predictor = Predictor(options.model, backend=options.backend, threads=threads,
                                   flip_test=options.flip_test)
        meta = self.predictor.metadata
        self.model = {"model": Path(self.predictor.model_path).name,
                      "model_sha256": sha256_file(self.predictor.model_path)}
        if options.scheme68 and meta.scheme.to68 is None:
            raise InputError(f"--scheme 68: the model's scheme {meta.scheme.name} has no 68-point mapping")
        self.to68 = meta.scheme.to68 if options.scheme68 and meta.scheme.name != "ibug68" else None
        self.points = 68 if self.to68 is not None else meta.scheme.num_points
        self.scheme = "ibug68" if self.to68 is not None else meta.scheme.name

    def rows_for_image(self, source: SourceFile, image: np.ndarray | None, error: str | None) -> list[dict]:
        if image is None:
            return [error_row(source, 0, error or "cannot read the file as an image (corrupt or not an image)",
                              self.model, self.scheme)]
        try:
            result = self.predictor.predict(image)
        except EdgemarkError as exc:
            return [error_row(source, 0, str(exc), self.model, self.scheme)]
        self._annotate(source, 0, image, result)
        return prediction_rows(source, 0, result, self.model, to68=self.to68)

    def rows_for_video(self, source: SourceFile, done_frames: set[int]) -> Iterator[list[dict]]:
        import cv2

        camera = source.kind == "camera"
        cap = cv2.VideoCapture(int(source.path)) if camera else cv2.VideoCapture(source.path)
        if not cap.isOpened():
            why = f"cannot open camera {source.path}" if camera else \
                "cannot open the video (missing, corrupt or unsupported codec)"
            yield [error_row(source, 0, why, self.model, self.scheme)]
            return
        frame_index = 0
        limit = self.options.max_frames
        try:
            while limit is None or frame_index < limit:
                ok, frame = cap.read()
                if not ok:
                    break
                if frame_index not in done_frames:
                    result = self.predictor.predict(frame)
                    self._annotate(source, frame_index, frame, result)
                    yield prediction_rows(source, frame_index, result, self.model, to68=self.to68)
                frame_index += 1
        finally:
            cap.release()
        if frame_index == 0:
            yield [error_row(source, 0, "no frame could be read from the video", self.model, self.scheme)]

    def _annotate(self, source: SourceFile, frame: int, image: np.ndarray, result: Any) -> None:
        if not self.options.annotate:
            return
        import cv2

        from ..atomic import atomic_paths
        from ..draw import draw_landmarks

        stem = Path(source.path).stem + (f"_{frame:06d}" if source.kind == "video" else "")
        target = Path(self.options.annotate) / f"{stem}.jpg"
        ok, data = cv2.imencode(".jpg", draw_landmarks(image, result))
        if ok:
            with atomic_paths(target) as (tmp,):
                tmp.write_bytes(data.tobytes())

    def process(self, source: SourceFile, done_frames: set[int]) -> list[dict]:
        if source.kind in ("video", "camera"):
            return [row for rows in self.rows_for_video(source, done_frames) for row in rows]
        image, error = read_image(source)
        return self.rows_for_image(source, image, error)


def read_image(source: SourceFile) -> tuple[np.ndarray | None, str | None]:
    """(image, None) or (None, the reason it cannot be read)."""
    import cv2

    if source.size < 0:
        return None, "no such file or it cannot be read"
    data = np.fromfile(source.path, dtype=np.uint8) if source.size else np.zeros(0, np.uint8)
    if data.size == 0:
        return None, "empty file"
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return None, "cannot decode the file as an image (corrupt or not an image)"
    return image, None


def prefetched(sources: Sequence[SourceFile], depth: int = 4) -> Iterator[tuple[SourceFile, Any, Any]]:
    """(source, image, error) for photos, decoded by a background thread ``depth`` files ahead; videos
    pass through undecoded (their frames are read as they are predicted)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        for s in sources:
            if stop.is_set():
                return
            q.put((s, *read_image(s)) if s.kind == "image" else (s, None, None))  # videos: read as predicted
        q.put(None)

    thread = threading.Thread(target=produce, name="edgemark-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            yield item
    finally:
        stop.set()


# --------------------------------------------------------------------------- worker processes
_WORKER: FileProcessor | None = None


def _init_worker(options: BatchOptions, threads: int) -> None:
    global _WORKER
    _WORKER = FileProcessor(options, threads)


def _work(task: list[tuple[SourceFile, set[int]]]) -> list[list[dict]]:
    assert _WORKER is not None
    return [_WORKER.process(source, done) for source, done in task]


def run_batch(inputs: Sequence[str | Path], out: str | Path, options: BatchOptions = BatchOptions()) -> BatchSummary:
    """Predict every face of ``inputs`` into ``out`` (.jsonl, .csv or .parquet folder), resuming."""
    from tqdm import tqdm

    sources = expand_inputs(inputs, recursive=options.recursive)
    if not sources:
        raise InputError(f"no image or video found in {list(map(str, inputs))}")
    workers, threads = options.plan()
    workers = min(workers, len(sources))
    if options.annotate:
        Path(options.annotate).mkdir(parents=True, exist_ok=True)
    probe = FileProcessor(options, threads if workers == 1 else 1)
    writer = open_writer(out, probe.points)
    writer.check_model(probe.model["model_sha256"])
    done: dict[str, set[int]] = {}
    for key in writer.done:
        done.setdefault(f"{key[0]}|{key[1]}|{key[2]}", set()).add(key[3])
    summary = BatchSummary(files=len(sources), workers=workers, threads=threads)
    if any(s.kind == "camera" for s in sources) and options.max_frames is None:
        raise InputError("a camera never ends: give --max-frames N for a batch job that reads one")
    todo = [s for s in sources if not (s.kind == "image" and s.key in done)]
    for s in todo:
        if s.kind == "camera":
            done.pop(s.key, None)  # a camera's frames are new every run: nothing to resume
    summary.skipped = len(sources) - len(todo)
    bar = tqdm(total=len(sources), initial=summary.skipped, desc="photos", unit="file", disable=not options.progress,
               smoothing=0.1)
    start = time.perf_counter()

    def record(rows: list[dict], advance: bool = True) -> None:
        writer.write(rows)
        frames = {r["frame"] for r in rows}
        summary.frames += len(frames)
        summary.rows += len(rows)
        summary.faces += sum(1 for r in rows if r["status"] == "ok")
        summary.no_face += sum(1 for r in rows if r["status"] == "no_face")
        summary.errors += [(r["source"], r["error"]) for r in rows if r["status"] == "error"]
        elapsed = time.perf_counter() - start
        bar.set_postfix_str(f"{summary.faces / elapsed:.1f} faces/s" if elapsed > 0 else "")
        if advance:
            bar.update()

    try:
        if workers == 1:
            for source, image, error in prefetched(todo):
                if source.kind in ("video", "camera"):
                    for rows in probe.rows_for_video(source, done.get(source.key, set())):
                        record(rows, advance=False)  # one frame; the bar counts files
                    bar.update()
                else:
                    record(probe.rows_for_image(source, image, error))
        else:
            import multiprocessing as mp

            tasks = [[(s, done.get(s.key, set()))] for s in todo if s.kind != "image"]
            photos = [s for s in todo if s.kind == "image"]
            tasks += [[(s, set()) for s in photos[i:i + options.chunk]] for i in range(0, len(photos), options.chunk)]
            ctx = mp.get_context("spawn")  # fresh interpreters: runtimes do not survive fork
            with ctx.Pool(workers, initializer=_init_worker, initargs=(options, threads)) as pool:
                for results in pool.imap_unordered(_work, tasks):
                    for rows in results:
                        record(rows)
    finally:
        bar.close()
        writer.close()
        summary.seconds = time.perf_counter() - start
    return summary


__all__ = ["BatchOptions", "BatchSummary", "FileProcessor", "prefetched", "read_image", "run_batch",
           "usable_cores"]
