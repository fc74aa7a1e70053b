"""``Predictor``: image + face boxes → landmarks in image pixels, on any supported runtime.

The data flows one way: boxes → crop rule → warp → backend → decoder → inverse warp.
Every stage is configured from the metadata inside the model file. Without boxes, a face
detector finds them first (its boxes mapped onto the model's box convention by its
``BoxAdapter``). Each point also gets a confidence in [0, 1] (``sdk.confidence``).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import Backend, open_backend
from .boxes import unmirror_points
from .confidence import face_confidence
from .decoders import DECODERS, MAPPED_ROLES, decode, point_confidence
from .errors import EdgemarkError, InputError, ModelLoadError
from .metadata import ModelMetadata
from .outputs import outputs_by_role
from .preprocess import Scratch, image_maps, prepare_faces, to_image_coords, validate_image

if TYPE_CHECKING:
    from .detection import FaceDetector

@dataclass(frozen=True)
class PredictorOptions:
    """How to open and run a model: runtime (None = from the file extension), CPU threads (None =
    runtime default), faces per backend call, flip-test averaging (accuracy mode, 2× the work),
    the face detector used when ``predict`` gets no boxes (None = the built-in BlazeFace) and how
    many times detected faces are re-cropped from their own landmarks (``refine``: the box
    around the first pass's landmarks is the box the models were trained on, so one extra pass
    removes most of the detector's misplacement; 0 = off) and the face confidence below which a
    *detected* face is dropped as a false detection (``min_face_confidence``; None = the threshold
    calibrated into the model's metadata, else 0.5; a model whose confidence is not informative
    leaves the decision to the detector's score; given boxes are never dropped)."""

    backend: str | None = None
    threads: int | None = None
    max_batch: int = 32
    flip_test: bool = False
    detector: "FaceDetector | None" = None
    refine: int = 1
    min_face_confidence: float | None = None


DEFAULT_FACE_CONFIDENCE = 0.5


@dataclass
class Prediction:
    """Landmarks for the faces of one image.

    ``landmarks``: float32 (faces, points, 2) in image pixels; ``scores``: float32 (faces, points),
    the decoder's evidence per point; ``boxes``: float32 (faces, 4) the face boxes used (given,
    or detected and adapted to the model's box convention); ``point_confidence`` (faces, points)
    and ``face_confidence`` (faces,) in [0, 1] (see ``sdk.confidence``). When a detector ran,
    ``extra`` holds its raw ``detector_boxes`` and ``detector_scores``.
    """

    landmarks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    scheme: str
    extra: dict[str, Any] = field(default_factory=dict)
    point_confidence: np.ndarray | None = None
    face_confidence: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.landmarks)


# The bundled default model (its card: sdk/models/edgemark_h3r_mnv2_128_ft.md), one file per format:
# the one used is the first of DEFAULT_FORMAT_PREFERENCE whose runtime is installed.
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_FILES: dict[str, str] = {
    "onnx": "edgemark_h3r_mnv2_128_ft_fp32.onnx",
    "openvino": "edgemark_h3r_mnv2_128_ft_fp32.xml",
    "tflite": "edgemark_h3r_mnv2_128_ft_int8.tflite",  # INT8: +0.4 % NME, 1.4-2x faster (README)
}
DEFAULT_MODEL = DEFAULT_MODEL_FILES["onnx"]
DEFAULT_FORMAT_PREFERENCE = ("onnx", "openvino", "tflite")


def _check_options(opts: PredictorOptions) -> None:
    """Refuse options that would silently misbehave later (a batch of 0 never runs the network)."""
    if not isinstance(opts.max_batch, int) or isinstance(opts.max_batch, bool) or opts.max_batch < 1:
        raise InputError(f"max_batch must be a positive integer, got {opts.max_batch!r}")
    if not isinstance(opts.refine, int) or isinstance(opts.refine, bool) or opts.refine < 0:
        raise InputError(f"refine must be an integer >= 0 (re-crop passes), got {opts.refine!r}")
    gate = opts.min_face_confidence
    if gate is not None and (isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate <= 1):
        raise InputError(f"min_face_confidence must be in [0, 1] or None (the model's own gate), got {gate!r}")


def default_model_path(fmt: str | None = None) -> Path:
    """The bundled model in format ``fmt``, or (None) in the first format whose runtime is installed."""
    from .formats import FORMATS, installed_formats

    if fmt is None:
        installed = {f.name for f in installed_formats()}
        usable = [f for f in DEFAULT_FORMAT_PREFERENCE if f in installed]
        if not usable:
            raise ModelLoadError("no inference runtime is installed, so the bundled model cannot run: "
                                 + " or ".join(FORMATS[f].install_hint for f in DEFAULT_FORMAT_PREFERENCE))
        fmt = usable[0]
    if fmt not in DEFAULT_MODEL_FILES:
        raise ModelLoadError(f"the bundled model comes as {sorted(DEFAULT_MODEL_FILES)}, not {fmt!r}")
    return MODELS_DIR / DEFAULT_MODEL_FILES[fmt]


def _format_of_backend(backend: str | None) -> str | None:
    """The format a forced runtime runs (``backend="litert"`` → the bundled .tflite)."""
    if backend is None:
        return None
    from .formats import format_named

    return format_named(backend).name


class Predictor:
    """Runtime-agnostic facial-landmark predictor.

    >>> p = Predictor("h3r_mobilenetv2_128_fp32.onnx", threads=2)
    >>> p.predict(image_bgr, [[x1, y1, x2, y2]]).landmarks.shape
    (1, 98, 2)
    """

    def __init__(self, model: str | Path | Backend | None = None, *, backend: str | None = None, threads: int | None = None,
                 metadata: ModelMetadata | None = None, options: PredictorOptions | None = None,
                 detector: "FaceDetector | None" = None, flip_test: bool | None = None):
        if model is not None and not isinstance(model, (str, Path, Backend)):
            raise InputError(f"model must be a file path (str or Path) or a Backend, got {type(model).__name__}")
        if isinstance(metadata, dict):  # a metadata document (e.g. read from JSON): validated like an embedded one
            metadata = ModelMetadata.from_dict(metadata)
        elif metadata is not None and not isinstance(metadata, ModelMetadata):
            raise InputError(f"metadata must be a ModelMetadata or a dict, got {type(metadata).__name__}")
        opts = options or PredictorOptions(backend=backend, threads=threads)
        if detector is not None or flip_test is not None:
            import dataclasses

            opts = dataclasses.replace(opts, **({"detector": detector} if detector is not None else {}),
                                       **({"flip_test": bool(flip_test)} if flip_test is not None else {}))
        _check_options(opts)
        if model is None:
            model = default_model_path(_format_of_backend(opts.backend))
            if not model.is_file():
                raise FileNotFoundError(f"no model given and the bundled default {model} is missing")
        self.options = opts
        if isinstance(model, Backend):
            self.backend: Backend = model
        else:
            self.backend = open_backend(model, backend=opts.backend, threads=opts.threads, metadata=metadata)
        self.metadata: ModelMetadata = self.backend.metadata
        self.model_path = self.backend.path
        safe = bool(getattr(self.backend, "thread_safe", False))  # from the format table (sdk.formats)
        self._run_lock = None if safe else threading.Lock()
        self._detector = opts.detector
        self._detector_lock = threading.Lock()
        self._scratch = Scratch()

    # --- inference on ready tensors --------------------------------------------------------
    def _run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        args = (tensor,) if to_image is None else (tensor, to_image)  # a user's own Backend may take one argument
        if self._run_lock is None:
            return self.backend.run(*args)
        with self._run_lock:
            return self.backend.run(*args)

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend + decoder on a ready tensor → (landmarks in input coordinates, scores)."""
        raw = self._run(tensor)
        meta = self.metadata
        return decode(meta.decoder.name, outputs_by_role(meta, raw), meta.decoder.params)

    def infer_with_confidence(self, tensor: np.ndarray, flip_test: bool = False
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(landmarks in input coordinates, scores, point confidence); ``flip_test`` also runs the
        mirrored crops and averages both passes (mirrored points un-mirrored and re-ordered with
        the scheme's flip permutation)."""
        meta = self.metadata
        n = len(tensor)
        if flip_test:
            tensor = self._with_mirrored(tensor)
        by_role = outputs_by_role(meta, self._run(np.ascontiguousarray(tensor)))
        pts, scores = decode(meta.decoder.name, by_role, meta.decoder.params)
        conf = point_confidence(meta.decoder.name, scores)
        if not flip_test:
            return pts, scores, conf
        perm = np.asarray(meta.scheme.flip_permutation())
        back = unmirror_points(pts[n:], self._mirror_edge(), perm)
        avg = ((pts[:n].astype(np.float64) + back) / 2).astype(np.float32)
        return avg, _mean_of_passes(scores, n, perm), _mean_of_passes(conf, n, perm)

    def _with_mirrored(self, tensor: np.ndarray) -> np.ndarray:
        """The batch followed by its horizontally mirrored crops (the flip test's second pass)."""
        axis = 3 if self.metadata.input.layout == "nchw" else 2
        return np.concatenate([tensor, np.flip(tensor, axis=axis)])

    def _mirror_edge(self) -> float:
        """x ↦ edge − x undoes the mirror: input pixel-centre u maps to W-1-u, corner coordinate U to W-U."""
        return self.metadata.input.width - (1.0 if self.metadata.crop.coordinate_origin == "pixel_center" else 0.0)

    def _infer_mapped(self, tensor: np.ndarray, matrices: np.ndarray, flip_test: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(landmarks in image pixels, scores, point and face confidence) from a file whose graph maps
        back (``sdk.decoders.MAPS_BACK``): the runtime does all of it, nothing runs in numpy after the call
        but the flip test's average."""
        meta = self.metadata
        origin = meta.crop.coordinate_origin
        maps = image_maps(matrices, origin)
        n = len(tensor)
        if flip_test:
            tensor = np.ascontiguousarray(self._with_mirrored(tensor))
            maps = np.concatenate([maps, image_maps(matrices, origin, mirror_edge=self._mirror_edge())])
        by_role = outputs_by_role(meta, self._run(tensor, maps))
        lm, scores, pc, fc = (by_role[r] for r in MAPPED_ROLES)
        if not flip_test:
            return lm, scores, pc, fc
        perm = np.asarray(meta.scheme.flip_permutation())
        pc = _mean_of_passes(pc, n, perm)
        return (((lm[:n].astype(np.float64) + lm[n:][:, perm]) / 2).astype(np.float32),
                _mean_of_passes(scores, n, perm), pc, face_confidence(pc))

    # --- detection ---------------------------------------------------------------------------
    @property
    def detector(self) -> "FaceDetector":
        """The face detector used when ``predict`` gets no boxes (created on first use)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    from .detection import default_detector

                    self._detector = default_detector(threads=self.options.threads)
        return self._detector

    def detect_faces(self, image: np.ndarray, *, color: str = "bgr") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect faces → (model boxes (F, 4) via the detector's BoxAdapter, raw detector boxes, scores)."""
        from .detection import box_adapter_of

        if color not in ("bgr", "rgb"):
            raise InputError(f"color must be 'bgr' or 'rgb', got {color!r}")
        validate_image(image)
        bgr = image if color == "bgr" else np.ascontiguousarray(image[..., ::-1])
        det = self.detector
        if getattr(det, "thread_safe", False):
            boxes, scores = det.detect(bgr)
        else:
            with self._detector_lock:
                boxes, scores = det.detect(bgr)
        boxes = np.asarray(boxes, dtype=np.float32)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1) if scores is not None else None
        if boxes.ndim == 2 and boxes.shape[1] == 5:  # [x1, y1, x2, y2, score] rows: the score column counts
            if scores is None or len(scores) != len(boxes):
                scores = boxes[:, 4].copy()
            boxes = boxes[:, :4]
        elif boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        elif boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InputError(f"detector {det!r} returned boxes shaped {boxes.shape}; a detector returns (F, 4) "
                             "[x1, y1, x2, y2] boxes (or (F, 5) rows with a score column) and (F,) scores")
        if scores is None:
            raise InputError(f"detector {det!r} returned no scores; return (boxes, scores)")
        if len(scores) != len(boxes):
            raise InputError(f"detector {det!r} returned {len(boxes)} boxes but {len(scores)} scores")
        keep = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[keep], scores[keep]
        return box_adapter_of(det).apply(boxes), boxes, scores

    @property
    def face_gate(self) -> float | None:
        """Face confidence a detected face needs to be kept (None: not gated, the detector decides)."""
        if self.options.min_face_confidence is not None:
            return float(self.options.min_face_confidence)
        spec = self.metadata.face_confidence
        if not spec.informative or not DECODERS[self.metadata.decoder.name].informative:
            return None
        return DEFAULT_FACE_CONFIDENCE if spec.threshold is None else float(spec.threshold)

    def empty_prediction(self, extra: dict[str, Any] | None = None) -> Prediction:
        """A result with no faces: shapes (0, L, 2), (0, L), (0, 4)."""
        n_pts = self.metadata.scheme.num_points
        return Prediction(landmarks=np.zeros((0, n_pts, 2), np.float32), scores=np.zeros((0, n_pts), np.float32),
                          boxes=np.zeros((0, 4), np.float32), scheme=self.metadata.scheme.name, extra=extra or {},
                          point_confidence=np.zeros((0, n_pts), np.float32), face_confidence=np.zeros(0, np.float32))

    def predict(self, image: np.ndarray, boxes=None, *, color: str = "bgr", flip_test: bool | None = None) -> Prediction:
        """Landmarks for each face box ``[x1, y1, x2, y2]`` of an HxWx3 uint8 image (BGR unless ``color='rgb'``).

        ``boxes=None``: faces are detected first (``self.detector``), re-cropped from their landmarks
        (``options.refine``) and kept when their confidence reaches ``options.min_face_confidence``;
        no face gives an empty Prediction, not an error. ``flip_test`` (default: the options')
        averages a mirrored pass.
        """
        if color not in ("bgr", "rgb"):
            raise InputError(f"color must be 'bgr' or 'rgb', got {color!r}")
        flip = self.options.flip_test if flip_test is None else bool(flip_test)
        extra: dict[str, Any] = {}
        if boxes is None:
            boxes, det_boxes, det_scores = self.detect_faces(image, color=color)
            extra = {"detector_boxes": det_boxes, "detector_scores": det_scores}
        else:
            try:  # no copy of a numeric array; anything else as the float64 the box test reads
                boxes = np.asarray(boxes)
                if boxes.dtype.kind not in "biuf":
                    boxes = np.asarray(boxes, dtype=np.float64)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InputError(f"boxes must be numbers shaped (faces, 4) [x1, y1, x2, y2]: {exc}") from None
            if boxes.size == 0 and boxes.ndim <= 2 and (boxes.ndim < 2 or boxes.shape[1] in (0, 4)):
                validate_image(image)  # [] or an empty (0, 4) array: no faces, as a detector with none would say
                return self.empty_prediction()
        if extra and len(boxes) == 0:
            return self.empty_prediction(extra)
        result = self._predict_boxes(image, boxes, color, flip, extra)
        if extra:
            from .detection import landmark_box

            h, w = image.shape[:2]
            for _ in range(max(0, int(self.options.refine))):
                new = np.stack([landmark_box(lm, self.metadata.scheme.to68) for lm in result.landmarks])
                ok = ((new[:, 2] - new[:, 0] >= 2) & (new[:, 3] - new[:, 1] >= 2) & (new[:, 2] >= 0)
                      & (new[:, 3] >= 0) & (new[:, 0] <= w - 1) & (new[:, 1] <= h - 1))
                if not ok.any():
                    break
                result = self._predict_boxes(image, np.where(ok[:, None], new, result.boxes), color, flip, extra)
            gate = self.face_gate
            keep = np.ones(len(result), bool) if gate is None else result.face_confidence >= gate
            if not keep.all():
                extra = {"detector_boxes": det_boxes[keep], "detector_scores": det_scores[keep],
                         "rejected_detections": det_boxes[~keep], "rejected_confidence": result.face_confidence[~keep]}
                result = Prediction(landmarks=result.landmarks[keep], scores=result.scores[keep],
                                    boxes=result.boxes[keep], scheme=result.scheme, extra=extra,
                                    point_confidence=result.point_confidence[keep],
                                    face_confidence=result.face_confidence[keep])
        return result

    def _predict_boxes(self, image: np.ndarray, boxes, color: str, flip: bool, extra: dict[str, Any]) -> Prediction:
        meta = self.metadata
        batch = prepare_faces(image, boxes, meta.input, meta.crop, image_color=color, scratch=self._scratch)
        if self.backend.map_input is not None:
            return self._predict_mapped(batch, flip, extra)
        tensor, step = batch.tensor, self.options.max_batch
        if len(tensor) <= step:
            pts, scores, pc = self.infer_with_confidence(tensor, flip_test=flip)
        else:
            chunks = [self.infer_with_confidence(tensor[start:start + step], flip_test=flip)
                      for start in range(0, len(tensor), step)]
            pts, scores, pc = (np.concatenate(part) for part in zip(*chunks))
        landmarks = to_image_coords(pts, batch.matrices, meta.crop.coordinate_origin)
        _check_finite(landmarks)
        return Prediction(landmarks=landmarks, scores=np.asarray(scores, dtype=np.float32), boxes=batch.boxes,
                          scheme=meta.scheme.name, extra=extra, point_confidence=pc, face_confidence=face_confidence(pc))

    def _predict_mapped(self, batch, flip: bool, extra: dict[str, Any]) -> Prediction:
        step = self.options.max_batch
        if len(batch.tensor) <= step:
            lm, scores, pc, fc = self._infer_mapped(batch.tensor, batch.matrices, flip)
        else:
            chunks = [self._infer_mapped(batch.tensor[start:start + step], batch.matrices[start:start + step], flip)
                      for start in range(0, len(batch.tensor), step)]
            lm, scores, pc, fc = (np.concatenate(part) for part in zip(*chunks))
        _check_finite(lm)
        return Prediction(landmarks=lm, scores=scores, boxes=batch.boxes, scheme=self.metadata.scheme.name,
                          extra=extra, point_confidence=pc, face_confidence=fc)


def _mean_of_passes(values: np.ndarray, n: int, perm: np.ndarray) -> np.ndarray:
    """(n, L) float32 mean of a flip test's two passes of per-point values (the mirrored pass re-ordered)."""
    return ((values[:n] + values[n:][:, perm]) / 2).astype(np.float32)


def _check_finite(landmarks: np.ndarray) -> None:
    """EdgemarkError naming the faces whose landmarks are NaN/inf (one numpy call when all is well; a sum
    that merely overflowed is no error)."""
    if not math.isfinite(float(landmarks.sum())):
        bad = sorted({int(i) for i in np.flatnonzero(~np.isfinite(landmarks).reshape(len(landmarks), -1).all(1))})
        if bad:
            raise EdgemarkError(f"the model produced non-finite landmarks for face(s) {bad}: its outputs contain "
                                "NaN/inf (corrupt weights or an input it cannot handle)")
