"""Training data: face images + landmark targets → augmented network-input crops.

A ``FaceSet`` holds whole images (kept in memory: the AFLW crops are 120×120, 19k of
them are ~0.8 GB), their landmarks in image pixels (NaN = unlabelled) and the face box
the crop rule starts from. Each item is one ``training.augment`` draw whose randomness
comes from ``(seed, epoch, index)`` only, so runs and resumed runs see the same samples.

Sources (``make_sets``):

* ``aflw_pseudo`` — AFLW faces labelled with 98 points by the teacher
  (``training.pseudo_labels``); box = the label's 68-point subset box, the GT-box
  convention the teacher and the AFLW2000-3D protocol use.
* ``aflw_sparse`` — the 21 annotated AFLW points themselves (NaN kept): cheap, needs no
  teacher; used by the tests and small experiments.
* ``synthetic`` — generated images with coloured dots as landmarks: runs anywhere
  (CI without shared data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sdk.metadata import CropRule, ModelMetadata
from sdk.preprocess import crop_regions, normalise, to_input_coords, warp_matrices

from .augment import AugmentConfig, augment


@dataclass
class FaceSet:
    """Images (list of HxWx3 uint8 BGR), landmarks (N, L, 2) image px, boxes (N, 4)."""

    images: list[np.ndarray]
    landmarks: np.ndarray
    boxes: np.ndarray
    names: list[str]

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.landmarks.shape[0] != n or self.boxes.shape != (n, 4) or len(self.names) != n:
            raise ValueError(f"FaceSet: {n} images, landmarks {self.landmarks.shape}, boxes {self.boxes.shape}, "
                             f"{len(self.names)} names do not agree")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: Sequence[int] | np.ndarray) -> "FaceSet":
        idx = np.asarray(idx, dtype=np.int64)
        return FaceSet([self.images[i] for i in idx], self.landmarks[idx], self.boxes[idx],
                       [self.names[i] for i in idx])

    def normalised_points(self, rule: CropRule, width: int, height: int) -> np.ndarray:
        """Landmarks in the un-augmented crop, divided by the input size (for PIPNet's mean face)."""
        m = warp_matrices(crop_regions(self.boxes, rule), width, height)
        pts = to_input_coords(self.landmarks, m, rule.coordinate_origin).astype(np.float64)
        return pts / np.array([width, height], dtype=np.float64)


class AugmentedFaces(Dataset):
    """``(tensor (3, H, W) float32, points (L, 2) float32 in the model's decoded coordinates)``."""

    def __init__(self, faces: FaceSet, meta: ModelMetadata, cfg: AugmentConfig | None, seed: int = 0) -> None:
        self.faces = faces
        self.meta = meta
        self.cfg = cfg or AugmentConfig.off()
        self.seed = int(seed)
        self.epoch = 0
        self.perm = meta.scheme.flip_permutation()
        if len(self.perm) != faces.landmarks.shape[1]:
            raise ValueError(f"model scheme has {len(self.perm)} points, the data {faces.landmarks.shape[1]}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        spec = self.meta.input
        crop, pts = augment(self.faces.images[i], self.faces.landmarks[i], self.faces.boxes[i], self.meta.crop,
                            spec.width, spec.height, self.cfg, rng, self.perm)
        tensor = normalise(crop[None], spec, image_color="bgr")[0]
        return torch.from_numpy(tensor), torch.from_numpy(pts.astype(np.float32))


# --------------------------------------------------------------------------- sources

def _load_images(dataset, indices: Sequence[int], progress: bool) -> list[np.ndarray]:
    from tqdm import tqdm

    return [dataset.load_image(int(i)) for i in tqdm(indices, desc="load images", unit="img", disable=not progress,
                                                    leave=False)]


def aflw_sparse_set(limit: int | None = None, progress: bool = True) -> FaceSet:
    """AFLW faces with their 21 annotated points (NaN kept); box from the annotated points."""
    from landmarkdata.datasets import load_aflw_faces

    data = load_aflw_faces(limit=limit)
    idx = np.arange(len(data))
    return FaceSet(_load_images(data, idx, progress), np.array(data.landmarks), np.array(data.boxes), list(data.names))


def aflw_pseudo_set(teacher: str | Path, *, iterations: int = 1, flip: bool = True, limit: int | None = None,
                    seed: int = 0, threads: int | None = None, progress: bool = True) -> FaceSet:
    """AFLW faces with the teacher's 98-point labels (labelled now unless cached)."""
    from landmarkdata.datasets import load_aflw_faces

    from .pseudo_labels import LabelSettings, label_dataset, load_pseudo_labels

    data = load_aflw_faces()
    settings = LabelSettings(str(Path(teacher).resolve()), iterations, flip, limit, seed)
    labels = load_pseudo_labels(label_dataset(data, settings, threads=threads, progress=progress))
    idx = labels["indices"]
    return FaceSet(_load_images(data, idx, progress), labels["landmarks"], labels["boxes"],
                   [data.names[int(i)] for i in idx])


def synthetic_set(count: int, num_points: int, size: int = 96, seed: int = 0) -> FaceSet:
    """Images with ``num_points`` coloured dots (the landmarks) on a textured background.

    The dots keep a fixed layout (jittered per image) so a network can learn it the way it
    learns a face; point i always has colour i.
    """
    rng = np.random.default_rng(seed)
    import cv2

    angles = np.linspace(0, 2 * np.pi, num_points, endpoint=False)
    radii = 0.25 + 0.1 * (np.arange(num_points) % 3)
    base = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)  # around the centre, fraction of size
    colours = np.stack([(np.arange(num_points) * 67) % 256, (np.arange(num_points) * 131 + 50) % 256,
                        (np.arange(num_points) * 29 + 100) % 256], axis=1).astype(np.uint8)
    images, lms, boxes = [], [], []
    for _ in range(count):
        img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 2.0)
        centre = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
        pts = centre + (base + rng.normal(0, 0.02, base.shape)) * size * rng.uniform(0.9, 1.1)
        for (x, y), c in zip(pts, colours):
            cv2.circle(img, (int(round(x)), int(round(y))), max(2, size // 32), tuple(int(v) for v in c), -1)
        images.append(img)
        lms.append(pts)
        boxes.append([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
    return FaceSet(images, np.asarray(lms, dtype=np.float32), np.asarray(boxes, dtype=np.float32),
                   [f"synthetic_{i:05d}" for i in range(count)])


def make_sets(data_cfg: Mapping[str, Any], num_points: int, *, progress: bool = True) -> tuple[FaceSet, FaceSet]:
    """(train, validation) from the config's ``data`` section; the split is seeded and disjoint."""
    source = data_cfg.get("source", "aflw_pseudo")
    seed = int(data_cfg.get("split_seed", 0))
    if source == "aflw_pseudo":
        from .teacher import teacher_onnx

        faces = aflw_pseudo_set(teacher_onnx(data_cfg["teacher"], int(data_cfg.get("teacher_input_size", 256))),
                                iterations=int(data_cfg.get("label_iterations", 1)),
                                flip=bool(data_cfg.get("label_flip", True)), limit=data_cfg.get("label_limit"),
                                seed=int(data_cfg.get("label_seed", 0)), threads=data_cfg.get("threads"),
                                progress=progress)
    elif source == "aflw_sparse":
        faces = aflw_sparse_set(data_cfg.get("limit"), progress=progress)
    elif source == "synthetic":
        faces = synthetic_set(int(data_cfg.get("count", 64)), num_points, int(data_cfg.get("image_size", 96)), seed)
    else:
        raise ValueError(f"unknown data source {source!r}; known: aflw_pseudo, aflw_sparse, synthetic")
    if faces.landmarks.shape[1] != num_points:
        raise ValueError(f"data source {source!r} gives {faces.landmarks.shape[1]} points, the model predicts {num_points}")
    val_count = int(data_cfg.get("val_count", 1000))
    if not 0 < val_count < len(faces):
        raise ValueError(f"val_count {val_count} must be between 1 and the {len(faces) - 1} faces available minus one")
    order = np.random.default_rng(seed).permutation(len(faces))
    train_idx, val_idx = order[val_count:], order[:val_count]
    if data_cfg.get("train_limit"):
        train_idx = train_idx[: int(data_cfg["train_limit"])]
    return faces.subset(np.sort(train_idx)), faces.subset(np.sort(val_idx))


__all__ = ["AugmentedFaces", "FaceSet", "aflw_pseudo_set", "aflw_sparse_set", "make_sets", "synthetic_set"]
