"""Landmark datasets behind one small abstraction.

Every loader returns a :class:`LandmarkDataset`: a sequence of :class:`FaceSample`
with one landmark scheme, landmarks as float32 ``(L, 2)`` 0-based image pixels
(NaN = point not annotated) and a face box ``[x1, y1, x2, y2]``. Benchmarks only
ever see this form, so a metric or a crop rule never has to know where a file
came from. Formats follow REFERENCE.md §2.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, overload

import cv2
import numpy as np

from sdk.boxes import box_from_landmarks
from sdk.schemes import scheme_for_points

from .paths import SharedDataMissing, shared_path

PathLike = str | os.PathLike[str]

AFLW2000_ENV_VAR = "EDGEMARK_AFLW2000"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".PNG", ".JPG", ".JPEG", ".BMP")

# 300W folder name (lower case) → evaluation subset. Common = LFPW + HELEN test sets,
# challenge = iBUG, private = the 300W competition test set (indoor/outdoor). AFW and
# any ``trainset`` folder are training data only.
SUBSET_OF_300W_FOLDER: dict[str, str] = {
    "helen": "common",
    "lfpw": "common",
    "ibug": "challenge",
    "afw": "train",
    "01_indoor": "private",
    "02_outdoor": "private",
    "indoor": "private",
    "outdoor": "private",
}

# WFLW attribute flags, in file order.
WFLW_ATTRIBUTES: tuple[str, ...] = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")

# Default scheme names for COCO-style keypoint files, by point count.
COCO_SCHEME_BY_POINTS: dict[int, str] = {68: "ibug68", 98: "wflw98", 29: "cofw29", 19: "aflw19"}


@dataclass(frozen=True)
class Protocol:
    """How a dataset is scored: the NME normaliser and whether results are reported per |yaw| bin.

    ``normaliser``: "box" = sqrt(w·h) of the ground-truth landmark box (AFLW, AFLW2000-3D),
    "interocular" = the scheme's outer-eye-corner distance (300W, WFLW, COFW); REFERENCE.md §2.
    """

    name: str
    normaliser: str
    yaw_bins: bool = False

    def __post_init__(self) -> None:
        if self.normaliser not in ("box", "interocular"):
            raise ValueError(f"protocol normaliser must be 'box' or 'interocular', got {self.normaliser!r}")


INTEROCULAR_PROTOCOL = Protocol("interocular", "interocular")
AFLW2000_3D_PROTOCOL = Protocol("aflw2000-3d", "box", yaw_bins=True)
BOX_PROTOCOL = Protocol("box", "box")


class DatasetFormatError(ValueError):
    """An annotation file does not follow its documented format."""


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (corrupt or not an image)."""


@dataclass(frozen=True, eq=False)
class FaceSample:
    """One annotated face. ``landmarks`` are 0-based pixels, NaN where not annotated."""

    name: str
    image_path: Path
    landmarks: np.ndarray  # float32 (L, 2)
    box: np.ndarray  # float32 (4,) [x1, y1, x2, y2]
    yaw: float | None = None  # |yaw| in degrees where the dataset has it
    subset: str | None = None


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class LandmarkDataset(Sequence[FaceSample]):
    """A sequence of faces sharing one landmark scheme, stored as stacked arrays.

    Arrays (not a list of objects) keep 20k-face sets cheap and let metrics run
    vectorised on ``.landmarks`` / ``.boxes`` directly.
    """

    def __init__(
        self,
        name: str,
        scheme: str,
        names: Sequence[str],
        image_paths: Sequence[PathLike],
        landmarks: np.ndarray,
        boxes: np.ndarray,
        yaws: Sequence[float | None] | np.ndarray | None = None,
        subsets: Sequence[str | None] | None = None,
        protocol: "Protocol | None" = None,
    ) -> None:
        n = len(names)
        lm = np.array(landmarks, dtype=np.float32, copy=True).reshape(n, -1, 2) if n else \
            np.zeros((0, 0, 2), np.float32)
        bx = np.array(boxes, dtype=np.float32, copy=True).reshape(n, 4) if n else np.zeros((0, 4), np.float32)
        if len(image_paths) != n:
            raise ValueError(f"{len(image_paths)} image paths for {n} names")
        if yaws is None:
            yw = np.full(n, np.nan, np.float32)
        else:
            yw = np.array([np.nan if y is None else y for y in yaws], dtype=np.float32).reshape(-1)
        if len(yw) != n:
            raise ValueError(f"{len(yw)} yaw values for {n} faces")
        sub = [None] * n if subsets is None else list(subsets)
        if len(sub) != n:
            raise ValueError(f"{len(sub)} subset labels for {n} faces")
        self.name = name
        self.scheme = scheme
        self.names: list[str] = list(names)
        self.image_paths: list[Path] = [Path(p) for p in image_paths]
        self.landmarks: np.ndarray = _readonly(lm)
        self.boxes: np.ndarray = _readonly(bx)
        self.yaws: np.ndarray = _readonly(yw)  # NaN where unknown
        self.subsets: list[str | None] = sub
        self.protocol: Protocol = protocol or INTEROCULAR_PROTOCOL

    @classmethod
    def from_samples(cls, name: str, scheme: str, samples: Sequence[FaceSample]) -> "LandmarkDataset":
        """Build from individual samples (all with the same point count)."""
        counts = {s.landmarks.shape[0] for s in samples}
        if len(counts) > 1:
            raise ValueError(f"samples mix point counts {sorted(counts)}; one dataset has one scheme")
        return cls(
            name, scheme,
            names=[s.name for s in samples],
            image_paths=[s.image_path for s in samples],
            landmarks=np.stack([s.landmarks for s in samples]) if samples else np.zeros((0, 0, 2), np.float32),
            boxes=np.stack([s.box for s in samples]) if samples else np.zeros((0, 4), np.float32),
            yaws=[s.yaw for s in samples],
            subsets=[s.subset for s in samples],
        )

    @property
    def num_points(self) -> int:
        return int(self.landmarks.shape[1])

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> FaceSample: ...

    @overload
    def __getitem__(self, index: slice) -> "LandmarkDataset": ...

    def __getitem__(self, index: int | slice) -> FaceSample | "LandmarkDataset":
        if isinstance(index, slice):
            idx = range(len(self))[index]
            return self.subset(list(idx))
        if isinstance(index, (int, np.integer)):
            n = len(self)
            i = int(index)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {index} out of range for a dataset of {n} faces")
            yaw = float(self.yaws[i])
            return FaceSample(
                name=self.names[i],
                image_path=self.image_paths[i],
                landmarks=self.landmarks[i],
                box=self.boxes[i],
                yaw=None if np.isnan(yaw) else yaw,
                subset=self.subsets[i],
            )
        raise TypeError(f"dataset indices must be int or slice, not {type(index).__name__}")

    def __iter__(self) -> Iterator[FaceSample]:
        for i in range(len(self)):
            yield self[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "LandmarkDataset":
        """A new dataset holding the faces at ``indices`` (e.g. one yaw bin)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return LandmarkDataset(
            self.name, self.scheme,
            names=[self.names[i] for i in idx],
            image_paths=[self.image_paths[i] for i in idx],
            landmarks=self.landmarks[idx],
            boxes=self.boxes[idx],
            yaws=self.yaws[idx],
            subsets=[self.subsets[i] for i in idx],
            protocol=self.protocol,
        )

    def load_image(self, i: int) -> np.ndarray:
        """Image of face ``i`` as HxWx3 uint8 BGR."""
        return read_image(self.image_paths[int(i)])

    def __repr__(self) -> str:
        return f"LandmarkDataset(name={self.name!r}, scheme={self.scheme!r}, faces={len(self)})"


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as HxWx3 uint8 BGR; raise clearly when it is missing or undecodable."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    # imdecode on the bytes (rather than imread) handles non-ASCII paths on every OS.
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageReadError(f"cannot decode image {p} ({data.size} bytes): corrupt or not an image")
    return img


def default_scheme_name(num_points: int) -> str:
    """Scheme name for a point count: 68 → ibug68, 98 → wflw98, 29 → cofw29, 19 → aflw19, 21 → aflw21."""
    if num_points in COCO_SCHEME_BY_POINTS:
        return COCO_SCHEME_BY_POINTS[num_points]
    return scheme_for_points(num_points).name


def _unique_names(names: Sequence[str]) -> list[str]:
    """Suffix ``#k`` to names that repeat (several faces in one image) so results key uniquely."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if counts[n] > 1:
            k = seen.get(n, 0)
            seen[n] = k + 1
            out.append(f"{n}#{k}")
        else:
            out.append(n)
    return out


def _apply_limit(n: int, limit: int | None) -> int:
    if limit is None:
        return n
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return min(n, int(limit))


def _check_box_source(box_source: str) -> None:
    if box_source not in ("file", "landmarks"):
        raise ValueError(f"box_source must be 'file' or 'landmarks', got {box_source!r}")


# --------------------------------------------------------------------------- AFLW


def _require_files(root: Path, files: Sequence[str], what: str) -> None:
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise SharedDataMissing(f"{what} at {root} lacks {missing}")


def _read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _image_folder_set(name: str, scheme: str, base: Path, names: list[str], landmarks: np.ndarray,
                      yaw: np.ndarray | None, protocol: Protocol, limit: int | None) -> LandmarkDataset:
    """The first ``limit`` faces of a ``<base>/images`` folder set; box = GT-landmark box, yaw = |yaw|."""
    n = _apply_limit(len(names), limit)
    lms = landmarks[:n].astype(np.float32)
    return LandmarkDataset(name, scheme, names=names[:n], image_paths=[base / "images" / nm for nm in names[:n]],
                           landmarks=lms, boxes=box_from_landmarks(lms),
                           yaws=None if yaw is None else np.abs(yaw[:n].astype(np.float32)), protocol=protocol)


def load_aflw2000_3d(
    root: PathLike | None = None, labels: str = "reannotated", limit: int | None = None
) -> LandmarkDataset:
    """AFLW2000-3D test set (68 points); box = GT-landmark box, yaw = |yaw| (REFERENCE.md §2).

    ``root``: explicit folder, else ``$EDGEMARK_AFLW2000``, else ``<shared>/data/aflw2000-3d``.
    ``labels``: "reannotated" (primary ground truth) or "original" (3D-fit labels).
    """
    if labels not in LABEL_SETS:
        raise ValueError(f"labels must be one of {LABEL_SETS}, got {labels!r}")
    if root is not None:
        base = Path(root)
    elif os.environ.get(AFLW2000_ENV_VAR):
        base = Path(os.environ[AFLW2000_ENV_VAR])
    else:
        base = shared_path("data", "aflw2000-3d")
    lm_file = "landmarks68_reannotated.npy" if labels == "reannotated" else "landmarks68.npy"
    _require_files(base, ["names.txt", lm_file, "yaw_degrees.npy", "images"], "AFLW2000-3D")
    names = _read_names(base / "names.txt")
    lms = np.load(base / lm_file)
    yaw = np.load(base / "yaw_degrees.npy")
    if not (len(names) == len(lms) == len(yaw)) or lms.shape[1:] != (68, 2):
        raise DatasetFormatError(
            f"AFLW2000-3D at {base}: {len(names)} names, landmarks {lms.shape}, yaw {yaw.shape} do not agree")
    return _image_folder_set("aflw2000-3d", "ibug68", base, names, lms, yaw, AFLW2000_3D_PROTOCOL, limit)


def load_aflw_faces(root: PathLike | None = None, limit: int | None = None) -> LandmarkDataset:
    """AFLW faces (21 sparse points, NaN kept) — training and calibration only, never for scoring.

    Box from the annotated points; yaw = |yaw| like AFLW2000-3D. Coordinates are in the
    120×120 crop's pixels.
    """
    base = Path(root) if root is not None else shared_path("data", "aflw-faces")
    _require_files(base, ["names.txt", "landmarks21.npy", "images"], "AFLW faces")
    names = _read_names(base / "names.txt")
    lms = np.load(base / "landmarks21.npy")
    yaw_file = base / "yaw_degrees.npy"
    yaw = np.load(yaw_file) if yaw_file.exists() else None
    if len(names) != len(lms) or lms.shape[1:] != (21, 2) or (yaw is not None and len(yaw) != len(names)):
        raise DatasetFormatError(f"AFLW faces at {base}: {len(names)} names, landmarks {lms.shape} do not agree")
    return _image_folder_set("aflw-faces", "aflw21", base, names, lms, yaw, BOX_PROTOCOL, limit)


# --------------------------------------------------------------------------- 300W


def read_pts(path: PathLike) -> np.ndarray:
    """Read an iBUG ``.pts`` file; returns float32 (L, 2) in 0-based pixels (file is 1-based)."""
    p = Path(path)
    lines = [ln.strip() for ln in p.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    n_points = None
    for ln in lines:
        if ln.lower().startswith("n_points"):
            try:
                n_points = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise DatasetFormatError(f"{p}: bad n_points line {ln!r}") from None
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise DatasetFormatError(f"{p}: no '{{' ... '}}' block of points") from None
    if n_points is None:
        raise DatasetFormatError(f"{p}: no n_points line")
    body = lines[start + 1:end]
    if len(body) != n_points:
        raise DatasetFormatError(f"{p}: n_points is {n_points} but {len(body)} point lines follow")
    try:
        pts = np.array([[float(v) for v in ln.split()[:2]] for ln in body], dtype=np.float64)
    except ValueError:
        raise DatasetFormatError(f"{p}: non-numeric point line") from None
    if pts.shape != (n_points, 2):
        raise DatasetFormatError(f"{p}: every point line needs 'x y'")
    return (pts - 1.0).astype(np.float32)


def subset_of_300w(path: PathLike) -> str | None:
    """300W subset from the folders on ``path`` (deepest known name wins), else None."""
    parts = [part.lower() for part in Path(path).parts]
    if "trainset" in parts:
        return "train"
    for part in reversed(parts):
        if part in SUBSET_OF_300W_FOLDER:
            return SUBSET_OF_300W_FOLDER[part]
    return None


def load_300w_folder(path: PathLike, recursive: bool = True) -> LandmarkDataset:
    """Images with iBUG ``.pts`` beside them (300W, iBUG, LFPW, HELEN, AFW, …).

    Subset per face from the folder names ("helen"/"lfpw" → common, "ibug" → challenge,
    "afw"/"trainset" → train); box = GT-landmark box.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"300W folder not found: {root}")
    pts_files = sorted(root.rglob("*.pts") if recursive else root.glob("*.pts"))
    if not pts_files:
        raise DatasetFormatError(f"no .pts files in {root}")
    names, images, lms, subsets = [], [], [], []
    for pts in pts_files:
        image = next((pts.with_suffix(ext) for ext in IMAGE_EXTENSIONS if pts.with_suffix(ext).is_file()), None)
        if image is None:
            raise FileNotFoundError(f"no image beside {pts} (looked for {', '.join(IMAGE_EXTENSIONS[:4])})")
        names.append(image.relative_to(root).as_posix())
        images.append(image)
        lms.append(read_pts(pts))
        # Include the root's own name: loading ".../ibug" directly still says "challenge".
        subsets.append(subset_of_300w(Path(root.name) / image.relative_to(root).parent))
    counts = {a.shape[0] for a in lms}
    if len(counts) != 1:
        raise DatasetFormatError(f"{root}: .pts files mix point counts {sorted(counts)}")
    arr = np.stack(lms)
    return LandmarkDataset(
        "300w", default_scheme_name(arr.shape[1]),
        names=names, image_paths=images, landmarks=arr, boxes=box_from_landmarks(arr), subsets=subsets,
    )


# --------------------------------------------------------------------------- WFLW


def _wflw_image_root(annotation_file: Path) -> Path:
    for folder in annotation_file.resolve().parents:
        if (folder / "WFLW_images").is_dir():
            return folder / "WFLW_images"
    return annotation_file.parent


def load_wflw_annotations(
    annotation_file: PathLike, image_root: PathLike | None = None, box_source: str = "file"
) -> LandmarkDataset:
    """WFLW list file: 196 coords, 4 box numbers, 6 attribute flags, image path per line.

    ``image_root``: the folder the file's image paths are relative to; by default the nearest
    ``WFLW_images`` folder beside the annotation file or one of its parents (the official
    layout), else the annotation file's own folder.

    ``box_source="file"`` uses the file's own face rectangle (the WFLW protocol box);
    "landmarks" uses the GT-landmark box. Subset = the set attribute names joined by
    "," (e.g. "pose,occlusion"), None when no attribute is set.
    """
    _check_box_source(box_source)
    ann = Path(annotation_file)
    if not ann.is_file():
        raise FileNotFoundError(f"WFLW annotation file not found: {ann}")
    img_root = Path(image_root) if image_root is not None else _wflw_image_root(ann)
    names, lms, boxes, subsets = [], [], [], []
    n_num = 196 + 4 + 6
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < n_num + 1:
            raise DatasetFormatError(f"{ann}:{lineno}: expected {n_num} numbers and an image path, "
                                     f"got {len(tokens)} fields")
        try:
            values = np.array([float(t) for t in tokens[:n_num]], dtype=np.float64)
        except ValueError:
            raise DatasetFormatError(f"{ann}:{lineno}: non-numeric value among the first {n_num} fields") from None
        lms.append(values[:196].reshape(98, 2))
        boxes.append(values[196:200])
        flags = values[200:206]
        if not np.all(np.isin(flags, (0.0, 1.0))):
            raise DatasetFormatError(f"{ann}:{lineno}: attribute flags must be 0/1, got {flags.tolist()}")
        attrs = [a for a, f in zip(WFLW_ATTRIBUTES, flags) if f == 1.0]
        subsets.append(",".join(attrs) if attrs else None)
        names.append(" ".join(tokens[n_num:]))
    if not names:
        raise DatasetFormatError(f"{ann}: no annotation lines")
    arr = np.stack(lms).astype(np.float32)
    box = np.stack(boxes).astype(np.float32) if box_source == "file" else box_from_landmarks(arr)
    return LandmarkDataset(
        "wflw", "wflw98",
        names=_unique_names(names), image_paths=[img_root / n for n in names],
        landmarks=arr, boxes=box, subsets=subsets,
    )


# --------------------------------------------------------------------------- COCO


def load_coco_keypoints(
    json_path: PathLike, image_root: PathLike, box_source: str = "file", scheme: str | None = None
) -> LandmarkDataset:
    """COCO-style keypoint JSON (as MMPose ships 300W/WFLW/COFW/AFLW).

    ``keypoints`` are ``[x, y, v] * K`` taken as written; v=0 → NaN. ``bbox`` ``[x, y, w, h]``
    becomes ``[x, y, x+w, y+h]`` (``box_source="file"``) or the GT-landmark box is used.
    The scheme follows K (68 → ibug68, 98 → wflw98, 29 → cofw29, 19 → aflw19, else customK)
    unless ``scheme`` is given.
    """
    _check_box_source(box_source)
    jp = Path(json_path)
    if not jp.is_file():
        raise FileNotFoundError(f"COCO keypoint file not found: {jp}")
    try:
        data = json.loads(jp.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{jp}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DatasetFormatError(f"{jp}: needs top-level 'images' and 'annotations'")
    files = {img["id"]: img["file_name"] for img in data["images"]}
    img_root = Path(image_root)
    names, lms, boxes = [], [], []
    k_seen: set[int] = set()
    for ann in data["annotations"]:
        kp = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if kp.size == 0 or kp.size % 3:
            raise DatasetFormatError(f"{jp}: annotation {ann.get('id')} keypoints length {kp.size} is not 3*K")
        kp = kp.reshape(-1, 3)
        k_seen.add(kp.shape[0])
        pts = kp[:, :2].copy()
        pts[kp[:, 2] <= 0] = np.nan
        if ann.get("image_id") not in files:
            raise DatasetFormatError(f"{jp}: annotation {ann.get('id')} refers to unknown image {ann.get('image_id')}")
        if box_source == "file":
            bb = ann.get("bbox")
            if bb is None or len(bb) != 4:
                raise DatasetFormatError(f"{jp}: annotation {ann.get('id')} has no 4-number bbox "
                                         f"(use box_source='landmarks')")
            x, y, w, h = (float(v) for v in bb)
            boxes.append([x, y, x + w, y + h])
        names.append(files[ann["image_id"]])
        lms.append(pts)
    if not names:
        raise DatasetFormatError(f"{jp}: no annotations")
    if len(k_seen) != 1:
        raise DatasetFormatError(f"{jp}: annotations mix point counts {sorted(k_seen)}")
    k = k_seen.pop()
    arr = np.stack(lms).astype(np.float32)
    box = np.asarray(boxes, np.float32) if box_source == "file" else box_from_landmarks(arr)
    name = scheme or default_scheme_name(k)
    return LandmarkDataset(
        "coco", name, names=_unique_names(names), image_paths=[img_root / n for n in names],
        landmarks=arr, boxes=box,
    )


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, Callable[..., LandmarkDataset]] = {
    "aflw2000-3d": load_aflw2000_3d,
    "300w": load_300w_folder,
    "wflw": load_wflw_annotations,
    "coco": load_coco_keypoints,
}


DEFAULT_DATASET = "aflw2000-3d"  # the project's test set (REFERENCE.md §2)
LABEL_SETS = ("reannotated", "original")  # AFLW2000-3D's two label sets (the first is primary)
NEEDS_IMAGE_ROOT = ("coco",)  # loaders whose annotation file does not say where the images are


def open_dataset(name: str, data_root: PathLike | None = None, *, image_root: PathLike | None = None,
                 labels: str = LABEL_SETS[0], limit: int | None = None) -> LandmarkDataset:
    """The one way the command line and the benchmark open a dataset by name: ``data_root`` is its
    folder or annotation file (default for aflw2000-3d: the shared data), ``image_root`` the image
    folder of annotation-file datasets, ``labels`` AFLW2000-3D's label set, ``limit`` the first N faces."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of faces, got {limit!r}")
    if name == "aflw2000-3d":
        return load_aflw2000_3d(data_root, labels=labels, limit=limit)
    if name in NEEDS_IMAGE_ROOT and image_root is None:
        raise ValueError(f"dataset {name!r} needs the folder its images are in (--image-root)")
    extra = {"image_root": image_root} if image_root is not None else {}
    data = load_dataset(name, data_root, **extra)
    return data[:limit] if limit else data


def load_dataset(name: str, path: PathLike | None = None, **kw: Any) -> LandmarkDataset:
    """Load a registered dataset; ``path`` is its root/folder/annotation file (see each loader)."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    if path is None:
        if name != "aflw2000-3d":
            raise ValueError(f"dataset {name!r} needs a path (its folder or annotation file)")
        return loader(**kw)
    return loader(path, **kw)


__all__ = [
    "AFLW2000_ENV_VAR", "COCO_SCHEME_BY_POINTS", "DATASETS", "DEFAULT_DATASET", "LABEL_SETS", "NEEDS_IMAGE_ROOT", "open_dataset", "DatasetFormatError", "FaceSample", "ImageReadError",
    "LandmarkDataset", "Protocol", "SUBSET_OF_300W_FOLDER", "WFLW_ATTRIBUTES", "box_from_landmarks", "default_scheme_name",
    "load_300w_folder", "load_aflw2000_3d", "load_aflw_faces", "load_coco_keypoints", "load_dataset",
    "load_wflw_annotations", "read_image", "read_pts", "subset_of_300w",
]
