"""Photo collections and videos in bulk: inputs (files, folders, globs, lists, videos), resumable row
outputs (JSONL, CSV, Parquet), parallel on one machine (``job``) or on Ray Data (``ray_engine``)."""
from .job import BatchOptions, BatchSummary, run_batch
from .rows import COLUMNS, SCHEMA
from .sources import SourceFile, expand_inputs
from .writers import OUTPUT_EXTENSIONS, open_writer, read_rows

__all__ = ["COLUMNS", "OUTPUT_EXTENSIONS", "SCHEMA", "BatchOptions", "BatchSummary", "SourceFile", "expand_inputs",
           "open_writer", "read_rows", "run_batch"]
