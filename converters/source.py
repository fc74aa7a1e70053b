"""The model being converted: a torch checkpoint or an ONNX file, its metadata, and the FP32 ONNX
that every other format is converted from. Imported by every format writer; imports none of them."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk import __version__
from sdk.atomic import sha256_file
from sdk.backends import open_backend
from sdk.backends.base import Backend
from sdk.errors import EdgemarkError
from sdk.formats import FORMATS
from sdk.metadata import ModelMetadata, Provenance


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


def output_path(source: SourceModel, out_dir: Path, fmt: str, tag: str) -> Path:
    """``<out_dir>/<name>_<tag><extension of fmt>`` (tag: the precision, e.g. ``fp16`` or ``int8_naive``)."""
    return Path(out_dir) / f"{source.name}_{tag}{FORMATS[fmt].extension}"


sha256_of = sha256_file  # the converters' name for the one sha256 helper (sdk.atomic)


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


def metadata_from_json(path: str | Path) -> ModelMetadata:
    """Metadata for an ONNX-only model, from a small JSON file (full schema, or ``edgemark`` key)."""
    data = json.loads(Path(path).read_text())
    return ModelMetadata.from_dict(data.get("edgemark", data))
