"""Resumable row writers for JSONL, CSV and Parquet, chosen by the output's extension.

Every writer appends and makes what it wrote durable (flush + fsync) once per ``write`` call, so an
interrupted run loses at most the rows in flight. Opening an existing output repairs it first (a
row cut by a kill is removed), reads which (input, frame) pairs it already holds (``done``), and
refuses to mix rows of another model. Parquet is a folder of part files (``out.parquet/``, each
part written atomically; ``pyarrow.parquet.read_table`` reads the folder as one table).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..atomic import atomic_paths
from ..errors import InputError
from .rows import COLUMNS, done_key

OUTPUT_EXTENSIONS = (".jsonl", ".csv", ".parquet")


class RowWriter:
    """Append rows; ``done`` holds the (source, size, mtime, frame) keys already written."""

    def __init__(self, path: Path, points: int):
        self.path, self.points = Path(path), int(points)
        self.done: set[tuple[str, int, int, int]] = set()
        self.rows_found = 0
        self.model_sha256: str | None = None

    def _seen(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.done.add(done_key(row))
            self.rows_found += 1
            self.model_sha256 = self.model_sha256 or row.get("model_sha256")

    def check_model(self, sha256: str) -> None:
        if self.model_sha256 and self.model_sha256 != sha256:
            raise InputError(f"{self.path} holds rows of another model (sha256 {self.model_sha256[:12]}…); "
                             "write to a new output or remove it")

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _repair_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())


class _LineWriter(RowWriter):
    """Shared by JSONL and CSV: one text line per row, appended with one write and an fsync per batch."""

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


class JsonlWriter(_LineWriter):
    def __init__(self, path: Path, points: int):
        super().__init__(path, points)
        _repair_tail(self.path)
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                self._seen(json.loads(line) for line in f if line.strip())

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._append("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))


def csv_header(points: int) -> list[str]:
    flat = []
    for name in COLUMNS:
        if name == "box":
            flat += ["box_x1", "box_y1", "box_x2", "box_y2"]
        elif name == "landmarks":
            flat += [f"{a}{i}" for i in range(points) for a in ("x", "y")]
        elif name == "point_confidence":
            flat += [f"c{i}" for i in range(points)]
        else:
            flat.append(name)
    return flat


def _csv_cells(row: dict[str, Any], points: int) -> list[Any]:
    cells: list[Any] = []
    for name in COLUMNS:
        value = row.get(name)
        width = {"box": 4, "landmarks": 2 * points, "point_confidence": points}.get(name)
        if width is not None:
            cells += list(value) if value is not None else [""] * width
        else:
            cells.append("" if value is None else value)
    return cells


def _csv_row(cells: dict[str, str]) -> dict[str, Any]:
    """The columns ``done_key`` needs, from a CSV line."""
    return {k: cells[k] for k in ("source", "file_size", "file_mtime_ns", "frame", "model_sha256")}


class CsvWriter(_LineWriter):
    def __init__(self, path: Path, points: int):
        super().__init__(path, points)
        _repair_tail(self.path)
        self.header = csv_header(points)
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != self.header:
                    raise InputError(f"{self.path} has other columns (another model or point count); write to a "
                                     "new output or remove it")
                self._seen(_csv_row(r) for r in reader)
        else:
            self._append(self._lines([self.header]))

    @staticmethod
    def _lines(rows: list[list[Any]]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue()

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._append(self._lines([_csv_cells(r, self.points) for r in rows]))


def arrow_schema():
    import pyarrow as pa

    f32 = pa.float32()
    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": f32}
    fields = []
    for name, kind in ROW_TYPES:
        fields.append(pa.field(name, pa.list_(f32) if kind == "list" else types[kind]))
    return pa.schema(fields)


ROW_TYPES = (("source", "string"), ("frame", "int32"), ("face", "int32"), ("faces", "int32"), ("status", "string"),
             ("error", "string"), ("box", "list"), ("face_confidence", "float32"), ("detector_score", "float32"),
             ("landmarks", "list"), ("point_confidence", "list"), ("scheme", "string"), ("model", "string"),
             ("model_sha256", "string"), ("file_size", "int64"), ("file_mtime_ns", "int64"))


def rows_to_table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=arrow_schema())


class ParquetWriter(RowWriter):
    """A folder of parts; each ``write`` becomes one part, written atomically."""

    def __init__(self, path: Path, points: int):
        super().__init__(path, points)
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError("Parquet output needs pyarrow: pip install 'edgemark[parquet]'") from None
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} exists and is not a Parquet folder")
        self.path.mkdir(parents=True, exist_ok=True)
        parts = sorted(self.path.glob("part-*.parquet"))
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in parts if p.stem.split("-")[1].isdigit()), default=-1)
        for part in sorted(self.path.glob("*.parquet")):  # ours and those a Ray job wrote
            cols = pq.read_table(part, columns=["source", "file_size", "file_mtime_ns", "frame", "model_sha256"])
            self._seen(cols.to_pylist())

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow.parquet as pq

        target = self.path / f"part-{self._next:05d}.parquet"
        with atomic_paths(target) as (tmp,):
            pq.write_table(rows_to_table(rows), tmp)
        self._next += 1


def open_writer(path: str | Path, points: int) -> RowWriter:
    """The writer for ``path``'s extension (.jsonl, .csv or .parquet), resuming what it holds."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_EXTENSIONS:
        raise InputError(f"--out {path}: unknown extension {suffix or '(none)'!r}; use one of {list(OUTPUT_EXTENSIONS)}")
    if not path.parent.exists():
        raise InputError(f"--out {path}: the folder {path.parent} does not exist")
    return {".jsonl": JsonlWriter, ".csv": CsvWriter, ".parquet": ParquetWriter}[suffix](path, points)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of an output, as dicts in the JSONL form (lists for box, landmarks, point_confidence)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            points = sum(1 for h in header if h.startswith("c") and h[1:].isdigit())
            return [_from_csv(r, points) for r in reader]
    raise InputError(f"unknown output extension {suffix!r}")


def _from_csv(cells: dict[str, str], points: int) -> dict[str, Any]:
    def num(v: str, kind=float):
        return None if v == "" else kind(v)

    ints = {"frame", "face", "faces", "file_size", "file_mtime_ns"}
    floats = {"face_confidence", "detector_score"}
    row: dict[str, Any] = {}
    for name in COLUMNS:
        if name == "box":
            vals = [cells[f"box_{k}"] for k in ("x1", "y1", "x2", "y2")]
            row[name] = None if vals[0] == "" else [float(v) for v in vals]
        elif name == "landmarks":
            vals = [cells[f"{a}{i}"] for i in range(points) for a in ("x", "y")]
            row[name] = None if not vals or vals[0] == "" else [float(v) for v in vals]
        elif name == "point_confidence":
            vals = [cells[f"c{i}"] for i in range(points)]
            row[name] = None if not vals or vals[0] == "" else [float(v) for v in vals]
        elif name in ints:
            row[name] = num(cells[name], int)
        elif name in floats:
            row[name] = num(cells[name])
        else:
            row[name] = cells[name] if cells[name] != "" else None
    return row


__all__ = ["OUTPUT_EXTENSIONS", "CsvWriter", "JsonlWriter", "ParquetWriter", "RowWriter", "arrow_schema",
           "csv_header", "open_writer", "read_rows", "rows_to_table"]
