"""Face boxes stored beside an image: ``<image>.json`` or ``<stem>.json`` with ``{"boxes": [[x1, y1, x2, y2], ...]}``.

Lets a bundled or hand-annotated image carry its own boxes, so ``edgemark predict IMAGE``
needs neither ``--box`` nor a face detector for it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import InputError


def sidecar_path(image_path: str | Path) -> Path | None:
    """The first existing of ``<image>.json`` and ``<stem>.json``, else None."""
    p = Path(image_path)
    for candidate in (p.with_name(p.name + ".json"), p.with_suffix(".json")):
        if candidate.is_file() and candidate != p:
            return candidate
    return None


def sidecar_boxes(image_path: str | Path) -> np.ndarray | None:
    """(F, 4) float32 boxes from the image's sidecar JSON, or None when there is none.

    A same-named JSON without a ``"boxes"`` key (e.g. ``predict --json`` output) is not a
    box file and is ignored; a ``"boxes"`` entry that is malformed is an error.
    """
    path = sidecar_path(image_path)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or "boxes" not in data:
        return None
    try:
        boxes = np.asarray(data["boxes"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: \"boxes\" must be a list of [x1, y1, x2, y2]: {exc}") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise InputError(f"{path}: \"boxes\" must be a non-empty list of [x1, y1, x2, y2], got shape {boxes.shape}")
    return boxes
