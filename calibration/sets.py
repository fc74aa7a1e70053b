"""Calibration and validation sets of real face crops, preprocessed exactly as the Predictor does.

Why real faces and the Predictor's own preprocessing: INT8 ranges are fitted to the
activations the calibration data produces. Crops made any other way (other crop rule,
other normalisation, noise) give other ranges, and a model quantized on them loses
accuracy on the inputs it will actually see.

A set is drawn reproducibly from a *source* (see :func:`resolve_source`) with a seed:
a random permutation of the usable faces gives ``size`` calibration faces and, after
them, ``val_size`` validation faces, so the two are disjoint by construction. The
validation split keeps the warp matrices, boxes and (where the source has them)
ground-truth landmarks, so accuracy can be measured in image pixels. The AFLW2000-3D
test set is refused: calibrating (or choosing a recipe) on the test faces would leak
the benchmark into the model.

Sets are cached as ``.npz`` keyed by a hash of the source identity, the preprocessing
fields of the model's input spec and crop rule, the sizes and the seed.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.errors import EdgemarkError
from sdk.metadata import ModelMetadata
from sdk.preprocess import prepare_batch, to_layout

DEFAULT_SOURCE = "aflw-faces"
CACHE_ENV_VAR = "EDGEMARK_CACHE"
_FORMAT_VERSION = 1  # bump when the cached arrays change meaning
_TEST_SET_NAMES = ("aflw2000-3d", "aflw2000_3d", "aflw2000", "aflw2000-3d-reannotated")
BOXES_FILE_NAMES = ("boxes.json", "boxes.csv")
# InputSpec fields that change the tensor a face becomes (name/dtype/quantisation do not).
_INPUT_FIELDS = ("width", "height", "color", "scale", "mean", "std", "layout")


class CalibrationSourceError(EdgemarkError, ValueError):
    """A calibration source cannot be used (missing, malformed, too small, or the test set)."""


@dataclass(frozen=True)
class FaceSource:
    """A resolved source: a dataset of faces plus a stable identity string for the cache key."""

    name: str
    identity: str
    dataset: Any  # landmarkdata.datasets.LandmarkDataset


@dataclass
class CalibrationSet:
    """Calibration tensors and a disjoint validation split, in the model's input layout.

    ``calibration``/``validation``: float32 network inputs. ``val_matrices`` (M, 2, 3) map
    image → input pixels (for :func:`sdk.preprocess.to_image_coords`); ``val_boxes`` (M, 4)
    are the face boxes; ``val_landmarks`` (M, K, 2) the ground truth in image pixels in
    ``gt_scheme`` (K = 0 when the source has none).
    """

    calibration: np.ndarray
    validation: np.ndarray
    val_matrices: np.ndarray
    val_boxes: np.ndarray
    val_landmarks: np.ndarray
    gt_scheme: str | None
    layout: str
    info: dict[str, Any] = field(default_factory=dict)

    def as_layout(self, layout: str, which: str = "calibration") -> np.ndarray:
        """``calibration`` or ``validation`` tensors in ``layout`` ('nchw' or 'nhwc')."""
        arr = getattr(self, which)
        if layout == self.layout:
            return arr
        return to_layout(arr, self.layout, layout)

    @property
    def key(self) -> str:
        return str(self.info.get("key", ""))

    def summary(self) -> dict[str, Any]:
        """What went into the set, for model provenance (no arrays)."""
        keys = ("source", "source_identity", "size", "val_size", "seed", "key", "gt_scheme")
        return {k: self.info[k] for k in keys if k in self.info}


# --------------------------------------------------------------------------- sources


def default_cache_dir() -> Path:
    """``$EDGEMARK_CACHE/calibration``, else ``~/.cache/edgemark/calibration``."""
    base = os.environ.get(CACHE_ENV_VAR)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "edgemark"
    return root / "calibration"


def _sha256_bytes(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _test_set_roots() -> list[Path]:
    from landmarkdata.datasets import AFLW2000_ENV_VAR
    from landmarkdata.paths import shared_path

    roots = [shared_path("data", "aflw2000-3d", required=False)]
    if os.environ.get(AFLW2000_ENV_VAR):
        roots.append(Path(os.environ[AFLW2000_ENV_VAR]))
    return [r.resolve() for r in roots]


def _refuse_test_set(name: str = "", paths: Sequence[Path] = ()) -> None:
    """Raise when a source is (or draws images from) the AFLW2000-3D test set."""
    why = ""
    if name.strip().lower() in _TEST_SET_NAMES or name.lower().startswith("aflw2000"):
        why = f"the source is named {name!r}"
    roots = _test_set_roots()
    for p in paths:
        rp = Path(p).resolve()
        if any(rp == r or r in rp.parents for r in roots):
            why = f"{p} lies inside the AFLW2000-3D test set folder"
            break
        if rp.is_dir() and (rp / "landmarks68_reannotated.npy").exists():
            why = f"{p} is an AFLW2000-3D folder (it holds landmarks68_reannotated.npy)"
            break
    if why:
        raise CalibrationSourceError(
            f"refusing to calibrate on AFLW2000-3D ({why}): it is the test set, and choosing quantization "
            "ranges or recipes on test faces leaks the benchmark into the model. Use 'aflw-faces' (the default, "
            "AFLW training faces disjoint from AFLW2000-3D), a dataset of your own, or an image folder with boxes.")


def load_boxes_file(path: str | Path) -> Any:
    """Faces listed in a boxes file → LandmarkDataset (images relative to the file's folder).

    JSON: ``{"scheme": "ibug68", "faces": [{"image": "a.jpg", "box": [x1, y1, x2, y2],
    "landmarks": [[x, y], ...]}]}`` (``scheme`` and ``landmarks`` optional, all faces
    with the same point count; a bare list of faces also works). CSV: a header
    ``image,x1,y1,x2,y2`` then one face per row. Coordinates are 0-based pixels.
    """
    from landmarkdata.datasets import LandmarkDataset, default_scheme_name

    path = Path(path)
    if not path.is_file():
        raise CalibrationSourceError(f"boxes file not found: {path}")
    folder = path.parent
    images, boxes, landmarks, scheme = [], [], [], None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CalibrationSourceError(f"{path}: not valid JSON: {exc}") from None
        faces = data.get("faces") if isinstance(data, dict) else data
        scheme = data.get("scheme") if isinstance(data, dict) else None
        if not isinstance(faces, list):
            raise CalibrationSourceError(f"{path}: expected a list of faces or an object with a 'faces' list")
        for k, face in enumerate(faces):
            if not isinstance(face, dict) or "image" not in face or "box" not in face:
                raise CalibrationSourceError(f"{path}: face {k} needs 'image' and 'box' [x1, y1, x2, y2]")
            box = np.asarray(face["box"], dtype=np.float64).reshape(-1)
            if box.shape != (4,):
                raise CalibrationSourceError(f"{path}: face {k} box must have 4 numbers, got {face['box']!r}")
            images.append(str(face["image"]))
            boxes.append(box)
            lm = face.get("landmarks")
            landmarks.append(None if lm is None else np.asarray(lm, dtype=np.float64).reshape(-1, 2))
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or [c.strip().lower() for c in rows[0][:5]] != ["image", "x1", "y1", "x2", "y2"]:
            raise CalibrationSourceError(f"{path}: the first line must be the header image,x1,y1,x2,y2")
        for lineno, row in enumerate(rows[1:], 2):
            if not row or not "".join(row).strip():
                continue
            try:
                boxes.append(np.array([float(v) for v in row[1:5]], dtype=np.float64))
            except (ValueError, IndexError):
                raise CalibrationSourceError(f"{path}:{lineno}: expected image,x1,y1,x2,y2, got {row!r}") from None
            images.append(row[0].strip())
            landmarks.append(None)
    else:
        raise CalibrationSourceError(f"{path}: a boxes file must be .json or .csv")
    if not images:
        raise CalibrationSourceError(f"{path}: lists no faces")
    counts = {0 if lm is None else len(lm) for lm in landmarks}
    if len(counts) > 1:
        raise CalibrationSourceError(f"{path}: faces mix landmark counts {sorted(counts)} (give all or none)")
    k = counts.pop()
    lms = np.stack([np.zeros((0, 2)) if lm is None else lm for lm in landmarks]).astype(np.float32)
    if k and scheme is None:
        try:
            scheme = default_scheme_name(k)
        except Exception:
            scheme = f"custom{k}"
    paths = [folder / im for im in images]
    _refuse_test_set(paths=[folder, *{p.parent for p in paths}])
    return LandmarkDataset(f"boxes:{path.name}", scheme or "unlabelled", names=images, image_paths=paths,
                           landmarks=lms, boxes=np.stack(boxes))


def detect_folder_faces(folder: str | Path, detector: Any = None) -> FaceSource:
    """Every face the built-in detector (``sdk.detection.default_detector``) finds in the photos of
    ``folder`` (top level), each box mapped onto the landmark models' box convention by the
    detector's adapter. Unreadable files are skipped. The identity covers the files' names,
    sizes and modification times and the detector, so the cache notices any change."""
    import cv2

    from landmarkdata.datasets import IMAGE_EXTENSIONS, LandmarkDataset
    from sdk.detection import box_adapter_of, default_detector

    folder = Path(folder)
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_EXTENSIONS)
    if not photos:
        raise CalibrationSourceError(f"calibration folder {folder} holds no photos ({', '.join(IMAGE_EXTENSIONS)}) "
                                     f"and no {' or '.join(BOXES_FILE_NAMES)}")
    detector = detector or default_detector()
    adapter = box_adapter_of(detector)
    names, paths, boxes, stamp = [], [], [], []
    for photo in photos:
        stat = photo.stat()
        stamp.append(f"{photo.name}:{stat.st_size}:{stat.st_mtime_ns}")
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR) if stat.st_size else None
        if image is None:
            continue
        found, _ = detector.detect(image)
        for k, box in enumerate(adapter.apply(np.asarray(found, np.float32).reshape(-1, 4))):
            names.append(f"{photo.name}#{k}")
            paths.append(photo)
            boxes.append(box)
    if not boxes:
        raise CalibrationSourceError(f"the face detector found no face in the {len(photos)} photos of {folder}")
    data = LandmarkDataset(f"folder:{folder.name}", "unlabelled", names=names, image_paths=paths,
                           landmarks=np.zeros((len(boxes), 0, 2), np.float32), boxes=np.stack(boxes))
    digest = _sha256_bytes("\n".join(stamp).encode(), repr(detector).encode(), repr(adapter).encode())
    return FaceSource(f"{folder} ({len(boxes)} faces found by {type(detector).__name__} in {len(photos)} photos)",
                      f"folder:{folder.resolve()}:{digest[:16]}", data)


def resolve_source(source: Any = DEFAULT_SOURCE) -> FaceSource:
    """Turn a source description into faces plus a stable identity.

    ``source``: ``"aflw-faces"`` (default, AFLW training faces in the shared data); a
    folder holding ``boxes.json``/``boxes.csv``, or a plain folder of photos (faces found by the
    built-in detector, ``detect_folder_faces``); a boxes file; ``"NAME=PATH"`` for a
    dataset loader of :mod:`landmarkdata.datasets` taking one path (e.g. ``300w=/data/300W``);
    or a :class:`~landmarkdata.datasets.LandmarkDataset`. AFLW2000-3D is refused.
    """
    from landmarkdata.datasets import LandmarkDataset, load_aflw_faces, load_dataset

    if isinstance(source, LandmarkDataset):
        _refuse_test_set(source.name, [p.parent for p in source.image_paths[:1]])
        digest = _sha256_bytes("\n".join(source.names).encode(), np.ascontiguousarray(source.boxes).tobytes())
        return FaceSource(source.name, f"dataset:{source.name}:{len(source)}:{digest[:16]}", source)
    text = str(source)
    _refuse_test_set(text)
    if text == DEFAULT_SOURCE:
        data = load_aflw_faces()
        root = data.image_paths[0].parent.parent if len(data) else Path()
        names_file = root / "names.txt"
        digest = _sha256_bytes(names_file.read_bytes()) if names_file.is_file() else "?"
        return FaceSource(DEFAULT_SOURCE, f"aflw-faces:{len(data)}:{digest[:16]}", data)
    if "=" in text and not Path(text).exists():
        name, _, where = text.partition("=")
        _refuse_test_set(name, [Path(where)])
        try:
            data = load_dataset(name.strip(), where.strip())
        except (ValueError, TypeError) as exc:
            raise CalibrationSourceError(f"cannot load calibration dataset {text!r}: {exc}") from None
        return resolve_source(data)
    path = Path(text)
    if path.is_dir():
        _refuse_test_set(paths=[path])
        found = [path / n for n in BOXES_FILE_NAMES if (path / n).is_file()]
        if not found:  # a plain folder of photos: the built-in detector finds the faces
            return detect_folder_faces(path)
        path = found[0]
    if path.is_file():
        data = load_boxes_file(path)
        digest = _sha256_bytes(path.read_bytes())
        return FaceSource(str(path), f"boxes:{path.resolve()}:{digest[:16]}", data)
    raise CalibrationSourceError(f"unknown calibration source {text!r}: use 'aflw-faces', a folder with "
                                 "boxes.json/boxes.csv, a boxes file, or NAME=PATH for a benchmarks dataset")


# --------------------------------------------------------------------------- building


def _usable(dataset: Any) -> np.ndarray:
    b = np.asarray(dataset.boxes, dtype=np.float64)
    ok = np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return np.flatnonzero(ok)


def _preprocessing_of(meta: ModelMetadata) -> dict[str, Any]:
    inp = dataclasses.asdict(meta.input)
    return {"input": {k: inp[k] for k in _INPUT_FIELDS}, "crop": dataclasses.asdict(meta.crop)}


def cache_key(identity: str, meta: ModelMetadata, size: int, val_size: int, seed: int) -> str:
    payload = json.dumps({"v": _FORMAT_VERSION, "source": identity, **_preprocessing_of(meta),
                          "size": size, "val_size": val_size, "seed": seed}, sort_keys=True, default=list)
    return _sha256_bytes(payload.encode())[:24]


def _crops(dataset: Any, indices: np.ndarray, meta: ModelMetadata, progress: bool, desc: str
           ) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    tensors, matrices = [], []
    for i in tqdm(indices, desc=desc, disable=not progress, leave=False, unit="face"):
        t, m = prepare_batch(dataset.load_image(int(i)), dataset.boxes[int(i)][None], meta.input, meta.crop)
        tensors.append(t)
        matrices.append(m)
    shape = (0, *((3, meta.input.height, meta.input.width) if meta.input.layout == "nchw"
                  else (meta.input.height, meta.input.width, 3)))
    if not tensors:
        return np.zeros(shape, np.float32), np.zeros((0, 2, 3), np.float64)
    return np.concatenate(tensors).astype(np.float32), np.concatenate(matrices)


def build_calibration_set(meta: ModelMetadata, source: Any = DEFAULT_SOURCE, *, size: int = 200, val_size: int = 100,
                          seed: int = 0, cache_dir: str | Path | None = None, use_cache: bool = True,
                          progress: bool = True) -> CalibrationSet:
    """``size`` calibration crops and ``val_size`` disjoint validation crops drawn with ``seed``.

    Same source, preprocessing, sizes and seed → identical arrays (and the same cache
    entry); a different seed → a different draw.
    """
    if size < 1 or val_size < 0:
        raise CalibrationSourceError(f"calibration size must be >= 1 and validation size >= 0, got {size}, {val_size}")
    src = resolve_source(source)
    if progress:
        print(f"calibration faces: {src.name}", file=sys.stderr)
    key = cache_key(src.identity, meta, size, val_size, seed)
    cache_file = Path(cache_dir or default_cache_dir()) / f"calib_{key}.npz"
    if use_cache and cache_file.is_file():
        try:
            return _load(cache_file)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            cache_file.unlink(missing_ok=True)
    usable = _usable(src.dataset)
    if len(usable) < size + val_size:
        raise CalibrationSourceError(f"calibration source {src.name!r} has {len(usable)} usable faces; "
                                     f"{size} calibration + {val_size} validation faces were asked for "
                                     "(lower --calib-size / --calib-val-size, or add photos)")
    order = np.random.default_rng(seed).permutation(usable)
    calib_idx, val_idx = np.sort(order[:size]), np.sort(order[size:size + val_size])
    calib, _ = _crops(src.dataset, calib_idx, meta, progress, "calibration crops")
    val, matrices = _crops(src.dataset, val_idx, meta, progress, "validation crops")
    lms = np.asarray(src.dataset.landmarks, dtype=np.float32)[val_idx]
    gt_scheme = src.dataset.scheme if lms.shape[1] > 0 else None
    info = {"source": src.name, "source_identity": src.identity, "size": size, "val_size": val_size, "seed": seed,
            "key": key, "gt_scheme": gt_scheme, "calibration_faces": [src.dataset.names[i] for i in calib_idx],
            "validation_faces": [src.dataset.names[i] for i in val_idx], **_preprocessing_of(meta)}
    result = CalibrationSet(calib, val, matrices, np.asarray(src.dataset.boxes, np.float32)[val_idx], lms, gt_scheme,
                            meta.input.layout, info)
    if use_cache:
        _save(result, cache_file)
    return result


def _save(cs: CalibrationSet, path: Path) -> None:
    from sdk.atomic import atomic_paths

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_paths(path) as (tmp,):
        with open(tmp, "wb") as f:
            np.savez(f, calibration=cs.calibration, validation=cs.validation, val_matrices=cs.val_matrices,
                     val_boxes=cs.val_boxes, val_landmarks=cs.val_landmarks,
                     info=np.array(json.dumps({**cs.info, "layout": cs.layout})))


def _load(path: Path) -> CalibrationSet:
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        return CalibrationSet(z["calibration"], z["validation"], z["val_matrices"], z["val_boxes"],
                              z["val_landmarks"], info.get("gt_scheme"), info.pop("layout"), info)


# --------------------------------------------------------------------------- metrics


def agreement_nme(pred: np.ndarray, ref: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per-face NME (%) of ``pred`` against ``ref`` landmarks (image px), normalised by sqrt(w·h) of the box.

    With the FP32 model's landmarks as ``ref`` this bounds how much the quantized model's
    GT NME can rise: per point |e_int8 − e_fp32| ≤ |p_int8 − p_fp32| (triangle inequality),
    so the GT NME increase is at most this number under the same normaliser.
    """
    from landmarkdata.metrics import nme

    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return nme(pred, ref, np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
