"""Where the shared (never committed) data lives.

Everything under ``shared/`` is reached through one setting, the environment
variable ``EDGEMARK_SHARED``. Unset, it defaults to the ``shared`` folder beside the
working directory or beside one of its parents (a checkout with ``../shared`` beside it,
run from anywhere inside it) — never to a place derived from where the package is
installed, so an installed edgemark finds the data the same way a checkout does.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EDGEMARK_SHARED"


class SharedDataMissing(FileNotFoundError):
    """A file or folder expected under the shared data root does not exist."""


def shared_root() -> Path:
    """The shared data root: ``$EDGEMARK_SHARED``, else the nearest ``shared/`` beside the working
    directory or one of its parents (``<cwd>/../shared`` when there is none, for the error message)."""
    value = os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        candidate = folder.parent / "shared"
        if candidate.is_dir() and folder.parent != folder:
            return candidate
    return cwd.parent / "shared"


def shared_path(*parts: str | os.PathLike[str], required: bool = True) -> Path:
    """Path of ``parts`` under the shared root; raise SharedDataMissing if required and absent."""
    path = shared_root().joinpath(*parts)
    if required and not path.exists():
        current = os.environ.get(ENV_VAR)
        where = f"{ENV_VAR}={current!r}" if current else f"{ENV_VAR} is unset, so the default {shared_root()} was used"
        raise SharedDataMissing(
            f"shared data not found: {path} ({where}; set {ENV_VAR} to the folder holding the shared data)")
    return path
