"""Inference adapters, chosen by file extension or by runtime name from the format table
(``sdk.formats``); runtimes are imported only when a file of theirs is opened."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ModelLoadError
from ..formats import FORMATS, RUNTIMES, format_of
from ..metadata import ModelMetadata
from .base import Backend


FORMATS_BY_SUFFIX = {e: f for f in FORMATS.values() for e in f.extensions}


def available_backends() -> list[str]:
    """Runtime names an adapter exists for (installed or not)."""
    return sorted(RUNTIMES)


def backend_for_path(path: str | Path) -> str:
    """The runtime that runs ``path``, from its extension."""
    return format_of(path).runtime


def open_backend(path: str | Path, backend: str | None = None, threads: int | None = None,
                 metadata: ModelMetadata | None = None, *, raw: bool = False) -> Backend:
    """Open ``path`` with the named runtime, or the one its extension implies (``raw``: a network
    without edgemark metadata, see ``Backend``)."""
    if backend is not None and backend not in RUNTIMES:
        raise ModelLoadError(f"unknown backend {backend!r}; available: {available_backends()}")
    fmt = RUNTIMES[backend] if backend is not None else format_of(path)
    if backend is not None and Path(path).suffix.lower() in FORMATS_BY_SUFFIX and \
            FORMATS_BY_SUFFIX[Path(path).suffix.lower()] is not fmt:
        other = FORMATS_BY_SUFFIX[Path(path).suffix.lower()]
        raise ModelLoadError(f"backend {backend!r} runs {'/'.join(fmt.extensions)} files; {Path(path).name} is in the "
                             f"{other.name} format (run it with backend={other.runtime!r}, or convert it with "
                             f"`edgemark convert ... --to {fmt.name}`)")
    module, cls = fmt.backend.split(":")
    klass = getattr(importlib.import_module(f".{module}", __name__), cls)
    return klass(path, threads=threads, metadata=metadata, raw=raw)


__all__ = ["FORMATS", "Backend", "available_backends", "backend_for_path", "open_backend"]
