"""Command-line options shared by ``edgemark eval`` and ``edgemark bench``, read from the data layer."""
from __future__ import annotations

import argparse

import json
from typing import Any

from landmarkdata.datasets import DATASETS, DEFAULT_DATASET, LABEL_SETS, open_dataset
from sdk.atomic import write_text
from sdk.commandline import defaults_of, positive_int

DATASET_DEFAULTS = defaults_of(open_dataset)


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """--dataset/--data-root/--image-root/--labels/--limit, as ``landmarkdata.open_dataset`` takes them."""
    p.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS), help="dataset (default %(default)s)")
    p.add_argument("--data-root", help="dataset folder or annotation file (default for aflw2000-3d: the shared data, "
                                       "EDGEMARK_SHARED)")
    p.add_argument("--image-root", help="images folder of an annotation-file dataset (wflw: default the WFLW_images "
                                        "folder beside the file; coco: required)")
    p.add_argument("--labels", default=DATASET_DEFAULTS["labels"], choices=LABEL_SETS,
                   help="AFLW2000-3D label set (default %(default)s)")
    p.add_argument("--limit", type=positive_int, help="first N faces only")


def emit_report(report: dict[str, Any], out: str | None) -> int:
    """Print a benchmark's JSON report and, with ``out``, write it there atomically; exit code 0."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        write_text(out, text + "\n")
    return 0
