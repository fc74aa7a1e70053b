"""Calibrating a model's face confidence as a face / no-face gate, on training faces only.

Each decoder's confidence rule (``sdk.confidence``) reads what its training loss made the
output mean, but how high a *real* face scores depends on the model: a PIPNet trained with
few epochs scores faces 0.2, an H3R 0.95. So every model gets its own threshold, measured on:

* **faces**: AFLW training crops (never the test set) centred in black frames twice their
  size, found by the built-in detector and re-cropped as ``predict(image)`` does — the
  confidence of each detected face (the detector's misses are its own, not counted);
* **face-free boxes**: the same frames with the face crop cut into 8×8 tiles and shuffled
  (colours, edges and skin texture kept, no face), cropped at the face's own detected box; and
  boxes moved one box width off the face (a detector firing on the shoulder or background).

The threshold minimises false rejects + false accepts among those that keep at least
``1 - max_false_reject`` of the faces; the model's confidence is *informative* when it then
rejects at least ``min_rejected`` of the face-free boxes (shuffled faces are a hard negative:
skin, eyes and edges remain). Otherwise the metadata says so and the detector's score decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdk.metadata import FaceConfidenceSpec
from sdk.predictor import Predictor, PredictorOptions

TILES = 8


@dataclass(frozen=True)
class ConfidenceSamples:
    faces: np.ndarray      # face confidence of detected real faces
    face_free: np.ndarray  # face confidence on face-free boxes
    photos: int


def in_double_frame(crop: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A face crop centred in a black frame twice its size (a detector needs context around a face),
    and the crop's offset (x, y) in it."""
    h, w = crop.shape[:2]
    frame = np.zeros((2 * h, 2 * w, 3), np.uint8)
    frame[h // 2: h // 2 + h, w // 2: w // 2 + w] = crop
    return frame, w // 2, h // 2


def _shuffled(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = crop.shape[:2]
    th, tw = h // TILES, w // TILES
    tiles = [crop[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(TILES) for c in range(TILES)]
    order = rng.permutation(len(tiles))
    out = crop.copy()
    for k, i in enumerate(order):
        r, c = divmod(k, TILES)
        out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tiles[i]
    return out


def collect_samples(model: Any, faces: Any, *, count: int = 400, seed: int = 1, threads: int | None = None,
                    progress: bool = True) -> ConfidenceSamples:
    """Face confidences on ``count`` real faces of ``faces`` (a LandmarkDataset) and on face-free boxes."""
    from tqdm import tqdm

    predictor = Predictor(model, threads=threads, options=PredictorOptions(min_face_confidence=0.0, threads=threads))
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(faces))[:count]
    pos, neg = [], []
    for i in tqdm(picks, desc="confidence", unit="face", disable=not progress, leave=False):
        crop = faces.load_image(int(i))
        frame, _, _ = in_double_frame(crop)
        found = predictor.predict(frame)
        if len(found) == 0:
            continue
        best = int(np.argmax(found.face_confidence))
        pos.append(float(found.face_confidence[best]))
        box = found.boxes[best]
        fake, _, _ = in_double_frame(_shuffled(crop, rng))
        neg.append(float(predictor.predict(fake, box[None]).face_confidence[0]))
        w = box[2] - box[0]
        side = 1 if rng.random() < 0.5 else -1
        moved = box + np.array([side * w, 0, side * w, 0], np.float32)
        h_img, w_img = frame.shape[:2]
        if moved[2] > 0 and moved[0] < w_img - 1:
            neg.append(float(predictor.predict(frame, moved[None]).face_confidence[0]))
    return ConfidenceSamples(np.array(pos), np.array(neg), len(picks))


def rates(samples: ConfidenceSamples, threshold: float) -> tuple[float, float]:
    """(false-reject rate of faces, false-accept rate of face-free boxes) at ``threshold``, in %."""
    return (100.0 * float(np.mean(samples.faces < threshold)),
            100.0 * float(np.mean(samples.face_free >= threshold)))


def choose_threshold(samples: ConfidenceSamples, max_false_reject: float = 2.0,
                     min_rejected: float = 75.0) -> FaceConfidenceSpec:
    """The gate for this model (module doc); rates in %."""
    if len(samples.faces) == 0:
        raise ValueError("no face was detected in the calibration frames: nothing to calibrate on")
    candidates = np.unique(np.floor(np.concatenate([samples.faces, samples.face_free]) * 1000) / 1000)
    scored = [(fr + fa, -t, t) for t in candidates for fr, fa in [rates(samples, float(t))] if fr <= max_false_reject]
    threshold = float(min(scored)[2]) if scored else float(candidates.min())
    fr, fa = rates(samples, threshold)
    informative = 100.0 - fa >= min_rejected
    measured = {"faces": int(len(samples.faces)), "face_free_boxes": int(len(samples.face_free)),
                "false_reject_pct": round(fr, 2), "false_accept_pct": round(fa, 2),
                "faces_median": round(float(np.median(samples.faces)), 3),
                "face_free_median": round(float(np.median(samples.face_free)), 3),
                "source": "AFLW training faces in 2x frames (BlazeFace + refine); shuffled-tile and off-face boxes",
                "rule": f"min false reject + false accept with false reject <= {max_false_reject:g} %; informative "
                        f"when it rejects >= {min_rejected:g} % of face-free boxes"}
    return FaceConfidenceSpec(informative=informative, threshold=round(threshold, 3) if informative else None,
                              measured=measured)
