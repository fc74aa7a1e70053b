"""Where the shared (never committed) data lives.

Everything under ``shared/`` is reached through one setting, the environment
variable ``EDGEMARK_SHARED`` (default: ``<repo root>/../shared``), so that tests
and benchmarks can be pointed elsewhere and skip cleanly when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EDGEMARK_SHARED"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SharedDataMissing(FileNotFoundError):
    """A file or folder expected under the shared data root does not exist."""


def shared_root() -> Path:
    """The shared data root: ``$EDGEMARK_SHARED`` or ``<repo root>/../shared``."""
    value = os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    return REPO_ROOT.parent / "shared"


def shared_path(*parts: str | os.PathLike[str], required: bool = True) -> Path:
    """Path of ``parts`` under the shared root; raise SharedDataMissing if required and absent."""
    path = shared_root().joinpath(*parts)
    if required and not path.exists():
        current = os.environ.get(ENV_VAR)
        where = f"{ENV_VAR}={current!r}" if current else f"{ENV_VAR} is unset, so the default {shared_root()} was used"
        raise SharedDataMissing(
            f"shared data not found: {path} ({where}; set {ENV_VAR} to the folder holding the shared data)")
    return path
