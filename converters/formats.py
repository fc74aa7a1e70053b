"""One writer object per model format, registered in one place (``WRITERS``).

Each writer answers the same small interface: which precisions it writes (from the format
table, ``sdk.formats``), how to write an FP32/FP16 file, how to quantize (an INT8 quantizer
for the budget search in ``converters.int8.search``) and how to restamp the metadata of a
file it wrote. ``converters.api.convert`` and the INT8 search only ever talk to this
interface, so a new format is one class here plus its writer module, and no ladder of
``if fmt == ...`` exists anywhere else. Runtimes and toolchains are imported lazily inside
the methods: importing this module costs nothing.
"""
from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sdk.formats import FORMATS, ModelFormat
from sdk.metadata import ModelMetadata

from .source import ConversionError, SourceModel, ensure_onnx, output_path


class Int8Quantizer(Protocol):
    """One format's INT8 toolchain, prepared once per conversion and asked for one file per recipe."""

    def quantize(self, recipe: Any, target: Path) -> tuple[Path, dict, ModelMetadata]:
        """Write ``target`` quantized with ``recipe``; return (path, recipe details, embedded metadata)."""

    def max_level(self) -> int:
        """The largest float level (``converters.int8.scope``) this graph has."""


class FormatWriter(ABC):
    """Writes, quantizes and restamps the files of one format."""

    format: ModelFormat
    int8_io: bool = False  # whether INT8 files can also take and return quantized tensors

    @property
    def name(self) -> str:
        return self.format.name

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.format.precisions

    def write(self, source: SourceModel, out_dir: Path, precision: str) -> Path:
        """Write ``<name>_<precision><ext>``; INT8 goes through the accuracy-budget search."""
        if precision not in self.precisions:
            raise ConversionError(f"{self.name} files can be written as {list(self.precisions)}, not {precision!r}")
        if precision == "int8":
            from .int8.search import Int8Options, int8_tag, quantize_with_budget

            options = source.options.get("int8") or Int8Options()
            target = output_path(source, out_dir, self.name, int8_tag(options))
            return quantize_with_budget(source, self, target, options).path
        return self.write_float(source, Path(out_dir), precision)

    @abstractmethod
    def write_float(self, source: SourceModel, out_dir: Path, precision: str) -> Path:
        """FP32 (and FP16 where the format has it) from the source's FP32 ONNX."""

    @abstractmethod
    def int8_quantizer(self, source: SourceModel, fp32_onnx: Path, calibration: np.ndarray, meta: ModelMetadata,
                       workdir: Path) -> Int8Quantizer:
        """This format's INT8 toolchain for one conversion (calibration tensors in the model's own layout)."""

    @abstractmethod
    def restamp(self, path: Path, meta: ModelMetadata) -> None:
        """Replace the edgemark metadata of a file of this format in place (weights untouched)."""

    def copy(self, path: Path, out_path: Path) -> None:
        """Copy a model with all its files (main file last, so a reader never sees it without its data)."""
        for src, dst in reversed(list(zip(self.format.paths(path), self.format.paths(out_path)))):
            shutil.copyfile(src, dst)


class OnnxWriter(FormatWriter):
    format = FORMATS["onnx"]

    def write_float(self, source: SourceModel, out_dir: Path, precision: str) -> Path:
        return ensure_onnx(source, out_dir)

    def int8_quantizer(self, source, fp32_onnx, calibration, meta, workdir):
        from .int8.ort import OrtQuantizer

        return OrtQuantizer(fp32_onnx, calibration, meta, workdir=workdir)

    def restamp(self, path: Path, meta: ModelMetadata) -> None:
        import onnx

        from .onnx_io import embed_metadata, save_onnx

        save_onnx(embed_metadata(onnx.load(str(path)), meta), path)


class OpenVinoWriter(FormatWriter):
    format = FORMATS["openvino"]

    def write_float(self, source: SourceModel, out_dir: Path, precision: str) -> Path:
        from .to_openvino import write_openvino

        return write_openvino(source, out_dir, precision)

    def int8_quantizer(self, source, fp32_onnx, calibration, meta, workdir):
        from .int8.openvino import OpenVinoQuantizer

        return OpenVinoQuantizer(fp32_onnx, calibration, meta)

    def restamp(self, path: Path, meta: ModelMetadata) -> None:
        from .to_openvino import restamp_openvino

        restamp_openvino(path, meta)


class TfliteWriter(FormatWriter):
    format = FORMATS["tflite"]
    int8_io = True

    def write_float(self, source: SourceModel, out_dir: Path, precision: str) -> Path:
        from .to_tflite import write_tflite

        return write_tflite(source, out_dir, precision)

    def int8_quantizer(self, source, fp32_onnx, calibration, meta, workdir):
        from .int8.tflite import TfliteQuantizer

        return TfliteQuantizer(source, fp32_onnx, calibration, meta, workdir=workdir)

    def restamp(self, path: Path, meta: ModelMetadata) -> None:
        from .to_tflite import restamp_tflite

        restamp_tflite(path, meta)


WRITERS: dict[str, FormatWriter] = {w.name: w for w in (OnnxWriter(), OpenVinoWriter(), TfliteWriter())}


def writer_for(fmt: str) -> FormatWriter:
    try:
        return WRITERS[fmt]
    except KeyError:
        raise ConversionError(f"no writer for format {fmt!r}; formats: {sorted(WRITERS)}") from None


def writer_of(path: str | Path) -> FormatWriter:
    """The writer of the format a file's extension says it is."""
    from sdk.formats import format_of

    return WRITERS[format_of(path).name]


__all__ = ["WRITERS", "FormatWriter", "Int8Quantizer", "OnnxWriter", "OpenVinoWriter", "TfliteWriter", "writer_for",
           "writer_of"]
