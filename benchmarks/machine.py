"""What a benchmark ran on: CPU, instruction-set extensions, memory and runtime versions.

Latency numbers mean little without the machine: INT8 speed-ups depend on VNNI/AMX
(x86) or dot-product/i8mm (ARM), and every runtime release changes kernels. Versions
are read from package metadata, so recording them imports no runtime (not even torch).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from sdk.formats import FORMATS

# ISA extensions that change inference speed, as named in /proc/cpuinfo (x86 "flags", ARM "Features").
ISA_FLAGS: tuple[str, ...] = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
    "neon", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2",
)

# name in results -> distributions to try, first installed wins (the runtimes' from the format table)
RUNTIME_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "python": (),
    "edgemark": ("edgemark",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless"),
    **{module: dists for fmt in FORMATS.values() for module, dists in fmt.packages.items()},
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "torch": ("torch",),
    "onnx": ("onnx",),
}

# runtime name (sdk.formats) -> keys of RUNTIME_DISTRIBUTIONS holding its version, first installed wins
BACKEND_RUNTIME: dict[str, tuple[str, ...]] = {**{f.runtime: f.imports for f in FORMATS.values()}, "torch": ("torch",)}


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _cpu_flags(cpuinfo: str) -> list[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return [f for f in ISA_FLAGS if f in present]
    if platform.machine().lower() in ("arm64", "aarch64"):
        return ["neon"]  # every AArch64 core has Advanced SIMD; finer detail needs /proc/cpuinfo
    return []


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def _memory_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 1e9, 2)
    except ImportError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, ISA flags, memory, OS and the load when measured."""
    cpuinfo = _read_cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on macOS/Windows
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": _cpu_model(cpuinfo),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": usable,
        "isa": _cpu_flags(cpuinfo),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "load_average": load,
    }


def package_version(key: str) -> str | None:
    """Installed version for a RUNTIME_DISTRIBUTIONS key, without importing the package."""
    if key == "python":
        return platform.python_version()
    for dist in RUNTIME_DISTRIBUTIONS.get(key, (key,)):
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return None


def runtime_versions() -> dict[str, str | None]:
    """Versions of Python and of every runtime/library the results can depend on (None: not installed)."""
    return {key: package_version(key) for key in RUNTIME_DISTRIBUTIONS}


def backend_version(backend_name: str) -> str | None:
    """Version of the runtime behind an SDK backend name."""
    for key in BACKEND_RUNTIME.get(backend_name, (backend_name,)):
        version = package_version(key)
        if version:
            return version
    return None
