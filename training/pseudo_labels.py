"""98-point pseudo-labels from a teacher model, in the spirit of PIPNet's self-training.

The AFLW training faces carry only 21 sparse points, so a 98-point student learns from
the official H3R-256 teacher's predictions instead. Two details keep the labels good:

* **Flip averaging**: each face is predicted twice, once mirrored; the mirrored result is
  un-mirrored (x → W − 1 − x, points re-ordered with the scheme's flip permutation) and
  the two are averaged, which cancels much of the teacher's left/right bias.
* **Box bootstrapping**: the teacher was trained on crops around the ground-truth
  68-landmark box, which unlabelled faces do not have. We start from a rough box, predict,
  take the box of the predicted 68-point subset (``WFLW98_TO_68``) and predict again.

Labels are cached outside the repository (``~/.cache/edgemark``): they are derived from
AFLW images (academic, non-commercial use only) and must never be committed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sdk.boxes import box_from_landmarks, mirror_boxes, unmirror_points
from sdk.predictor import Predictor
from sdk.preprocess import prepare_batch, to_image_coords


@dataclass(frozen=True)
class LabelSettings:
    """What the labels depend on; hashed into the cache file name."""

    teacher: str              # ONNX (or any Predictor-readable) teacher model
    iterations: int = 2       # box-bootstrapping passes after the first prediction
    flip: bool = True
    limit: int | None = None  # label only the first N faces of the (seeded) order
    seed: int = 0             # order in which faces are picked when ``limit`` is set


def cache_dir() -> Path:
    """``$EDGEMARK_CACHE`` or ``~/.cache/edgemark`` (never inside the repository)."""
    return Path(os.environ.get("EDGEMARK_CACHE", Path.home() / ".cache" / "edgemark")).expanduser()


class Teacher:
    """A Predictor run on batches of (image, box) pairs from many images, optionally flip-averaged."""

    def __init__(self, model: str | Path, *, threads: int | None = None, flip: bool = True, batch: int = 32):
        self.predictor = Predictor(model, threads=threads)
        self.meta = self.predictor.metadata
        self.flip = flip
        self.batch = batch
        self.perm = self.meta.scheme.flip_permutation()
        if self.meta.scheme.to68 is None:
            raise ValueError(f"teacher scheme {self.meta.scheme.name} has no 68-point subset for box bootstrapping")
        self.to68 = list(self.meta.scheme.to68)

    def predict(self, images: Sequence[np.ndarray], boxes: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """(N, L, 2) image-pixel landmarks, one face per image (the box of the same index)."""
        meta = self.meta
        flip = self.flip if flip is None else flip
        tensors, mats, widths, mirrored = [], [], [], []
        for image, box in zip(images, boxes):
            t, m = prepare_batch(image, box[None], meta.input, meta.crop)
            tensors.append(t)
            mats.append(m)
            widths.append(image.shape[1])
            mirrored.append(False)
            if flip:
                w = image.shape[1]
                t, m = prepare_batch(np.ascontiguousarray(image[:, ::-1]), mirror_boxes(box[None], w), meta.input, meta.crop)
                tensors.append(t)
                mats.append(m)
                widths.append(w)
                mirrored.append(True)
        tensor, matrices = np.concatenate(tensors), np.concatenate(mats)
        pts = np.concatenate([self.predictor.infer(tensor[i:i + self.batch])[0]
                              for i in range(0, len(tensor), self.batch)])
        pts = to_image_coords(pts, matrices, meta.crop.coordinate_origin)
        for i, (w, mir) in enumerate(zip(widths, mirrored)):
            if mir:
                pts[i] = unmirror_points(pts[i], w - 1, self.perm)
        if flip:
            pts = (pts[0::2] + pts[1::2]) / 2
        return pts.astype(np.float32)

    def bootstrap(self, images: Sequence[np.ndarray], boxes: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
        """Predict from ``boxes``, then ``iterations`` times from the predicted 68-subset box.

        Only the final pass is flip-averaged: the earlier ones just place the box, and a
        single pass does that nearly as well at half the cost. Returns (landmarks (N, L, 2),
        the box of the final prediction's 68-point subset).
        """
        boxes = np.asarray(boxes, dtype=np.float32)
        for it in range(iterations + 1):
            final = it == iterations
            pts = self.predict(images, boxes, flip=self.flip if final else False)
            boxes = box_from_landmarks(pts, self.to68)
        return pts, boxes


def settings_hash(settings: LabelSettings, names: Sequence[str]) -> str:
    """Cache key: teacher file contents, labelling settings and the faces' names."""
    h = hashlib.sha256()
    with open(settings.teacher, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())
    h.update(json.dumps({**asdict(settings), "teacher": ""}, sort_keys=True).encode())
    h.update("\n".join(names).encode())
    return h.hexdigest()[:16]


def label_order(n: int, seed: int) -> np.ndarray:
    """The order faces are labelled in (a seeded permutation), so a ``limit`` takes a spread subset."""
    return np.random.default_rng(seed).permutation(n)


def label_dataset(dataset, settings: LabelSettings, *, threads: int | None = None, chunk: int = 64,
                  progress: bool = True, out: Path | None = None) -> Path:
    """Label ``dataset`` (a benchmarks LandmarkDataset: images + rough boxes) and cache the result.

    The file holds ``indices`` (into the dataset), ``names``, ``landmarks`` (N, L, 2) image
    pixels, ``boxes`` (N, 4) final 68-subset boxes, and ``settings`` (JSON). Partial work is
    kept in ``<file>.partial.npz`` so an interrupted run resumes.
    """
    from tqdm import tqdm

    path = out or pseudo_label_path(dataset, settings)
    if path.is_file():
        return path
    order = label_order(len(dataset), settings.seed)
    if settings.limit is not None:
        order = order[: settings.limit]
    teacher = Teacher(settings.teacher, threads=threads, flip=settings.flip)
    partial = path.with_suffix(".partial.npz")
    done_lm, done_bx = [], []
    if partial.is_file():
        with np.load(partial) as z:
            done_lm, done_bx = list(z["landmarks"]), list(z["boxes"])
    start = time.perf_counter()
    bar = tqdm(total=len(order), initial=len(done_lm), desc="pseudo-labels", unit="face", disable=not progress)
    for lo in range(len(done_lm), len(order), chunk):
        idx = order[lo:lo + chunk]
        images = [dataset.load_image(int(i)) for i in idx]
        boxes = np.asarray(dataset.boxes)[idx]
        pts, bx = teacher.bootstrap(images, boxes, settings.iterations)
        done_lm.extend(pts)
        done_bx.extend(bx)
        bar.update(len(idx))
        if (lo // chunk) % 10 == 9:
            _save(partial, order[:len(done_lm)], dataset, done_lm, done_bx, settings, time.perf_counter() - start)
    bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, order, dataset, done_lm, done_bx, settings, time.perf_counter() - start)
    partial.unlink(missing_ok=True)
    return path


def _save(path: Path, order: np.ndarray, dataset, lms: list, boxes: list, settings: LabelSettings, seconds: float) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, indices=np.asarray(order[: len(lms)], dtype=np.int64),
                        names=np.asarray([dataset.names[int(i)] for i in order[: len(lms)]]),
                        landmarks=np.asarray(lms, dtype=np.float32), boxes=np.asarray(boxes, dtype=np.float32),
                        settings=json.dumps(asdict(settings)), seconds=float(seconds))
    os.replace(tmp, path)


def pseudo_label_path(dataset, settings: LabelSettings) -> Path:
    return cache_dir() / f"pseudo_labels_{settings_hash(settings, dataset.names)}.npz"


def load_pseudo_labels(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.pseudo_labels", description=__doc__.split("\n")[0])
    p.add_argument("--teacher", required=True, help="teacher model file (ONNX with edgemark metadata)")
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--check", type=int, metavar="N",
                   help="instead of labelling: teacher NME on N AFLW2000-3D faces, GT vs bootstrapped boxes")
    args = p.parse_args(argv)
    if args.check:
        print(json.dumps(bootstrap_report(args.teacher, args.check, threads=args.threads), indent=1))
        return 0
    from landmarkdata.datasets import load_aflw_faces

    data = load_aflw_faces()
    settings = LabelSettings(str(Path(args.teacher).resolve()), args.iterations, not args.no_flip, args.limit, args.seed)
    path = label_dataset(data, settings, threads=args.threads)
    print(path)
    return 0



# The 68-point indices nearest to AFLW's 21 sparse points (brows, eye corners, nose, mouth,
# chin, and contour points 0/16 at ear height): a rough box like the one AFLW faces start from.
SPARSE_LIKE_68 = (17, 19, 21, 22, 24, 26, 36, 39, 42, 45, 31, 30, 35, 48, 62, 54, 8, 0, 16)


def bootstrap_report(teacher_path: str | Path, count: int = 200, iterations: Sequence[int] = (0, 1, 2), *,
                     threads: int | None = None, progress: bool = True) -> dict[str, float]:
    """Teacher NME on ``count`` AFLW2000-3D faces: GT boxes vs bootstrapped boxes.

    Starts: ``gt`` (the protocol's GT-68 box), ``sparse`` (box of AFLW-21-like GT points, as
    the training faces start) and ``centre`` (a fixed centred box of the median face size,
    no labels at all), each refined ``k`` times. Measures what the bootstrapping costs.
    """
    from tqdm import tqdm

    from landmarkdata.datasets import load_aflw2000_3d
    from landmarkdata.evaluate import score_predictions

    full = load_aflw2000_3d()
    data = full.subset(np.linspace(0, len(full) - 1, count).round().astype(int))
    teacher = Teacher(teacher_path, threads=threads, flip=True)
    images = [data.load_image(i) for i in range(len(data))]
    gt = np.asarray(data.landmarks)
    sides = np.sqrt(np.prod(data.boxes[:, 2:] - data.boxes[:, :2], axis=1))
    h, w = images[0].shape[:2]
    half = float(np.median(sides)) / 2
    starts = {
        "gt": np.asarray(data.boxes),
        "sparse": box_from_landmarks(gt[:, list(SPARSE_LIKE_68)]),
        "centre": np.tile(np.array([[w / 2 - half, h / 2 - half, w / 2 + half, h / 2 + half]], np.float32), (len(data), 1)),
    }
    report: dict[str, float] = {}
    jobs = [("gt", 0)] + [(s, k) for s in ("sparse", "centre") for k in iterations]
    for name, k in tqdm(jobs, desc="bootstrap check", disable=not progress):
        preds = []
        for lo in range(0, len(data), 32):
            preds.append(teacher.bootstrap(images[lo:lo + 32], starts[name][lo:lo + 32], k)[0])
        report[f"{name}_iter{k}"] = float(score_predictions(np.concatenate(preds), data, teacher.meta.scheme.name)["nme"])
    return report


if __name__ == "__main__":
    sys.exit(main())
