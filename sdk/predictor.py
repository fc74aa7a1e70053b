"""``Predictor``: image + face boxes → landmarks in image pixels, on any supported runtime.

The data flows one way: boxes → crop rule → warp → backend → decoder → inverse warp.
Every stage is configured from the metadata inside the model file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, open_backend
from .decoders import decode
from .errors import InputError
from .metadata import ModelMetadata
from .outputs import outputs_by_role
from .preprocess import prepare_batch, to_image_coords


@dataclass(frozen=True)
class PredictorOptions:
    """How to open a model: runtime (None = from the file extension) and CPU threads (None = runtime default)."""

    backend: str | None = None
    threads: int | None = None
    max_batch: int = 32


@dataclass
class Prediction:
    """Landmarks for the faces of one image.

    ``landmarks``: float32 (faces, points, 2) in image pixels; ``scores``: float32 (faces, points),
    the decoder's evidence per point; ``boxes``: float32 (faces, 4) the face boxes used.
    """

    landmarks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    scheme: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.landmarks)


def default_model_path() -> Path:
    """The model bundled with the package, used when none is given."""
    return Path(__file__).resolve().parent / "models" / "default.onnx"


class Predictor:
    """Runtime-agnostic facial-landmark predictor.

    >>> p = Predictor("h3r_mobilenetv2_128_fp32.onnx", threads=2)
    >>> p.predict(image_bgr, [[x1, y1, x2, y2]]).landmarks.shape
    (1, 98, 2)
    """

    def __init__(self, model: str | Path | Backend | None = None, *, backend: str | None = None, threads: int | None = None,
                 metadata: ModelMetadata | None = None, options: PredictorOptions | None = None):
        opts = options or PredictorOptions(backend=backend, threads=threads)
        if model is None:
            model = default_model_path()
            if not model.is_file():
                raise FileNotFoundError(f"no model given and the bundled default {model} is missing")
        self.options = opts
        if isinstance(model, Backend):
            self.backend: Backend = model
        else:
            self.backend = open_backend(model, backend=opts.backend, threads=opts.threads, metadata=metadata)
        self.metadata: ModelMetadata = self.backend.metadata
        self.model_path = self.backend.path

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend + decoder on a ready tensor → (landmarks in input coordinates, scores)."""
        raw = self.backend.run(tensor)
        meta = self.metadata
        return decode(meta.decoder.name, outputs_by_role(meta, raw), meta.decoder.params)

    def predict(self, image: np.ndarray, boxes, *, color: str = "bgr") -> Prediction:
        """Landmarks for each face box ``[x1, y1, x2, y2]`` of an HxWx3 uint8 image (BGR unless ``color='rgb'``)."""
        if color not in ("bgr", "rgb"):
            raise InputError(f"color must be 'bgr' or 'rgb', got {color!r}")
        meta = self.metadata
        tensor, matrices = prepare_batch(image, boxes, meta.input, meta.crop, image_color=color)
        pts, scores = [], []
        for start in range(0, len(tensor), self.options.max_batch):
            p, s = self.infer(tensor[start:start + self.options.max_batch])
            pts.append(p)
            scores.append(s)
        landmarks = to_image_coords(np.concatenate(pts), matrices, meta.crop.coordinate_origin)
        return Prediction(landmarks=landmarks, scores=np.concatenate(scores).astype(np.float32),
                          boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), scheme=meta.scheme.name)
