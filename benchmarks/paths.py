"""How ``results.json`` names files, so committed results carry no machine-specific prefix."""
from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | Path) -> str:
    """A path as results.json stores it: relative to the working directory when it lies inside it or
    beside it (the repository and ../shared), else absolute; committed results then carry no
    machine-specific prefix."""
    path = Path(path).resolve()
    rel = os.path.relpath(path, Path.cwd())
    return str(path) if rel.startswith(os.path.join("..", "..")) else rel
