"""Inference adapters, chosen by file extension or by name; runtimes are imported lazily."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ModelLoadError
from ..metadata import ModelMetadata
from .base import Backend

# name -> (module, class, file extensions)
_REGISTRY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "onnxruntime": ("onnxruntime", "OnnxRuntimeBackend", (".onnx",)),
    "openvino": ("openvino", "OpenVinoBackend", (".xml",)),
    "litert": ("litert", "LiteRtBackend", (".tflite",)),
}


def register_backend(name: str, module: str, cls: str, extensions: tuple[str, ...]) -> None:
    _REGISTRY[name] = (module, cls, extensions)


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def backend_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    for name, (_, _, exts) in _REGISTRY.items():
        if suffix in exts:
            return name
    known = sorted(e for _, _, exts in _REGISTRY.values() for e in exts)
    raise ModelLoadError(f"cannot tell the runtime for {path}: unknown extension {suffix!r} (known: {known})")


def open_backend(path: str | Path, backend: str | None = None, threads: int | None = None,
                 metadata: ModelMetadata | None = None) -> Backend:
    """Open ``path`` with the named backend, or the one its extension implies."""
    name = backend or backend_for_path(path)
    if name not in _REGISTRY:
        raise ModelLoadError(f"unknown backend {name!r}; available: {available_backends()}")
    module, cls, _ = _REGISTRY[name]
    klass = getattr(importlib.import_module(f".{module}", __name__), cls)
    return klass(path, threads=threads, metadata=metadata)


__all__ = ["Backend", "available_backends", "backend_for_path", "open_backend", "register_backend"]
