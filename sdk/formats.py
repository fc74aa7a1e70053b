"""The one table of model file formats: what every layer knows about a format, stated once.

Backends (which adapter opens a file), converters (which extension a file gets, which
precisions a writer offers), INT8 (which runtime validates a file), the benchmark (which
runtime version to report), the command line (choices) and the error messages (which extra
to install) all read this table; nothing else spells a format name or an extension.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ModelLoadError


@dataclass(frozen=True)
class ModelFormat:
    """One file format and the runtime that runs it.

    ``extensions``: the main file's suffixes (``companions``: files that must sit beside it,
    e.g. OpenVINO's ``.bin``); ``runtime``: the SDK backend's name; ``backend``: the adapter
    class in ``sdk.backends`` (``module:Class``); ``packages``: each Python module that can
    provide the runtime (the first one found is used) with the distributions that install it;
    ``extra``: the ``pip install 'edgemark[extra]'`` that brings it;
    ``thread_safe``: whether one loaded model may run from several threads at once (else the
    Predictor serialises calls); ``precisions``: what ``edgemark convert`` can write.
    """

    name: str
    extensions: tuple[str, ...]
    runtime: str
    backend: str
    packages: Mapping[str, tuple[str, ...]]
    extra: str
    thread_safe: bool
    precisions: tuple[str, ...]
    companions: tuple[str, ...] = ()

    @property
    def extension(self) -> str:
        """The suffix converters give new files of this format."""
        return self.extensions[0]

    @property
    def imports(self) -> tuple[str, ...]:
        """The Python modules that can provide this runtime, in order of preference."""
        return tuple(self.packages)

    @property
    def install_hint(self) -> str:
        return f"pip install 'edgemark[{self.extra}]'"

    def is_installed(self) -> bool:
        """Whether a module providing this runtime can be imported (checked without importing it)."""
        return any(_module_exists(m) for m in self.imports)

    def paths(self, path: str | Path) -> list[Path]:
        """Every file a model of this format consists of: the main file, then its companions."""
        path = Path(path)
        return [path, *(path.with_suffix(s) for s in self.companions)]

    def files(self, path: str | Path) -> list[Path]:
        """The model's files that exist on disk (main file first)."""
        return [p for p in self.paths(path) if p.exists()]

    def missing_runtime(self) -> ModelLoadError:
        """The error for a file of this format when its runtime is not installed."""
        return ModelLoadError(f"{self.runtime} is not installed, so {self.extension} files cannot run: "
                              f"{self.install_hint}")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


FORMATS: dict[str, ModelFormat] = {f.name: f for f in (
    ModelFormat("onnx", (".onnx",), "onnxruntime", "onnxruntime:OnnxRuntimeBackend",
                {"onnxruntime": ("onnxruntime", "onnxruntime-openvino", "onnxruntime-gpu")}, "onnx", True,
                ("fp32", "int8")),
    ModelFormat("openvino", (".xml",), "openvino", "openvino:OpenVinoBackend", {"openvino": ("openvino",)},
                "openvino", False, ("fp32", "fp16", "int8"), companions=(".bin",)),
    ModelFormat("tflite", (".tflite",), "litert", "litert:LiteRtBackend",
                {"ai_edge_litert": ("ai-edge-litert",), "tflite_runtime": ("tflite-runtime",)}, "tflite", False,
                ("fp32", "fp16", "int8")),
)}

RUNTIMES: dict[str, ModelFormat] = {f.runtime: f for f in FORMATS.values()}


def all_extensions() -> list[str]:
    return sorted(e for f in FORMATS.values() for e in f.extensions)


def format_named(name: str) -> ModelFormat:
    """The format called ``name`` ("onnx", "openvino", "tflite") or run by runtime ``name``."""
    fmt = FORMATS.get(name) or RUNTIMES.get(name)
    if fmt is None:
        raise ModelLoadError(f"unknown format or runtime {name!r}; known formats: {sorted(FORMATS)}, "
                             f"runtimes: {sorted(RUNTIMES)}")
    return fmt


def format_of(path: str | Path) -> ModelFormat:
    """The format a file's extension says it is."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.extensions:
            return fmt
    raise ModelLoadError(f"cannot tell the runtime for {path}: unknown extension {suffix!r} "
                         f"(known: {all_extensions()})")


def installed_formats() -> list[ModelFormat]:
    """Formats whose runtime is installed here, in table order."""
    return [f for f in FORMATS.values() if f.is_installed()]


__all__ = ["FORMATS", "RUNTIMES", "ModelFormat", "all_extensions", "format_named", "format_of", "installed_formats"]
