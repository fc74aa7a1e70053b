"""Atomic outputs: an interrupted or failed write never leaves a half-written file under its final name.

The one write helper of the project (model files, calibration caches, reports): it lives in the
runtime layer because the runtime writes files too (``edgemark predict --json/--out``).
"""
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
    so a reader never sees a descriptor without its data. Temporary files carry the writer's
    process id (``.<stem>.<pid>.<random>.partial<suffix>``): those a killed run left behind (its
    process is gone) are removed by the next write beside them.
    """
    finals = [Path(t) for t in targets]
    for f in finals:
        f.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(f)
    temps = []
    for f in finals:
        fd, name = tempfile.mkstemp(prefix=f".{f.stem}.{os.getpid()}.", suffix=f".partial{f.suffix}", dir=f.parent)
        os.close(fd)
        temps.append(Path(name))
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield temps
        for tmp in temps:  # data on disk before any rename, so a crash cannot leave an empty final file
            _fsync(tmp)
        for tmp, final in reversed(list(zip(temps, finals))):
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
            os.replace(tmp, final)
        for folder in {f.parent for f in finals}:
            _fsync(folder)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partials(target: str | Path) -> list[Path]:
    """Delete the temporary files of ``target`` whose writing process no longer runs; return them."""
    target = Path(target)
    removed = []
    for tmp in target.parent.glob(f".{target.stem}.*.partial{target.suffix}"):
        parts = tmp.name[len(target.stem) + 2:].split(".")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is None or (pid != os.getpid() and not _alive(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems do not fsync directories
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks (the identity of a model or an input)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; ``-`` means standard output."""
    if str(path) == "-":
        print(text)
        return
    with atomic_paths(path) as (tmp,):
        tmp.write_text(text)
