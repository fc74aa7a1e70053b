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
Each decoder's rule is named in its entry of the decoder table (``sdk.decoders.DECODERS``),
so a new decoder cannot validate without one.
"""
from __future__ import annotations

import math

import numpy as np



def softmax_mass_confidence(scores: np.ndarray) -> np.ndarray:
    """The decoder's score already is a probability (H3R's top-k softmax mass)."""
    return np.asarray(scores, dtype=np.float32)


def clipped_confidence(scores: np.ndarray) -> np.ndarray:
    """A regressed peak or cell score whose target was 1 on the point: clipped to [0, 1] (``unit_interval``)."""
    return np.asarray(scores, dtype=np.float32)


def constant_confidence(scores: np.ndarray) -> np.ndarray:
    """No evidence at all (coordinate regression): 1 everywhere, and the decoder says it is uninformative."""
    return np.ones(np.shape(scores), dtype=np.float32)


def unit_interval(conf: np.ndarray) -> np.ndarray:
    """Non-finite confidence becomes 0; everything is clipped to [0, 1], float32 (a new array).

    Three numpy calls when every value is finite (a finite sum says so; NaN and ±inf make it
    non-finite, and a sum that merely overflowed takes the exact path too): this runs once per
    ``predict`` on a cold cache. ``np.clip`` costs ~10x more on small arrays.
    """
    conf = np.asarray(conf, dtype=np.float32)
    if not math.isfinite(float(conf.sum())):
        conf = np.where(np.isfinite(conf), conf, np.float32(0.0))
    out = np.maximum(conf, np.float32(0.0))
    return np.minimum(out, np.float32(1.0), out=out)


def face_confidence(point_conf: np.ndarray) -> np.ndarray:
    """(F,) mean point confidence per face (an empty face set gives an empty array)."""
    pc = np.asarray(point_conf, dtype=np.float32)
    if pc.ndim != 2:
        raise ValueError(f"point confidence must be (faces, points), got {pc.shape}")
    if pc.shape[0] == 0:
        return np.zeros(0, np.float32)
    return pc.sum(axis=1) / np.float32(pc.shape[1])
