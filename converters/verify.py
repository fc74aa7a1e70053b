"""Fidelity of a converted file: landmark differences against the reference on real face crops.

Real crops, not noise: on noise the heat-map peaks are flat and unstable, so tiny
numeric differences move argmaxes and the comparison says nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.backends.base import Backend
from sdk.metadata import ModelMetadata
from sdk.predictor import Predictor
from sdk.preprocess import prepare_batch, to_layout


@dataclass(frozen=True)
class Fidelity:
    max_px: float
    mean_px: float
    faces: int


def real_face_tensors(meta: ModelMetadata, count: int = 16) -> np.ndarray:
    """``count`` real faces spread over the AFLW training crops, preprocessed exactly as the Predictor does."""
    from landmarkdata.datasets import load_aflw_faces

    data = load_aflw_faces()
    picks = np.linspace(0, len(data) - 1, count).round().astype(int)
    tensors = [prepare_batch(data.load_image(int(i)), data[int(i)].box[None], meta.input, meta.crop)[0] for i in picks]
    return np.concatenate(tensors)


def compare_backends(reference: Backend, candidate: Backend, tensor: np.ndarray, batch: int = 8) -> Fidelity:
    """Decode both backends' outputs with the reference's decoder; distances in network-input pixels."""
    ref, cand = Predictor(reference), Predictor(candidate)
    a = np.concatenate([ref.infer(tensor[i:i + batch])[0] for i in range(0, len(tensor), batch)])
    b = np.concatenate([cand.infer(_as_input(cand, tensor[i:i + batch])) [0] for i in range(0, len(tensor), batch)])
    dist = np.linalg.norm(a.astype(np.float64) - b, axis=-1)
    return Fidelity(float(dist.max()), float(dist.mean()), len(tensor))


def _as_input(predictor: Predictor, tensor: np.ndarray) -> np.ndarray:
    """Reference tensors are NCHW float; a candidate may want NHWC."""
    if tensor.shape[1] == 3:
        return to_layout(tensor, "nchw", predictor.metadata.input.layout)
    return tensor
