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

    Several targets (an OpenVINO .xml + .bin pair) are committed through a journal: once every
    temporary file is complete and fsynced, ``.<stem>.swap`` records the renames, then they are
    done (data first, descriptor last) and the journal removed. A kill between two renames leaves
    the journal, so the pair is still whole: ``pending_sources`` tells a reader where the newer
    files are, and the next write (or ``finish_pending_swap``) completes the renames. Temporary
    files carry the writer's process id (``.<stem>.<pid>.<random>.partial<suffix>``): those a
    killed run left behind outside a journal (its process is gone) are removed by the next write.
    """
    finals = [Path(t) for t in targets]
    for f in finals:
        f.parent.mkdir(parents=True, exist_ok=True)
        finish_pending_swap(f)
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
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
            _fsync(tmp)
        pairs = list(reversed(list(zip(temps, finals))))  # data files first, the descriptor (first target) last
        journal = _journal_path(finals[0]) if len(finals) > 1 else None
        if journal is not None:
            _write_journal(journal, pairs)
        for tmp, final in pairs:
            os.replace(tmp, final)
        if journal is not None:
            journal.unlink()
        for folder in {f.parent for f in finals}:
            _fsync(folder)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _journal_path(descriptor: Path) -> Path:
    return descriptor.with_name(f".{descriptor.stem}.swap")


def _write_journal(journal: Path, pairs: list[tuple[Path, Path]]) -> None:
    import json

    tmp = journal.with_name(journal.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([[t.name, f.name] for t, f in pairs]))
    _fsync(tmp)
    os.replace(tmp, journal)
    _fsync(journal.parent)


def _read_journal(target: Path) -> tuple[Path, list[tuple[Path, Path]]] | None:
    """The journal that names ``target`` (as any of its finals), if a committed swap is unfinished."""
    import json

    for journal in target.parent.glob(".*.swap"):
        try:
            pairs = [(target.parent / t, target.parent / f) for t, f in json.loads(journal.read_text())]
        except (OSError, ValueError, TypeError):
            continue
        if any(f.name == target.name for _, f in pairs):
            return journal, pairs
    return None


def pending_sources(*targets: str | Path) -> list[Path]:
    """For each target, the file holding its newest complete content: the committed temporary file
    of an unfinished swap (a writer killed between renames), else the target itself. Read-only."""
    out = []
    for t in map(Path, targets):
        found = _read_journal(t)
        tmp = next((tmp for tmp, f in found[1] if f.name == t.name), None) if found else None
        out.append(tmp if tmp is not None and tmp.exists() else t)
    return out


def finish_pending_swap(target: str | Path) -> bool:
    """Complete the renames of an unfinished swap that names ``target``; True when there was one."""
    found = _read_journal(Path(target))
    if found is None:
        return False
    journal, pairs = found
    for tmp, final in pairs:
        if tmp.exists():
            os.replace(tmp, final)
    journal.unlink(missing_ok=True)
    _fsync(journal.parent)
    return True


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
    journal_temps = [(t, t.name.split(".")[-2]) for t in target.parent.glob(f".{target.stem}.swap.*.tmp")]
    partials = [(t, t.name[len(target.stem) + 2:].split(".")[0])
                for t in target.parent.glob(f".{target.stem}.*.partial{target.suffix}")]
    for tmp, pid_text in journal_temps + partials:
        pid = int(pid_text) if pid_text.isdigit() else None
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
