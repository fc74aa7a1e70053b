"""Landmarks on frame streams: track faces from their own landmarks, detect only when needed,
and smooth the points over time with a One-Euro filter.

Per frame, each tracked face's box comes from its landmarks on the previous frame: the box
around the points is the box the landmark models were trained on (the detector's box only
gets there through its ``BoxAdapter``, and ``adapter.apply(adapter.invert(b)) == b``, so the
landmark box is used as it is; ``landmark_adapter`` covers models trained on other boxes).
No detector is needed while the face is followed. The detector runs again every ``redetect_every`` frames
(to pick up new faces) and as soon as a face's confidence falls below ``min_confidence``
(the crop has slipped off the face). A detection whose landmarks come out below
``min_confidence`` is dropped: the landmark model doubles as a false-positive filter.

One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): an exponential smoother whose cutoff
frequency rises with speed — steady points are smoothed hard (no jitter), moving points
lightly (little lag). Per point, with sampling interval Δt:

    α(f) = 1 / (1 + 1 / (2π f Δt))
    v    = low-pass_{α(d_cutoff)}((x − x̂_prev) / Δt)            (smoothed velocity)
    f_c  = min_cutoff + beta · |v| / face_size
    x̂    = low-pass_{α(f_c)}(x)

Speed is divided by the face size (√ of the landmark box area), so ``beta`` is in
"face sizes per second" and one setting works for near and far faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .boxes import iou
from .decoders import DECODERS
from .detection import IDENTITY_ADAPTER, BoxAdapter, FaceDetector, box_adapter_of, landmark_box
from .predictor import Prediction, Predictor
from .errors import InputError
from .preprocess import validate_image


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` (Hz): smoothing of still points (lower = smoother, more lag at rest);
    ``beta``: how fast the cutoff rises with speed, per face size per second (higher = less lag
    when moving); ``d_cutoff`` (Hz): smoothing of the speed estimate itself.

    Defaults chosen on benchmarks/video_bench.py (H3R-128, 30 fps): on a still, noisy face they
    cut frame-to-frame jitter 5.7× (0.257 → 0.045 % of the face size) while costing 0.05 NME
    points on a face moving at up to ~1 face size per second (4.645 → 4.693 %)."""

    min_cutoff: float = 0.5
    beta: float = 20.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One-Euro parameters need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {self}")


def _timestamp(value: object) -> float:
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"timestamp must be a number of seconds, got {value!r}") from None
    if not np.isfinite(t):
        raise InputError(f"timestamp must be finite, got {t}")
    return t


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64) * dt))


class OneEuroFilter:
    """One-Euro filter over (L, 2) point sets (one adaptive cutoff per point)."""

    def __init__(self, params: OneEuroParams = OneEuroParams()):
        self.params = params
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """Filtered copy of ``x`` (L, 2) observed at time ``t`` seconds; ``scale`` divides the speed."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.astype(np.float32)
        p = self.params
        dt = float(t) - self._t
        dx = (x - self._x) / dt
        a_d = _alpha(p.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(float(scale), 1e-6)
        a = _alpha(p.min_cutoff + p.beta * speed, dt)
        self._x = a * x + (1 - a) * self._x
        self._t = float(t)
        return self._x.astype(np.float32)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    filter: OneEuroFilter
    lost: bool = False
    age: int = 0
    meta: dict = field(default_factory=dict)


class LandmarkTracker:
    """Stateful landmark tracking over a frame stream.

    >>> tracker = LandmarkTracker(Predictor("model.onnx"), redetect_every=30, min_confidence=0.3)
    >>> for frame in frames:
    ...     result = tracker.update(frame)      # a Prediction; extra["track_ids"], extra["detected"]

    ``detector``: None = the predictor's. ``landmark_adapter`` maps the landmark box onto the
    model's box convention (identity for models trained on landmark boxes, as the AFLW
    protocol and the bundled models are). ``max_faces`` caps the faces followed (largest first).
    ``fps`` gives the time step when ``update`` gets no timestamp.
    """

    def __init__(self, predictor: Predictor, detector: FaceDetector | None = None, *, redetect_every: int = 30,
                 min_confidence: float = 0.5, one_euro: OneEuroParams | None = OneEuroParams(),
                 landmark_adapter: BoxAdapter = IDENTITY_ADAPTER, max_faces: int = 8, fps: float = 30.0,
                 match_iou: float = 0.3):
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if fps <= 0 or max_faces < 1:
            raise ValueError("fps must be positive and max_faces >= 1")
        self.predictor = predictor
        self.detector = detector
        self.redetect_every = int(redetect_every)
        self.min_confidence = float(min_confidence)
        self.one_euro = one_euro
        self.landmark_adapter = landmark_adapter
        self.max_faces = int(max_faces)
        self.fps = float(fps)
        self.match_iou = float(match_iou)
        meta = predictor.metadata
        self._to68 = meta.scheme.to68
        self._informative = DECODERS[meta.decoder.name].informative
        self.reset()

    def reset(self) -> None:
        """Forget every track (e.g. at a scene cut)."""
        self._tracks: list[_Track] = []
        self._frame = 0
        self._since_detect = 0
        self._next_id = 0
        self.detections_run = 0
        self._last_t: float | None = None
        self._frame_shape: tuple[int, int] | None = None

    @property
    def tracks(self) -> int:
        return len(self._tracks)

    def _detect(self, frame: np.ndarray) -> np.ndarray:
        self.detections_run += 1
        if self.detector is None:
            boxes, _, scores = self.predictor.detect_faces(frame)
        else:
            raw, scores = self.detector.detect(frame)
            boxes = box_adapter_of(self.detector).apply(np.asarray(raw, np.float32).reshape(-1, 4))
        return boxes

    def _merge_detections(self, boxes: np.ndarray) -> None:
        """Detections that overlap a track re-seed lost tracks; the others start new tracks."""
        current = np.array([t.box for t in self._tracks], np.float32).reshape(-1, 4)
        used = set()
        if len(current) and len(boxes):
            overlap = iou(boxes, current)
            for d in np.argsort(-overlap.max(axis=1)):
                t = int(np.argmax(overlap[d]))
                if overlap[d, t] >= self.match_iou and t not in used:
                    used.add(t)
                    if self._tracks[t].lost:  # the crop slipped: restart from the detector's box
                        self._tracks[t].box = boxes[d]
                        self._tracks[t].lost = False
                        self._tracks[t].meta["fresh"] = True
                    boxes[d] = np.nan  # consumed
        self._tracks = [t for i, t in enumerate(self._tracks) if i in used or not t.lost]
        for b in boxes:
            if np.isfinite(b).all() and len(self._tracks) < self.max_faces:
                filt = OneEuroFilter(self.one_euro) if self.one_euro is not None else None
                self._tracks.append(_Track(self._next_id, b.astype(np.float32), filt, meta={"fresh": True}))
                self._next_id += 1

    def update(self, frame: np.ndarray, timestamp: float | None = None) -> Prediction:
        """Landmarks for this frame (smoothed); ``timestamp`` in seconds (default: frame / fps)."""
        validate_image(frame)
        t = self._frame / self.fps if timestamp is None else _timestamp(timestamp)
        if self._last_t is not None and not t > self._last_t:
            raise InputError(f"timestamps must increase: {t} s after {self._last_t} s (call reset() at a cut, or "
                             "pass no timestamp to use frame / fps)")
        h, w = frame.shape[:2]
        if self._frame_shape is not None and self._frame_shape != (h, w):  # another stream or a resize:
            self._tracks = []  # old boxes mean nothing here, so detect on this very frame
        self._frame_shape, self._last_t = (h, w), t
        self._frame += 1
        # a face that left the picture ends its track
        self._tracks = [tr for tr in self._tracks
                        if tr.box[2] >= 0 and tr.box[3] >= 0 and tr.box[0] <= w - 1 and tr.box[1] <= h - 1]
        need = (not self._tracks or any(tr.lost for tr in self._tracks)
                or self._since_detect >= self.redetect_every - 1)
        detected = False
        if need:
            self._merge_detections(self._detect(frame))
            self._since_detect = 0
            detected = True
        else:
            self._since_detect += 1
        if not self._tracks:
            return self.predictor.empty_prediction({"track_ids": [], "detected": detected, "frame": self._frame - 1})
        boxes = np.stack([tr.box for tr in self._tracks])
        pred = self.predictor.predict(frame, boxes)
        conf = pred.face_confidence
        keep, out_pts = [], []
        for i, tr in enumerate(self._tracks):
            fresh = tr.meta.pop("fresh", False)
            low = self._informative and conf[i] < self.min_confidence
            if low and fresh:  # a detection the landmark model does not believe: drop it
                continue
            tr.lost = bool(low)
            new_box = self.landmark_adapter.apply(landmark_box(pred.landmarks[i], self._to68))[0]
            if (new_box[2] - new_box[0]) >= 4 and (new_box[3] - new_box[1]) >= 4:
                tr.box = new_box
            else:
                tr.lost = True
            size = float(np.sqrt(max((new_box[2] - new_box[0]) * (new_box[3] - new_box[1]), 1.0)))
            pts = pred.landmarks[i] if tr.filter is None else tr.filter(pred.landmarks[i], t, scale=size)
            tr.age += 1
            keep.append(i)
            out_pts.append(pts)
        kept_ids = {id(self._tracks[i]) for i in keep}
        self._tracks = [tr for tr in self._tracks if id(tr) in kept_ids]
        if not keep:
            return self.predictor.empty_prediction({"track_ids": [], "detected": detected, "frame": self._frame - 1})
        idx = np.array(keep)
        return Prediction(
            landmarks=np.stack(out_pts).astype(np.float32), scores=pred.scores[idx], boxes=pred.boxes[idx],
            scheme=pred.scheme, point_confidence=pred.point_confidence[idx], face_confidence=conf[idx],
            extra={"track_ids": [self._tracks[k].track_id for k in range(len(keep))], "detected": detected,
                   "frame": self._frame - 1, "raw_landmarks": pred.landmarks[idx]})
