"""What a batch job reads: images and video frames named by files, folders, globs and list files."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")
LIST_EXTENSIONS = (".txt", ".lst")


@dataclass(frozen=True)
class SourceFile:
    """One input file and what identifies its content for resuming (path, size, modification time)."""

    path: str
    kind: str  # "image", "video" or "camera" (path = the camera index)
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return f"{self.path}|{self.size}|{self.mtime_ns}"


def kind_of(path: str | Path) -> str | None:
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def _stat(path: Path, kind: str) -> SourceFile:
    try:
        st = path.stat()
        return SourceFile(str(path), kind, int(st.st_size), int(st.st_mtime_ns))
    except OSError:  # listed but unreadable: still a row, with its error, never fatal
        return SourceFile(str(path), kind, -1, -1)


def _folder(folder: Path, recursive: bool) -> Iterator[Path]:
    walk = sorted(folder.rglob("*")) if recursive else sorted(folder.iterdir())
    for p in walk:
        if p.is_file() and not p.name.startswith("."):
            yield p


def expand_inputs(inputs: Sequence[str | Path], *, recursive: bool = False) -> list[SourceFile]:
    """Every image and video named by ``inputs``: files, folders (``recursive`` into sub-folders),
    glob patterns (``photos/**/*.jpg``), list files (``.txt``/``.lst``: one path per line, relative
    to the list's folder; ``#`` starts a comment) and camera indices (``0``, ``1``, …). Inside folders and globs only files with an image or
    video extension are taken; a file named directly is taken whatever it is (it fails with its error
    if it is not an image). Duplicates are dropped, order is kept."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found: list[SourceFile] = []
    seen: set[str] = set()

    def add(path: Path, direct: bool) -> None:
        kind = kind_of(path)
        if kind is None and not direct:
            return
        key = str(path)
        if key not in seen:
            seen.add(key)
            found.append(_stat(path, kind or "image"))

    for item in inputs:
        text = str(item)
        path = Path(text)
        if any(c in text for c in "*?[") and not path.exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"the pattern {text!r} matches no file")
            for m in matches:
                if Path(m).is_file():
                    add(Path(m), direct=False)
        elif path.is_dir():
            for p in _folder(path, recursive):
                add(p, direct=False)
        elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            for p in read_list_file(path):
                add(p, direct=True)
        elif text.strip().isdigit() and not path.exists():  # a camera index, as cv2.VideoCapture takes it
            if text not in seen:
                seen.add(text)
                found.append(SourceFile(text.strip(), "camera", -1, -1))
        elif path.exists() or kind_of(path) is not None:
            add(path, direct=True)  # a missing image is a row with its error, not a failed job
        else:
            raise InputError(f"no such file, folder or pattern: {text}")
    return found


def read_list_file(path: Path) -> Iterable[Path]:
    base = path.parent
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = Path(os.path.expanduser(line))
            yield p if p.is_absolute() else base / p


__all__ = ["IMAGE_EXTENSIONS", "LIST_EXTENSIONS", "VIDEO_EXTENSIONS", "SourceFile", "expand_inputs", "kind_of",
           "read_list_file"]
