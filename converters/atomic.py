"""Atomic outputs: a failed conversion must never leave a half-written model file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_paths(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``targets``; move them into place only if the block succeeds.

    Several targets (an OpenVINO .xml + .bin pair) are moved data-first, descriptor last,
    so a reader never sees a descriptor without its data.
    """
    finals = [Path(t) for t in targets]
    for f in finals:
        f.parent.mkdir(parents=True, exist_ok=True)
    temps = []
    for f in finals:
        fd, name = tempfile.mkstemp(prefix=f".{f.stem}.", suffix=f".partial{f.suffix}", dir=f.parent)
        os.close(fd)
        temps.append(Path(name))
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield temps
        for tmp, final in reversed(list(zip(temps, finals))):
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
            os.replace(tmp, final)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
