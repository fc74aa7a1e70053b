"""``convert()``: a checkpoint or an ONNX file in, self-describing model files out, each verified.

Every output is written atomically, carries its metadata inside, and is compared
with the reference model (torch for checkpoints, the source ONNX otherwise) on
real face crops.
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from sdk import __version__
from sdk.backends import open_backend
from sdk.errors import EdgemarkError
from sdk.backends.base import Backend
from sdk.metadata import ModelMetadata, Provenance

from .verify import Fidelity, compare_backends, real_face_tensors

log = logging.getLogger(__name__)


class ConversionError(EdgemarkError, RuntimeError):
    """A conversion step failed; no output file of that step was written."""


@dataclass
class SourceModel:
    """What is being converted: metadata plus the torch module and/or an ONNX file."""

    name: str
    meta: ModelMetadata
    torch_module: Any = None
    onnx_path: Path | None = None
    # Per-format choices, e.g. {"tflite_converter": "onnx2tf"} (see converters.to_tflite).
    options: dict[str, Any] = field(default_factory=dict)
    _workdir: Path | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        """Folder for intermediate files, created on first use (evaluating a checkpoint needs none)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="edgemark-convert-"))
        return self._workdir

    def cleanup(self) -> None:
        """Remove the intermediate files (ONNX export, onnx2tf/litert-torch work) of this conversion."""
        import shutil

        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "SourceModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def reference_backend(self) -> Backend:
        if self.torch_module is not None:
            from .torch_backend import TorchBackend

            return TorchBackend(self.torch_module, self.meta)
        assert self.onnx_path is not None
        return open_backend(self.onnx_path, "onnxruntime", metadata=self.meta)


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


# format name -> (writer(source, out_dir, precision) -> list of written paths, file extension)
Writer = Callable[[SourceModel, Path, str], Path]
_WRITERS: dict[tuple[str, str], Writer] = {}
FILE_EXTENSIONS = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}


def register_writer(fmt: str, precision: str, writer: Writer) -> None:
    _WRITERS[(fmt, precision)] = writer


def output_path(source: SourceModel, out_dir: Path, fmt: str, precision: str) -> Path:
    return Path(out_dir) / f"{source.name}_{precision}{FILE_EXTENSIONS[fmt]}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def with_precision(meta: ModelMetadata, precision: str, **extra: Any) -> ModelMetadata:
    prov = meta.provenance
    merged = {**dict(prov.extra), **extra}
    return meta.replace(provenance=Provenance(prov.architecture, prov.source, prov.source_sha256, prov.converter,
                                              __version__, precision, merged))


def load_source(path: str | Path, *, arch: str | None = None, points: int | None = None,
                input_size: int | None = None, meanface: str | Path | None = None,
                metadata: ModelMetadata | None = None, name: str | None = None,
                options: dict[str, Any] | None = None) -> SourceModel:
    """Open a torch checkpoint (needs ``arch``) or an ONNX file (metadata embedded or given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint or model: {path}")
    digest = sha256_of(path)
    if path.suffix.lower() == ".onnx":
        return _load_onnx_source(path, metadata, name, digest)
    if arch is None:
        raise ConversionError(f"{path.name} is a torch checkpoint: say which architecture it is with --arch "
                              "(see `edgemark convert --list-archs`)")
    from .architectures import get_arch, load_meanface
    from .checkpoints import build_from_checkpoint

    opts = dict(options or {})
    module, spec = build_from_checkpoint(arch, path, num_points=points, input_size=input_size, **opts)
    size = input_size or spec.default_input_size
    mf = load_meanface(meanface) if meanface is not None else None
    n_points = getattr(module, "num_points", None) or points or spec.default_num_points
    built_with = {**getattr(module, "arch_config", {}), **opts}  # keeps what the checkpoint revealed (stride, nb)
    built_with.setdefault("num_points", n_points)
    built_with.setdefault("input_size", size)
    meta = metadata or spec.make_metadata(meanface=mf, **built_with)
    meta = meta.replace(provenance=Provenance(architecture=spec.name, source=path.name, source_sha256=digest,
                                              converter_version=__version__))
    get_arch(spec.name)  # validates the name once more for a clear error
    return SourceModel(name=name or f"{spec.name}_{size}", meta=meta.validate(), torch_module=module)


def _load_onnx_source(path: Path, metadata: ModelMetadata | None, name: str | None, digest: str) -> SourceModel:
    import onnx

    from .onnx_io import read_metadata

    try:
        proto = onnx.load(str(path))
    except Exception as exc:
        raise ConversionError(f"cannot read ONNX file {path}: {exc}") from None
    if metadata is None:
        metadata = read_metadata(proto)  # MetadataError tells the user to pass --metadata
    meta = metadata.replace(provenance=Provenance(
        architecture=metadata.provenance.architecture, source=path.name, source_sha256=digest,
        converter_version=__version__, extra=dict(metadata.provenance.extra))).validate()
    return SourceModel(name=name or _strip_precision(path.stem), meta=meta, onnx_path=path)


def _strip_precision(stem: str) -> str:
    """``h3r_128_fp32`` → ``h3r_128``, so outputs are not named ``..._fp32_fp16``."""
    for suffix in ("_fp32", "_fp16", "_int8"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def ensure_onnx(source: SourceModel, out_dir: Path | None = None) -> Path:
    """The FP32 ONNX every other format is converted from (exported once, reused)."""
    if source.onnx_path is not None and out_dir is None:
        return source.onnx_path
    from .onnx_io import embed_metadata, save_onnx
    from .to_onnx import export_onnx

    target = output_path(source, out_dir or source.workdir, "onnx", "fp32")
    meta = with_precision(source.meta, "fp32")
    if source.torch_module is not None:
        export_onnx(source.torch_module, meta, target)
    else:
        import onnx

        proto = onnx.load(str(source.onnx_path))
        save_onnx(embed_metadata(proto, meta), target)
    if source.torch_module is not None or out_dir is None:
        source.onnx_path = target
    return target


def _write_onnx_fp32(source: SourceModel, out_dir: Path, precision: str) -> Path:
    return ensure_onnx(source, out_dir)


register_writer("onnx", "fp32", _write_onnx_fp32)

from . import to_openvino, to_tflite  # noqa: E402  (their writers use the helpers above)

for _precision in to_openvino.PRECISIONS:
    register_writer("openvino", _precision, to_openvino.write_openvino)
for _precision in to_tflite.PRECISIONS:
    register_writer("tflite", _precision, to_tflite.write_tflite)


def _int8_writer(fmt: str) -> Writer:
    """INT8 under an accuracy budget (converters.int8), imported on first use: it imports this module."""

    def write(source: SourceModel, out_dir: Path, precision: str) -> Path:
        from .int8 import make_writer

        return make_writer(fmt)(source, out_dir, precision)

    return write


for _fmt in ("onnx", "openvino", "tflite"):
    register_writer(_fmt, "int8", _int8_writer(_fmt))


def convert(source: SourceModel, formats: Sequence[str], out_dir: str | Path, *, precisions: Sequence[str] = ("fp32",),
            verify: bool = True, verify_faces: int = 16, progress: Callable[[str], None] | None = None
            ) -> list[ConversionResult]:
    """Write every (format, precision) asked for; return file, size, time and fidelity for each."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(f, p) for f in formats for p in precisions]
    unknown = [j for j in jobs if j not in _WRITERS]
    if unknown:
        raise ConversionError(f"cannot write {unknown}; supported: {sorted(_WRITERS)}")
    tensors = real_face_tensors(source.meta, verify_faces) if verify else None
    reference = source.reference_backend() if verify else None
    results = []
    for fmt, precision in jobs:
        if progress:
            progress(f"{fmt} {precision}")
        start = time.perf_counter()
        path = _WRITERS[(fmt, precision)](source, out_dir, precision)
        seconds = time.perf_counter() - start
        fidelity = None
        if verify:
            fidelity = compare_backends(reference, open_backend(path), tensors)
        size = sum(p.stat().st_size for p in _files_of(path))
        results.append(ConversionResult(fmt, precision, path, size, seconds, fidelity))
    return results


def _files_of(path: Path) -> list[Path]:
    """A model's files on disk (OpenVINO keeps weights in a .bin beside the .xml)."""
    extra = path.with_suffix(".bin")
    return [path, extra] if path.suffix == ".xml" and extra.exists() else [path]


def metadata_from_json(path: str | Path) -> ModelMetadata:
    """Metadata for an ONNX-only model, from a small JSON file (full schema, or ``edgemark`` key)."""
    data = json.loads(Path(path).read_text())
    return ModelMetadata.from_dict(data.get("edgemark", data))
