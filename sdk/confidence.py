"""Per-landmark and per-face confidence in [0, 1], comparable across decoders.

Decoders report raw evidence (a logit, a peak height, a cell score) whose scale depends
on how the network was trained. Each rule below turns it into "how sure is the model
that the point is where it says", using what the training loss made the output mean:

==========================  ============================================================
decoder                     point confidence
==========================  ============================================================
``h3r_topk``                softmax mass of the top-k cells: Σ_topk exp(v) / Σ_all exp(v).
                            H3R trains a spatial softmax (cross-entropy) whose target
                            mass sits on the ≤ 4 cells around the point, so this is the
                            model's own probability that the point lies in the k cells
                            the decoder averages.
``shr_local_softargmax``,   clip(peak, 0, 1): the maps regress a Gaussian of height 1 (MSE),
``argmax``,                 so the peak is ≈ 1 on a clear point and falls towards 0 when
``argmax_quarter``          the evidence is weak or spread.
``pipnet``                  clip(cell score, 0, 1): the score map regresses a one-hot cell
                            (MSE), so the winning cell's score is ≈ 1 when sure.
``regression``              1 for every point: a coordinate regressor gives no evidence;
                            ``informative(name)`` is False, so callers (the tracker) know
                            not to rely on it.
==========================  ============================================================

Face confidence = mean of its point confidences. Non-finite evidence gives confidence 0.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

PEAK_DECODERS = ("shr_local_softargmax", "argmax", "argmax_quarter")


def informative(decoder: str) -> bool:
    """Whether the decoder's confidence carries information (False for plain regression)."""
    return decoder != "regression"


def point_confidence(decoder: str, outputs: Mapping[str, np.ndarray], params: Mapping[str, Any],
                     scores: np.ndarray) -> np.ndarray:
    """(N, L) float32 in [0, 1] for decoder ``decoder`` given its outputs (by role) and scores."""
    s = np.asarray(scores, dtype=np.float64)
    if decoder == "h3r_topk":
        conf = s  # the decoder's score already is the top-k softmax mass
    elif decoder in PEAK_DECODERS or decoder == "pipnet":
        conf = np.clip(s, 0.0, 1.0)
    elif decoder == "regression":
        conf = np.ones_like(s)
    else:
        raise KeyError(f"no confidence rule for decoder {decoder!r}")
    conf = np.where(np.isfinite(conf), conf, 0.0)
    return np.clip(conf, 0.0, 1.0).astype(np.float32)


def face_confidence(point_conf: np.ndarray) -> np.ndarray:
    """(F,) mean point confidence per face (an empty face set gives an empty array)."""
    pc = np.asarray(point_conf, dtype=np.float32)
    if pc.ndim != 2:
        raise ValueError(f"point confidence must be (faces, points), got {pc.shape}")
    if pc.shape[0] == 0:
        return np.zeros(0, np.float32)
    return pc.mean(axis=1).astype(np.float32)
