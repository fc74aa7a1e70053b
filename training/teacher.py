"""The pseudo-labelling teacher as a cached ONNX file (ONNX Runtime is several times faster than torch eager)."""
from __future__ import annotations

from pathlib import Path

from .pseudo_labels import cache_dir


def resolve_shared(path: str | Path) -> Path:
    """An existing path as given, else the same path under the shared data root."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    from landmarkdata.paths import shared_path

    return shared_path(p)


def teacher_onnx(checkpoint: str | Path, input_size: int = 256, arch: str = "h3r_mobilenetv2") -> Path:
    """``<cache>/teacher/<arch>_<size>_fp32.onnx`` converted once from ``checkpoint`` (or an ONNX path as is)."""
    src = resolve_shared(checkpoint)
    if src.suffix.lower() == ".onnx":
        return src
    out_dir = cache_dir() / "teacher"
    target = out_dir / f"{arch}_{input_size}_fp32.onnx"
    if target.is_file():
        return target
    from converters.api import convert, load_source

    source = load_source(src, arch=arch, input_size=input_size)
    (result,) = convert(source, ["onnx"], out_dir, verify=False)
    return result.path
