"""``convert()``: a checkpoint or an ONNX file in, self-describing model files out, each verified.

Every output is written atomically by its format's writer (``converters.formats``), carries
its metadata inside, and is compared with the reference model (torch for checkpoints, the
source ONNX otherwise) on real face crops.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from sdk.backends import open_backend
from sdk.formats import format_of
from sdk.metadata import ModelMetadata

from .formats import WRITERS, writer_for
from .source import (ConversionError, SourceModel, ensure_onnx, load_source, metadata_from_json, output_path,
                     sha256_of, with_precision)
from .verify import Fidelity, compare_backends, real_face_tensors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionResult:
    format: str
    precision: str
    path: Path
    size_bytes: int
    seconds: float
    fidelity: Fidelity | None

    def as_row(self) -> dict[str, Any]:
        row = {"format": self.format, "precision": self.precision, "file": str(self.path),
               "size_mb": round(self.size_bytes / 1e6, 3), "seconds": round(self.seconds, 2)}
        if self.fidelity is not None:
            row.update(max_diff_px=float(f"{self.fidelity.max_px:.3g}"), mean_diff_px=float(f"{self.fidelity.mean_px:.3g}"))
        return row


def supported_jobs() -> list[tuple[str, str]]:
    """Every (format, precision) ``convert`` can write."""
    return [(name, p) for name, w in WRITERS.items() for p in w.precisions]


def convert(source: SourceModel, formats: Sequence[str], out_dir: str | Path, *, precisions: Sequence[str] = ("fp32",),
            verify: bool = True, verify_faces: int = 16, progress: Callable[[str], None] | None = None
            ) -> list[ConversionResult]:
    """Write every (format, precision) asked for; return file, size, time and fidelity for each."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(f, p) for f in formats for p in precisions]
    unknown = [j for j in jobs if j not in supported_jobs()]
    if unknown:
        raise ConversionError(f"cannot write {unknown}; supported: {supported_jobs()}")
    tensors = real_face_tensors(source.meta, verify_faces) if verify else None
    reference = source.reference_backend() if verify else None
    results = []
    for fmt, precision in jobs:
        if progress:
            progress(f"{fmt} {precision}")
        start = time.perf_counter()
        path = writer_for(fmt).write(source, out_dir, precision)
        seconds = time.perf_counter() - start
        fidelity = None
        if verify:
            fidelity = compare_backends(reference, open_backend(path), tensors)
        size = sum(p.stat().st_size for p in format_of(path).files(path))
        results.append(ConversionResult(fmt, precision, path, size, seconds, fidelity))
    return results


__all__ = ["ConversionError", "ConversionResult", "SourceModel", "convert", "ensure_onnx", "load_source",
           "metadata_from_json", "output_path", "sha256_of", "supported_jobs", "with_precision"]


def upgrade_metadata(path: str | Path) -> ModelMetadata:
    """Rewrite a model file's metadata in the current schema, in place (weights untouched).

    Reading already upgrades older schemas in memory (``sdk.metadata.upgrade_metadata_dict``);
    this makes the file itself current, so tools that read the raw JSON see schema 2 too.
    """
    path = Path(path)
    return restamp(path, open_backend(path).metadata)


def restamp(path: Path, meta: ModelMetadata) -> ModelMetadata:
    """Replace a file's metadata in place, whatever its format (weights untouched)."""
    writer_for(format_of(path).name).restamp(path, meta)
    return meta


def calibrate_face_confidence(path: str | Path, *, count: int = 400, seed: int = 1,
                              progress: bool = True) -> ModelMetadata:
    """Measure the file's face confidence on training faces vs face-free boxes and store the gate
    in its metadata (``face_confidence``), in place (``calibration.confidence``)."""
    from calibration.confidence import choose_threshold, collect_samples
    from landmarkdata.datasets import load_aflw_faces

    path = Path(path)
    samples = collect_samples(path, load_aflw_faces(), count=count, seed=seed, progress=progress)
    return restamp(path, open_backend(path).metadata.replace(face_confidence=choose_threshold(samples)))
