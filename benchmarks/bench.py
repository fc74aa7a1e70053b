"""``edgemark bench``: latency and accuracy of every model file × runtime × precision, plus peers.

Flow: discover model files → read each one's metadata → plan what is not measured yet
(``results.json`` in ``--out`` makes runs resumable) → measure each model in a fresh
worker process (so its peak memory is its own) → merge, save ``results.json`` after
every model → write ``report.md`` and the plots.

Latency, per (threads, batch): the raw backend call on a ready batch tensor, and the
whole ``Predictor.predict`` (crop + inference + decode + mapping back) on a real image
with ``batch`` face boxes; accuracy once per model through the same Predictor.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from landmarkdata.datasets import DEFAULT_DATASET, LABEL_SETS

from .latency import current_rss_mb, measure_interleaved, peak_rss_mb
from .paths import display_path
from .report import SCHEMA_VERSION, load_results, save_results, write_report

DEFAULT_THREADS = (1, 2)
JOB_ONLY_KEYS = ("decoder_params", "checkpoint")  # what a worker needs but results.json does not keep
DEFAULT_BATCHES = (1, 4)


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (no models, conflicting results folder, ...)."""


@dataclass
class BenchConfig:
    models: list[Path]
    dataset: str = DEFAULT_DATASET
    out: Path = Path("bench-out")
    data_root: str | None = None
    image_root: str | None = None  # WFLW / COCO: images folder beside the annotation file
    labels: str = LABEL_SETS[0]
    threads: tuple[int, ...] = DEFAULT_THREADS
    batches: tuple[int, ...] = DEFAULT_BATCHES
    runs: int = 100
    warmup: int = 10
    limit: int | None = None
    peers_checkpoint: Path | None = None
    peers_arch: str | None = None
    auto_peers: bool = True
    peer_flip_test: bool = False  # torch peer also averages a mirrored pass (the authors' evaluation)
    isolate: bool = True  # one fresh process per model (per-model peak memory)
    force: bool = False
    ref_threads: int | None = None
    ref_batch: int | None = None
    pipeline: bool = False  # also time predict(image) without boxes on a 640x480 frame, stage by stage
    progress: bool = True
    landmark_peers: tuple[str, ...] = ()  # MediaPipe Face Mesh / dlib rows (the CLI's default: every one installed)

    def reference(self) -> tuple[int, int]:
        """The (threads, batch) setting the plot and the peer ratios use: 2 threads and batch 1 where measured."""
        t = self.ref_threads or (2 if 2 in self.threads else max(self.threads))
        b = self.ref_batch or (1 if 1 in self.batches else min(self.batches))
        return t, b

    def accuracy_key(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "labels": self.labels if self.dataset == "aflw2000-3d" else None,
                "limit": self.limit, "data_root": self.data_root, "image_root": self.image_root}


# --------------------------------------------------------------------------- discovery


def discover_models(paths: Sequence[str | Path]) -> list[Path]:
    """Model files named directly, and every file in named folders that an SDK backend can open."""
    from sdk.backends import backend_for_path
    from sdk.errors import ModelLoadError

    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if not f.is_file() or f.name.startswith("."):
                    continue
                try:
                    backend_for_path(f)
                except ModelLoadError:
                    continue
                found.append(f)
        elif p.is_file():
            backend_for_path(p)  # raises a clear ModelLoadError for an unknown extension
            found.append(p)
        else:
            raise FileNotFoundError(f"no such model file or folder: {p}")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        from sdk.formats import all_extensions

        raise BenchError(f"no model files ({'/'.join(all_extensions())}) found in {list(paths)}")
    return unique


def _describe_model(path: Path) -> dict[str, Any]:
    """Identity and metadata of one model file, read without measuring anything."""
    from sdk.backends import open_backend

    from .graph_stats import model_files, model_size_bytes, stats_for_model
    from .machine import backend_version

    backend = open_backend(path, threads=1)
    meta = backend.metadata
    digest = _files_digest(model_files(path))
    try:
        graph = stats_for_model(path, meta)
    except ImportError:  # the onnx package is not installed: no graph to count
        graph = None
    if graph is not None:
        graph["source"] = display_path(graph["source"])
    record = {
        "id": f"{path.stem}.{backend.name}.{digest[:12]}",
        "kind": "edgemark",
        "peer": None,
        "name": path.stem,
        "file": display_path(path),
        "files": [display_path(p) for p in model_files(path)],
        "sha256": digest,
        "size_bytes": model_size_bytes(path),
        "format": path.suffix.lower().lstrip("."),
        "runtime": backend.name,
        "runtime_version": backend_version(backend.name),
        "precision": meta.provenance.precision,
        "architecture": meta.provenance.architecture,
        "source": meta.provenance.source,
        "source_sha256": meta.provenance.source_sha256,
        "scheme": meta.scheme.name,
        "num_points": meta.scheme.num_points,
        "input_size": [meta.input.width, meta.input.height],
        "decoder": meta.decoder.name,
        "decoder_params": dict(meta.decoder.params),
        "graph": graph,
    }
    del backend
    return record


def _files_digest(files: list[Path]) -> str:
    """sha256 of a model's file, or of its files' digests together (OpenVINO .xml + .bin)."""
    from .peers import sha256_file

    if len(files) == 1:
        return sha256_file(files[0])
    import hashlib

    return hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest()


# --------------------------------------------------------------------------- planning


def _set_origins(models: list[dict[str, Any]]) -> None:
    """``origin_sha256``: the first source in a conversion chain (checkpoint → ONNX → OpenVINO gives
    the checkpoint for all three), so files converted from a converted file still find their peers."""
    by_sha = {m["sha256"]: m for m in models}
    for m in models:
        origin, seen = m["source_sha256"], {m["sha256"]}
        while origin in by_sha and origin not in seen:
            seen.add(origin)
            origin = by_sha[origin]["source_sha256"] or origin
        m["origin_sha256"] = origin or None


def _peer_records(models: list[dict[str, Any]], cfg: BenchConfig) -> list[dict[str, Any]]:
    """Torch-eager and ORT-default-argmax peers for every model group with a known checkpoint."""
    from landmarkdata.paths import shared_root
    from .peers import find_checkpoints, sha256_file

    checkpoints: dict[str, tuple[Path, str | None]] = {}
    if cfg.peers_checkpoint is not None:
        ckpt = Path(cfg.peers_checkpoint)
        if not ckpt.is_file():
            raise FileNotFoundError(f"--peers checkpoint not found: {ckpt}")
        if not cfg.peers_arch:
            raise BenchError("--peers needs --arch NAME (the checkpoint's architecture)")
        checkpoints[sha256_file(ckpt)] = (ckpt.resolve(), cfg.peers_arch)
    if cfg.auto_peers:
        wanted = {m["origin_sha256"] for m in models if m["origin_sha256"]} - set(checkpoints)
        if wanted:
            for digest, path in find_checkpoints(shared_root() / "weights").items():
                if digest in wanted:
                    checkpoints[digest] = (path.resolve(), None)
    peers = []
    for digest, (ckpt, arch) in checkpoints.items():
        group = [m for m in models if m["origin_sha256"] == digest]
        arch = arch or next((m["architecture"] for m in group), None)
        if arch is None:
            continue
        sizes = sorted({(m["input_size"][0], m["num_points"]) for m in group}) or [(None, None)]
        for size, points in sizes:
            members = [m for m in group if m["input_size"][0] == size]
            fp32 = next((m for m in members if m["format"] == "onnx" and m["precision"] == "fp32"
                         and not (m.get("decoder_params") or {}).get("in_graph")), None)  # argmax needs the maps
            like = fp32 or next((m for m in members if m["format"] == "onnx" and m["precision"] == "fp32"),
                                members[0] if members else None)
            base = {
                "peer": None, "kind": "peer", "source": ckpt.name, "source_sha256": digest, "origin_sha256": digest,
                "architecture": arch,
                "scheme": like["scheme"] if like else None, "num_points": points,
                "input_size": list(like["input_size"]) if like else None,
                "graph": like["graph"] if like else None, "precision": "fp32",
            }
            flip = ".flip" if cfg.peer_flip_test else ""
            peers.append({
                **base, "id": f"torch_eager.{arch}.{size}.{digest[:12]}{flip}", "peer": "torch_eager",
                "name": (f"{arch}_{size}" if size else arch) + " torch eager" + (" + flip" if flip else ""),
                "file": display_path(ckpt),
                "files": [display_path(ckpt)],
                "flip_test": cfg.peer_flip_test,
                "sha256": digest, "size_bytes": ckpt.stat().st_size, "format": "pytorch", "runtime": "torch",
                "runtime_version": _version("torch"), "decoder": like["decoder"] if like else None,
                "decoder_params": like["decoder_params"] if like else None, "checkpoint": str(ckpt),
            })
            if fp32 is not None:
                peers.append({
                    **base, "id": f"ort_default_argmax.{fp32['sha256'][:12]}", "peer": "ort_default_argmax",
                    "name": f"{fp32['name']} ORT default + argmax", "file": fp32["file"], "files": fp32["files"],
                    "sha256": fp32["sha256"], "size_bytes": fp32["size_bytes"], "format": "onnx",
                    "runtime": "onnxruntime", "runtime_version": _version("onnxruntime"), "decoder": "argmax",
                    "decoder_params": None,
                })
    return peers


def _version(key: str) -> str | None:
    from .machine import package_version

    return package_version(key)


def _missing_cells(record: dict[str, Any] | None, cfg: BenchConfig, detecting: bool = False) -> list[tuple[int, int]]:
    """Latency cells still to measure; a row that finds its own faces runs one frame, batch 1."""
    grid = [(t, b) for t in cfg.threads for b in ((1,) if detecting else cfg.batches)]
    if record is None or cfg.force:
        return grid
    have = {(c["threads"], c["batch"]) for c in record.get("latency", [])
            if c.get("runs") == cfg.runs and c.get("warmup") == cfg.warmup and c.get("timing") == TIMING}
    return [cell for cell in grid if cell not in have]


def _needs_accuracy(record: dict[str, Any] | None, cfg: BenchConfig) -> bool:
    if record is None or cfg.force or not record.get("accuracy"):
        return True
    acc = record["accuracy"]
    return any(acc.get(k) != v for k, v in cfg.accuracy_key().items())


# --------------------------------------------------------------------------- measuring (worker side)


def _load_dataset(settings: dict[str, Any]):
    from landmarkdata.datasets import LABEL_SETS, open_dataset

    return open_dataset(settings["dataset"], settings.get("data_root"), image_root=settings.get("image_root"),
                        labels=settings.get("labels") or LABEL_SETS[0], limit=settings.get("limit"))


def _open_predictor(job: dict[str, Any], threads: int, max_batch: int):
    from sdk.predictor import Predictor, PredictorOptions

    from .peer_rows import open_row

    row = open_row(job, threads, max_batch)
    if row is not None:
        return row
    if job["peer"] == "torch_eager":
        from .peers import torch_predictor

        return torch_predictor(job["checkpoint"], job["architecture"], input_size=(job["input_size"] or [None])[0],
                               num_points=job["num_points"], threads=threads,
                               decoder={"name": job["decoder"], "params": job["decoder_params"] or {}},
                               flip_test=bool(job.get("flip_test")),
                               max_batch=max_batch)
    if job["peer"] == "ort_default_argmax":
        from .peers import ort_default_predictor

        return ort_default_predictor(job["file"], threads, max_batch=max_batch)
    return Predictor(job["file"], options=PredictorOptions(threads=threads, max_batch=max_batch))


# How raw and predict calls are timed: in turns (benchmarks.latency.time_interleaved), with the SDK's own
# cost paired per call. Cells timed otherwise (earlier runs) are measured again.
TIMING = "interleaved+own+prepare"  # + the SDK's own cost per call (sdk_own) and, of it, prepare_faces' (sdk_prepare)


def _latency_cell(predictor, image: np.ndarray, box: np.ndarray | None, threads: int, batch: int, runs: int,
                  warmup: int) -> dict[str, Any]:
    """Raw call and whole predict on ``batch`` copies of ``box`` (``box=None``: predict(image) finds the faces)."""
    from .peer_rows import raw_and_predict

    boxes = None if box is None else np.repeat(box[None].astype(np.float32), batch, axis=0)
    cell: dict[str, Any] = {"threads": threads, "batch": batch, "runs": runs, "warmup": warmup, "timing": TIMING}
    if box is None:
        cell["frame"] = f"{image.shape[1]}x{image.shape[0]}"
    try:
        raw, full, own, prepare = raw_and_predict(predictor, image, boxes, runs, warmup)
    except Exception as exc:  # a runtime that cannot run this batch size (static shapes) is a result too
        cell["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return cell
    cell["raw"] = raw.as_dict()
    cell["predict"] = full.as_dict()
    cell["overhead_ratio"] = round(full.median_ms / raw.median_ms, 4) if raw.median_ms > 0 else None
    if own is not None:  # what predict spent outside its backend calls, call by call (benchmarks.peer_rows)
        cell["sdk_own"] = own.as_dict()
        cell["sdk_prepare"] = prepare.as_dict()  # of which: boxes → crop → tensor (sdk.preprocess.prepare_faces)
    cell["faces_per_s"] = {"raw": round(batch / raw.median_ms * 1e3, 2),
                           "predict": round(batch / full.median_ms * 1e3, 2)}
    return cell


def _unfound_as_nan(per_face, found: np.ndarray | None) -> np.ndarray:
    """Per-face NME with the photos a detecting row found no face in left out (NaN), not infinite."""
    e = np.asarray(per_face, dtype=np.float64)
    return e if found is None else np.where(found, e, np.nan)


def _accuracy(predictor, dataset, settings: dict[str, Any], progress: bool, desc: str,
              detecting: bool = False) -> dict[str, Any]:
    """NME through the row's predictor; ``detecting``: on the faces it finds itself (``peer_rows``)."""
    from landmarkdata.evaluate import predict_dataset, score_predictions
    from landmarkdata.metrics import YAW_BINS, subset_report, summary, yaw_bins

    from .peer_rows import detected_accuracy, scheme_of

    start = time.perf_counter()
    found = None
    if detecting:
        preds, found = detected_accuracy(predictor, dataset, progress, desc)
    else:
        preds = predict_dataset(predictor, dataset, progress=progress, desc=desc)
    seconds = time.perf_counter() - start
    report = score_predictions(preds, dataset, scheme_of(predictor))
    per_face = _unfound_as_nan(report.pop("per_face_nme"), found)
    out: dict[str, Any] = {k: settings.get(k) for k in ("dataset", "labels", "limit", "data_root", "image_root")}
    out.update(summary(per_face))  # count = faces scored (NaN-normaliser faces left out)
    if found is not None:
        out["found_pct"] = round(float(found.mean() * 100), 2)
        out["boxes"] = "detected by the row itself (nearest face; found = NME <= 10 %)"
    other = [k for k in LABEL_SETS if k != settings.get("labels")] if settings.get("labels") else []
    if other:  # the same predictions against the dataset's other label set
        alt = _load_dataset({**settings, "labels": other[0]})
        alt_face = _unfound_as_nan(score_predictions(preds, alt, scheme_of(predictor))["per_face_nme"], found)
        alt_summary = dict(summary(alt_face), labels=other[0])
        if alt.protocol.yaw_bins:
            alt_bins = yaw_bins(alt.yaws)
            alt_summary["subsets"] = {f"yaw {label}": summary(alt_face[alt_bins == k])
                                      for k, label in enumerate(YAW_BINS)}
        out["other_labels"] = alt_summary
    out["normaliser"] = "gt_box_sqrt_wh" if dataset.protocol.normaliser == "box" else "interocular"
    subsets: dict[str, Any] = {}
    if dataset.protocol.yaw_bins:
        bins = yaw_bins(dataset.yaws)
        subsets = {f"yaw {label}": summary(per_face[bins == k]) for k, label in enumerate(YAW_BINS)}
        out["subset_mean_nme"] = float(np.mean([subsets[f"yaw {label}"]["nme"] for label in YAW_BINS]))
    elif any(dataset.subsets):
        subsets = {k: v for k, v in subset_report(per_face, dataset.subsets).items() if k != "full"}
    out["subsets"] = subsets
    out["per_face_nme"] = [None if not np.isfinite(v) else round(float(v), 4) for v in per_face]
    out["seconds"] = round(seconds, 2)
    return out


def run_job(job: dict[str, Any], progress: bool = True,
            checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure one model (edgemark file or peer) as the job says; return the measured parts.

    ``checkpoint(result)`` is called after the latency phase, so a failure in the accuracy
    phase does not lose the timings.
    """
    from tqdm import tqdm

    settings = job["settings"]
    dataset = _load_dataset(settings)
    if len(dataset) == 0:
        raise BenchError(f"dataset {settings['dataset']} has no faces (limit={settings.get('limit')})")
    from .peer_rows import DETECTING_RULES, camera_frame, video_modes

    detecting = job.get("box_rule") in DETECTING_RULES
    image, box = (camera_frame(), None) if detecting else (dataset.load_image(0), dataset.boxes[0])
    baseline_peak, baseline_rss = peak_rss_mb(), current_rss_mb()
    cells = [tuple(c) for c in job["cells"]]
    max_batch = max([32, *[b for _, b in cells]])
    result: dict[str, Any] = {"latency": [], "load_ms": {}}
    bar = tqdm(total=len(cells), desc=f"latency {job['name']}", unit="cell", leave=False, position=1,
               disable=not progress or not cells)
    for threads in sorted({t for t, _ in cells}):
        start = time.perf_counter()
        predictor = _open_predictor(job, threads, max_batch)
        result["load_ms"][str(threads)] = round((time.perf_counter() - start) * 1e3, 2)
        for t, batch in cells:
            if t != threads:
                continue
            bar.set_postfix_str(f"threads={t} batch={batch}")
            cell = _latency_cell(predictor, image, box, t, batch, settings["runs"], settings["warmup"])
            if job.get("macs") and "raw" in cell:
                cell["gmacs_per_s"] = round(job["macs"] * batch / cell["raw"]["median_ms"] / 1e6, 3)
            result["latency"].append(cell)
            bar.update()
        if job.get("measure_video"):
            result.setdefault("video", {})[str(threads)] = video_modes(predictor, job, dataset)
        del predictor
    bar.close()
    if cells:
        result["memory"] = {
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "baseline_peak_rss_mb": round(baseline_peak, 1),
            "baseline_rss_mb": None if baseline_rss is None else round(baseline_rss, 1),
            "scope": job.get("memory_scope", "fresh process"),
        }
    if checkpoint is not None:
        checkpoint(result)
    if job["accuracy"]:
        predictor = _open_predictor(job, settings["accuracy_threads"], 32)
        result["accuracy"] = _accuracy(predictor, dataset, settings, progress, f"accuracy {job['name']}", detecting)
    return result


class WorkerError(BenchError):
    """A worker process failed; ``partial`` holds what it measured before failing."""

    def __init__(self, message: str, partial: dict[str, Any] | None):
        super().__init__(message)
        self.partial = partial


def _run_worker(job: dict[str, Any], progress: bool) -> dict[str, Any]:
    """``run_job`` in a fresh Python process; its peak memory is the model's own."""
    with tempfile.TemporaryDirectory(prefix="edgemark-bench-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "benchmarks.bench", "--worker", str(job_file), str(result_file)]
        if not progress:
            cmd.append("--quiet")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE, text=True)
        partial = json.loads(result_file.read_text()) if result_file.is_file() else None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise WorkerError(f"worker for {job['name']} failed with exit code {proc.returncode}"
                              + (f": {' | '.join(tail)}" if tail else " (see the output above)"), partial)
        if partial is None:
            raise WorkerError(f"worker for {job['name']} wrote no result", None)
        return partial


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench --worker")
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "RESULT"), required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    job = json.loads(Path(args.worker[0]).read_text())
    target = Path(args.worker[1])

    def write(result: dict[str, Any]) -> None:
        tmp = target.with_suffix(".partial")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, target)

    write(run_job(job, progress=not args.quiet, checkpoint=write))
    return 0


# --------------------------------------------------------------------------- orchestration


def _merge(record: dict[str, Any], measured: dict[str, Any]) -> None:
    by_cell = {(c["threads"], c["batch"]): c for c in record.get("latency", [])}
    for cell in measured.get("latency", []):
        by_cell[(cell["threads"], cell["batch"])] = cell
    record["latency"] = [by_cell[k] for k in sorted(by_cell)]
    if "memory" in measured:
        record["memory"] = measured["memory"]
    if measured.get("load_ms"):
        record["load_ms"] = {**record.get("load_ms", {}), **measured["load_ms"]}
    if "accuracy" in measured:
        record["accuracy"] = measured["accuracy"]
    if measured.get("video"):
        record["video"] = {**record.get("video", {}), **measured["video"]}
    record.pop("error", None)


def _settings(cfg: BenchConfig) -> dict[str, Any]:
    t, b = cfg.reference()
    return {"dataset": cfg.dataset, "data_root": cfg.data_root, "image_root": cfg.image_root,
            "labels": cfg.labels if cfg.dataset == "aflw2000-3d" else None,
            "limit": cfg.limit, "threads": list(cfg.threads), "batches": list(cfg.batches), "runs": cfg.runs,
            "warmup": cfg.warmup, "reference": {"threads": t, "batch": b}, "accuracy_threads": t,
            "isolated_processes": cfg.isolate}


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure everything ``cfg`` asks for that ``cfg.out/results.json`` does not hold yet; write the report."""
    from tqdm import tqdm

    from .machine import machine_info, runtime_versions

    if cfg.runs < 1 or cfg.warmup < 0:
        raise BenchError(f"--runs must be >= 1 and --warmup >= 0 (got {cfg.runs}, {cfg.warmup})")
    if any(t < 1 for t in cfg.threads) or any(b < 1 for b in cfg.batches):
        raise BenchError("--threads and --batch values must be positive integers")
    if cfg.limit is not None and cfg.limit < 1:
        raise BenchError(f"--limit must be >= 1, got {cfg.limit}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    data = load_results(results_path) or {"schema_version": SCHEMA_VERSION, "created": _now(), "models": []}
    records = {m["id"]: m for m in data["models"]}

    if cfg.peers_checkpoint is not None and not cfg.peers_arch:
        raise BenchError("--peers needs --arch NAME (the checkpoint's architecture)")
    settings = _settings(cfg)
    try:
        dataset = _load_dataset(settings)  # fail early (missing data, bad path) rather than once per model
    except ValueError as exc:
        raise BenchError(f"cannot load dataset {cfg.dataset!r}: {exc}") from None
    if len(dataset) == 0:
        raise BenchError(f"dataset {cfg.dataset} has no faces")
    paths = discover_models(cfg.models)
    described, skipped = [], []
    for path in tqdm(paths, desc="read models", unit="model", disable=not cfg.progress, leave=False):
        try:
            described.append(_describe_model(path))
        except Exception as exc:  # an unreadable file is reported, the others are still measured
            skipped.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
            tqdm.write(f"edgemark bench: skipping {path}: {skipped[-1]['error']}", file=sys.stderr)
    _set_origins(described)
    from sdk.predictor import MODELS_DIR

    from .landmark_peers import PEER_MODELS
    from .peer_rows import DETECTING_RULES, detector_records, landmark_peer_records

    unknown = sorted(set(cfg.landmark_peers or ()) - set(PEER_MODELS))
    if unknown:
        raise BenchError(f"unknown landmark peer(s) {unknown}; known: {', '.join(PEER_MODELS)}")
    peer_items, peer_skipped = landmark_peer_records(list(cfg.landmark_peers))
    for entry in peer_skipped:
        tqdm.write(f"edgemark bench: skipping peer {entry['file']}: {entry['error']}", file=sys.stderr)
    skipped += peer_skipped
    plan = described + _peer_records(described, cfg) + detector_records(described, MODELS_DIR) + peer_items
    data.update(schema_version=SCHEMA_VERSION, updated=_now(), machine=machine_info(), runtimes=runtime_versions(),
                settings=settings, skipped=skipped)

    planned = {(item["file"], item["peer"], item.get("box_rule")): item["id"] for item in plan}
    planned_files = {item["file"] for item in plan}
    for rid, rec in list(records.items()):
        key = (rec.get("file"), rec.get("peer"), rec.get("box_rule"))
        if planned.get(key, rid) != rid:  # same file and role under another id: it changed, drop the old
            del records[rid]
        elif key not in planned and rec.get("file") in planned_files:  # a role this run no longer gives the file
            del records[rid]
        elif rec.get("kind") == "edgemark" and rec.get("file") and not Path(rec["file"]).exists():
            del records[rid]  # its file is gone: the row would describe nothing a user can run
    bar = tqdm(total=len(plan), desc="bench", unit="model", disable=not cfg.progress, position=0)
    for item in plan:
        bar.set_postfix_str(item["name"][:40])
        old = records.get(item["id"])
        if old is not None and old.get("sha256") != item["sha256"]:
            old = None
        record = {k: v for k, v in {**(old or {}), **item}.items() if k not in JOB_ONLY_KEYS}
        cells = _missing_cells(old, cfg, detecting=item.get("box_rule") in DETECTING_RULES)
        accuracy = _needs_accuracy(old, cfg)
        if cells or accuracy:
            job = {**item, "cells": cells, "accuracy": accuracy, "settings": settings,
                   "macs": (item.get("graph") or {}).get("macs"),
                   "memory_scope": "fresh process" if cfg.isolate else "cumulative (one process for all models)"}
            try:
                measured = _run_worker(job, cfg.progress) if cfg.isolate else run_job(job, cfg.progress)
                _merge(record, measured)
            except Exception as exc:  # one broken model must not cost the others' results
                if isinstance(exc, WorkerError) and exc.partial:
                    _merge(record, exc.partial)
                record["error"] = f"{type(exc).__name__}: {exc}"
                tqdm.write(f"edgemark bench: {item['name']}: {record['error']}", file=sys.stderr)
        real_path = item.get("box_rule") == "detector" or not any(i.get("box_rule") == "detector" for i in plan)
        if cfg.pipeline and not item.get("peer") and real_path and (cfg.force or not _has_pipeline(old, cfg)):
            record["pipeline"] = _pipeline(item["file"], cfg)
        records[item["id"]] = record
        data["models"] = sorted(records.values(), key=lambda m: m["id"])
        save_results(results_path, data)  # after every model: a run that dies keeps what it measured
        bar.update()
    bar.close()
    data["int8_pairs"] = _int8_pairs(data, cfg)
    if "mediapipe_facemesh" in (cfg.landmark_peers or ()):
        data["versus_mediapipe"] = _versus_mediapipe(data, cfg, dataset)
    save_results(results_path, data)
    write_report(data, out)
    return data


def _versus_mediapipe(data: dict[str, Any], cfg: BenchConfig, dataset) -> list[dict[str, Any]]:
    """The bundled INT8 TFLite default against MediaPipe Face Mesh on the same runtime, timed in turns in one
    process: raw call and predict on the protocol box, and predict on a 640x480 frame (each its own
    detector). Rows timed in their own processes minutes apart moved by up to 1.5x between runs here."""
    from sdk.predictor import Predictor, default_model_path
    from sdk.preprocess import prepare_batch

    from .landmark_peers import FaceMeshPeer
    from .peer_rows import camera_frame

    digest = _files_digest([default_model_path("tflite")])
    old = [v for v in data.get("versus_mediapipe") or [] if v.get("runs") == cfg.runs and v.get("sha256") == digest]
    if old and not cfg.force and len(old) == len(cfg.threads):
        return old
    image, box = dataset.load_image(0), np.asarray(dataset.boxes[:1], np.float32)
    frame = camera_frame()
    out = []
    for t in cfg.threads:
        try:
            ours, mesh = Predictor(default_model_path("tflite"), threads=t), FaceMeshPeer("gt", threads=t)
            mesh_frame = FaceMeshPeer("pipeline", threads=t)  # MediaPipe's own detector + ROI rule
            meta = ours.metadata
            tensor, _ = prepare_batch(image, box, meta.input, meta.crop)
            fns = [lambda: ours.backend.run(tensor), mesh.raw_call(image, box), lambda: ours.predict(image, box),
                   lambda: mesh.predict(image, box), lambda: ours.predict(frame), lambda: mesh_frame.predict(frame)]
            stats = [s.median_ms for s in measure_interleaved(fns, cfg.runs, cfg.warmup)]
        except Exception as exc:  # the peer is not installed, or cannot run: said, not fatal
            out.append({"threads": t, "runs": cfg.runs, "sha256": digest, "error": f"{type(exc).__name__}: {exc}"})
            continue
        row = {"threads": t, "runs": cfg.runs, "sha256": digest, "edgemark": {}, "mediapipe": {}}
        for k, key in enumerate(("raw", "predict", "frame")):
            row["edgemark"][key + "_ms"] = round(stats[2 * k], 4)
            row["mediapipe"][key + "_ms"] = round(stats[2 * k + 1], 4)
        out.append(row)
    return out


def _int8_pairs(data: dict[str, Any], cfg: BenchConfig) -> list[dict[str, Any]]:
    """Each INT8 file against the FP32 file of its model and runtime, timed together in one process
    (``converters.speedup``): rows timed in separate processes minutes apart are too noisy for a ratio."""
    from tqdm import tqdm

    from converters.speedup import METHOD, measure_speedup

    rows = [m for m in data["models"] if m.get("kind") == "edgemark" and not m.get("box_rule") and m.get("file")]
    by_key = {(m["name"], m["runtime"]): m for m in rows}
    old = {(p["fp32_sha256"], p["int8_sha256"]): p for p in data.get("int8_pairs") or []
           if p.get("runs") == cfg.runs and p.get("threads") == list(cfg.threads) and p.get("method") == METHOD}
    pairs = []
    todo = [(m, by_key.get((m["name"].replace("_int8", "_fp32"), m["runtime"]))) for m in rows
            if m["precision"] == "int8" and "_int8" in m["name"]]
    for int8, fp32 in tqdm([t for t in todo if t[1] is not None], desc="INT8 vs FP32", unit="pair",
                           disable=not cfg.progress, leave=False):
        key = (fp32["sha256"], int8["sha256"])
        if key in old and not cfg.force:
            pairs.append(old[key])
            continue
        try:
            measured = measure_speedup(fp32["file"], int8["file"], threads=tuple(cfg.threads), runs=cfg.runs,
                                       warmup=cfg.warmup)
        except Exception as exc:  # a pair that cannot run is reported, the others are still measured
            measured = {"error": f"{type(exc).__name__}: {exc}"}
        pairs.append({"int8": int8["id"], "fp32": fp32["id"], "fp32_sha256": key[0], "int8_sha256": key[1],
                      "runs": cfg.runs, "threads": list(cfg.threads), **measured})
    return pairs


def _has_pipeline(record: dict[str, Any] | None, cfg: BenchConfig) -> bool:
    return bool(record) and all(str(t) in (record.get("pipeline") or {}) for t in cfg.threads)


def _pipeline(path: str, cfg: BenchConfig) -> dict[str, Any]:
    """Stage-by-stage latency of predict(image) without boxes, per thread count (benchmarks.pipeline)."""
    from sdk.predictor import Predictor

    from .pipeline import measure_pipeline

    out = {}
    for threads in cfg.threads:
        try:
            out[str(threads)] = measure_pipeline(Predictor(path, threads=threads), runs=cfg.runs, warmup=cfg.warmup)
        except Exception as exc:  # a model the detector path cannot run is a result too
            out[str(threads)] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sdk.commandline import defaults_of, positive_int

    from .options import add_dataset_arguments

    d = defaults_of(BenchConfig)
    p.add_argument("--models", nargs="+", required=True, metavar="FILE_OR_DIR",
                   help="model files, or folders (every file of a format the SDK can open: sdk.formats)")
    add_dataset_arguments(p)
    p.add_argument("--threads", nargs="+", type=positive_int, default=list(d["threads"]))
    p.add_argument("--batch", nargs="+", type=positive_int, default=list(d["batches"]), help="faces per predict call")
    p.add_argument("--runs", type=positive_int, default=d["runs"], help="timed calls per measurement (default %(default)s)")
    p.add_argument("--warmup", type=int, default=d["warmup"], help="untimed calls before timing (default %(default)s)")
    p.add_argument("--out", required=True, help="output folder (results.json there makes the run resumable)")
    p.add_argument("--peers", metavar="CHECKPOINT", help="torch checkpoint of the benchmarked models (adds peers)")
    p.add_argument("--arch", help="architecture of --peers CHECKPOINT")
    p.add_argument("--peer-flip-test", action="store_true",
                   help="torch peer also averages a horizontally flipped pass, as the authors' evaluation does")
    p.add_argument("--no-auto-peers", action="store_true",
                   help="do not look for the models' source checkpoints under the shared weights")
    p.add_argument("--ref-threads", type=positive_int, help="threads of the reference setting (default 2)")
    p.add_argument("--ref-batch", type=positive_int, help="batch of the reference setting (default 1)")
    p.add_argument("--pipeline", action="store_true",
                   help="also time predict(image) without boxes on a 640x480 frame, stage by stage (detector, crop, "
                        "inference, decoding, mapping back, re-crop); for the bundled default's files when they are "
                        "among --models, else for every file")
    p.add_argument("--landmark-peers", nargs="*", metavar="PEER",
                   help="landmarkers people pick instead, measured in the same run (default: every one installed: "
                        "mediapipe_facemesh dlib_68; none with no names)")
    p.add_argument("--in-process", action="store_true",
                   help="measure all models in this process (faster; peak memory is then cumulative)")
    p.add_argument("--force", action="store_true", help="re-measure what results.json already holds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _landmark_peers_arg(names: list[str] | None) -> tuple[str, ...]:
    """``--landmark-peers`` absent: every peer (the ones not installed are skipped and listed); given: those."""
    from .landmark_peers import PEER_MODELS

    return tuple(PEER_MODELS) if names is None else tuple(dict.fromkeys(names))


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        models=[Path(m) for m in args.models], dataset=args.dataset, out=Path(args.out), data_root=args.data_root,
        image_root=args.image_root,
        labels=args.labels, threads=tuple(dict.fromkeys(args.threads)), batches=tuple(dict.fromkeys(args.batch)),
        runs=args.runs, warmup=args.warmup, limit=args.limit,
        peers_checkpoint=Path(args.peers) if args.peers else None, peers_arch=args.arch,
        auto_peers=not args.no_auto_peers, peer_flip_test=args.peer_flip_test, isolate=not args.in_process,
        force=args.force,
        ref_threads=args.ref_threads, ref_batch=args.ref_batch, pipeline=args.pipeline, progress=not args.quiet,
        landmark_peers=_landmark_peers_arg(args.landmark_peers))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--worker" in argv:
        return worker_main(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(argv))
    data = run_bench(cfg)
    print(f"{len(data['models'])} model rows in {cfg.out / 'results.json'}; report in {cfg.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
