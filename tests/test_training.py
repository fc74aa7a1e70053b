"""Training side: exact augmentation geometry, a short real training run, `edgemark train`, resume."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="workstation stack (pip install './tools[convert]'); the runtime tests run without it")
import torch

from sdk.metadata import CropRule, InputSpec
from sdk.preprocess import prepare_batch
from sdk.schemes import get_scheme
from training.augment import (AugmentConfig, GeometricParams, augment, augmentation_matrix, crop_matrix,
                              permute_for_flip, transform_points, warp_sample)

REPO = Path(__file__).resolve().parent.parent
SIZE = 64


def _shared_aflw() -> Path | None:
    from landmarkdata.paths import shared_path

    path = shared_path("data", "aflw-faces", required=False)
    return path if (path / "landmarks21.npy").is_file() else None


# --------------------------------------------------------------------------- geometry

def test_flip_twice_is_identity():
    perm = get_scheme("wflw98").flip_permutation()
    m = augmentation_matrix(GeometricParams(flip=True), SIZE, SIZE)
    np.testing.assert_allclose(m @ m, np.eye(3), atol=1e-12)
    pts = np.random.default_rng(0).uniform(0, SIZE, (98, 2))
    once = permute_for_flip(transform_points(pts, m), perm)
    twice = permute_for_flip(transform_points(once, m), perm)
    np.testing.assert_allclose(twice, pts, atol=1e-12)
    # A mirrored left point lands where its right partner's mirror image is, not on itself.
    assert not np.allclose(once, transform_points(pts, m))


def test_flip_mirrors_pixel_centres_exactly():
    m = augmentation_matrix(GeometricParams(flip=True), SIZE, SIZE)
    np.testing.assert_allclose(transform_points(np.array([[0.0, 3.0], [SIZE - 1.0, 5.0]]), m),
                               [[SIZE - 1.0, 3.0], [0.0, 5.0]])


@pytest.mark.parametrize("angle,scale,tx,ty", [(17.0, 1.0, 0.0, 0.0), (-29.5, 1.08, 3.2, -2.5), (90.0, 0.93, -4.0, 1.0)])
def test_rotate_then_inverse_is_identity(angle, scale, tx, ty):
    pts = np.random.default_rng(1).uniform(-10, SIZE + 10, (50, 2))
    a = augmentation_matrix(GeometricParams(angle_deg=angle, scale=scale, tx=tx, ty=ty), SIZE, SIZE)
    back = transform_points(transform_points(pts, a), np.linalg.inv(a))
    np.testing.assert_allclose(back, pts, atol=1e-4)
    # Pure rotations about the input centre undo each other with the opposite angle.
    r = augmentation_matrix(GeometricParams(angle_deg=angle), SIZE, SIZE)
    r_inv = augmentation_matrix(GeometricParams(angle_deg=-angle), SIZE, SIZE)
    np.testing.assert_allclose(transform_points(transform_points(pts, r), r_inv), pts, atol=1e-4)


def _dots_image(rng: np.random.Generator, count: int, size: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Black image with ``count`` uniquely coloured discs (radius 4) at integer centres."""
    img = np.zeros((size, size, 3), np.uint8)
    pts = np.empty((count, 2))
    colours = np.empty((count, 3), np.uint8)
    placed = 0
    while placed < count:
        p = rng.integers(30, size - 30, 2)
        if placed and np.min(np.linalg.norm(pts[:placed] - p, axis=1)) < 14:
            continue
        c = np.array([40 + (placed * 37) % 200, 40 + (placed * 91) % 200, 40 + (placed * 53) % 200], np.uint8)
        cv2.circle(img, (int(p[0]), int(p[1])), 4, tuple(int(v) for v in c), -1)
        pts[placed], colours[placed] = p, c
        placed += 1
    return img, pts, colours


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_warped_pixel_under_landmark_is_the_original_pixel(seed):
    """Warp a dotted image with crop + random flip/rotation/scale/shift: every transformed landmark
    sits on the disc of the point it now stands for (after the flip permutation)."""
    rng = np.random.default_rng(seed)
    scheme = get_scheme("aflw21")
    img, pts, colours = _dots_image(rng, 21)
    box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    params = GeometricParams(flip=bool(seed % 2), angle_deg=float(rng.uniform(-30, 30)),
                             scale=float(rng.uniform(0.9, 1.1)), tx=float(rng.uniform(-3, 3)), ty=float(rng.uniform(-3, 3)))
    rule = CropRule(expand=1.3, side_mode="max_wh_plus1")
    crop, out, _ = warp_sample(img, pts, box, rule, 96, 96, params, scheme.flip_permutation())
    perm = scheme.flip_permutation() if params.flip else list(range(21))
    checked = 0
    for i, (x, y) in enumerate(out):
        if 2 <= x < 94 and 2 <= y < 94:
            np.testing.assert_array_equal(crop[int(round(y)), int(round(x))], colours[perm[i]])
            checked += 1
    assert checked >= 15


def test_no_augmentation_is_the_predictors_exact_crop():
    """Augmentation off: the training crop is pixel-identical to what the Predictor feeds the model,
    and the labels land in the model's decoded coordinates (corner origin adds ½)."""
    rng = np.random.default_rng(5)
    img, pts, _ = _dots_image(rng, 10)
    box = np.array([40.3, 35.7, 120.2, 131.9], np.float32)
    for rule in (CropRule(1.25, "max_wh_plus1"), CropRule(1.2, "max_wh", coordinate_origin="pixel_corner")):
        spec = InputSpec("input", SIZE, SIZE, color="bgr", mean=(0, 0, 0), std=(1, 1, 1), scale=1.0)
        crop, labels = augment(img, pts, box, rule, SIZE, SIZE, AugmentConfig.off(), rng, list(range(10)))
        tensor, mats = prepare_batch(img, box[None], spec, rule)
        np.testing.assert_array_equal(crop, tensor[0].transpose(1, 2, 0).astype(np.uint8))
        np.testing.assert_allclose(crop_matrix(box, rule, SIZE, SIZE)[:2], mats[0], atol=1e-12)
        from sdk.preprocess import to_input_coords
        np.testing.assert_allclose(labels, to_input_coords(pts[None], mats, rule.coordinate_origin)[0], atol=1e-4)


def test_photometric_augmentation_keeps_labels():
    rng = np.random.default_rng(0)
    img, pts, _ = _dots_image(rng, 5)
    box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    geo_off = AugmentConfig(flip=0.0, rotate_deg=0.0, scale=(1.0, 1.0), translate=0.0, blur=1.0, occlusion=1.0)
    a = augment(img, pts, box, CropRule(), SIZE, SIZE, geo_off, np.random.default_rng(1), list(range(5)))
    b = augment(img, pts, box, CropRule(), SIZE, SIZE, AugmentConfig.off(), np.random.default_rng(1), list(range(5)))
    np.testing.assert_allclose(a[1], b[1])
    assert not np.array_equal(a[0], b[0])


# --------------------------------------------------------------------------- training runs

def _tiny_sets(num_points: int):
    from training.data import aflw_sparse_set, synthetic_set

    if _shared_aflw() is not None and num_points == 21:
        faces = aflw_sparse_set(limit=12, progress=False)
    else:
        faces = synthetic_set(12, num_points, 64, seed=0)
    return faces.subset(range(8)), faces.subset(range(8, 12))


@pytest.mark.parametrize("arch", ["h3r_mobilenetv2", "shr_mobilenetv2", "pipnet_light"])
def test_short_training_lowers_the_loss(arch, tmp_path):
    """A few seeded steps on a handful of real AFLW faces (21 annotated points, NaN kept; synthetic
    dots without shared data) must lower the training loss."""
    from training.trainer import Trainer, merge_config

    num_points = 21 if _shared_aflw() is not None else 5
    train_set, val_set = _tiny_sets(num_points)
    arch_options = {"num_neighbours": 4} if arch == "pipnet_light" else {}
    cfg = merge_config({"name": "t", "arch": arch, "num_points": num_points, "input_size": 48,
                        "arch_options": arch_options,
                        "out_dir": str(tmp_path), "augment": {"enabled": False},
                        "train": {"epochs": 6, "batch_size": 8, "lr": 3e-3, "warmup_steps": 1, "schedule": "constant",
                                  "threads": 2, "log_every": 1, "checkpoint_every": 100, "val_batch": 4}})
    trainer = Trainer(cfg, train_set=train_set, val_set=val_set, progress=False)
    history = trainer.fit()
    losses = [h["train_loss"] for h in history]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert all(np.isfinite(h["val_nme"]) for h in history)
    assert (tmp_path / "model.pth").is_file() and (tmp_path / "best.pth").is_file()


def test_resume_continues_exactly(tmp_path):
    """Stopping after 2 steps and resuming to 4 gives the same weights as 4 steps straight through."""
    from training.data import synthetic_set
    from training.trainer import Trainer, merge_config

    faces = synthetic_set(12, 5, 48, seed=0)
    sets = faces.subset(range(8)), faces.subset(range(8, 12))

    def cfg(out: Path) -> dict:
        return merge_config({"name": "r", "num_points": 5, "input_size": 32, "out_dir": str(out),
                             "augment": {"flip": 0.0},
                             "train": {"epochs": 2, "batch_size": 4, "threads": 2,
                                       "warmup_steps": 1, "checkpoint_every": 100, "val_batch": 4}})

    straight = Trainer(cfg(tmp_path / "a"), train_set=sets[0], val_set=sets[1], progress=False)
    straight.fit()
    assert straight.global_step == 4
    first = Trainer(cfg(tmp_path / "b"), train_set=sets[0], val_set=sets[1], progress=False)
    first.fit(stop_after=3)  # "interrupted" in the middle of epoch 2
    assert first.global_step == 3
    second = Trainer(cfg(tmp_path / "b"), train_set=sets[0], val_set=sets[1], progress=False)
    second.fit(resume=True)
    assert second.global_step == 4
    for (k, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_edgemark_train_cli_runs_the_tiny_config(tmp_path, capsys):
    from edgemark_cli import main

    rc = main(["train", str(REPO / "training" / "configs" / "tiny.yaml"), "--out", str(tmp_path), "--quiet",
               "--max-steps", "3"])
    assert rc == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["epochs"] and np.isfinite(history["best_val_nme"])
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "log.csv").read_text().count("\n") >= 3
    assert "edgemark convert" in capsys.readouterr().out


def test_bad_config_is_a_clear_error(tmp_path):
    from training.trainer import TrainConfigError, merge_config

    with pytest.raises(TrainConfigError, match="unknown config key"):
        merge_config({"epochs": 3})
    with pytest.raises(TrainConfigError, match="unknown augment"):
        merge_config({"augment": {"rotation": 3}})


# --------------------------------------------------------------------------- bundled sample + default model

def test_sample_image_has_a_sidecar_box():
    from sdk.sidecar import sidecar_boxes

    image = REPO / "sdk" / "data" / "sample.jpg"
    boxes = sidecar_boxes(image)
    assert boxes is not None and boxes.shape == (1, 4)
    h, w = cv2.imread(str(image)).shape[:2]
    assert 0 <= boxes[0, 0] < boxes[0, 2] <= w and 0 <= boxes[0, 1] < boxes[0, 3] <= h


def test_default_model_predicts_the_sample_face():
    """The bundled default model + the bundled sample: landmarks on the face, no shared data needed."""
    from sdk.predictor import Predictor, default_model_path
    from sdk.sidecar import sidecar_boxes

    if not default_model_path().is_file():
        pytest.skip("no bundled default model in this checkout")
    image_path = REPO / "sdk" / "data" / "sample.jpg"
    box = sidecar_boxes(image_path)
    pred = Predictor().predict(cv2.imread(str(image_path)), box)
    pts = pred.landmarks[0]
    assert pts.shape == (98, 2)
    x1, y1, x2, y2 = box[0]
    margin = 0.15 * (x2 - x1)
    assert (pts[:, 0] > x1 - margin).all() and (pts[:, 0] < x2 + margin).all()
    assert (pts[:, 1] > y1 - margin).all() and (pts[:, 1] < y2 + margin).all()
    # Left/right order: WFLW point 60 (outer corner of the image-left eye) left of point 72.
    assert pts[60, 0] < pts[72, 0]


def test_sidecar_rules(tmp_path):
    from sdk.errors import InputError
    from sdk.sidecar import sidecar_boxes

    img = tmp_path / "face.jpg"
    img.write_bytes(b"")
    assert sidecar_boxes(img) is None
    (tmp_path / "face.json").write_text(json.dumps({"faces": []}))  # e.g. predict --json output: not a box file
    assert sidecar_boxes(img) is None
    (tmp_path / "face.jpg.json").write_text(json.dumps({"boxes": [[1, 2, 30, 40]]}))  # <image>.json wins
    np.testing.assert_array_equal(sidecar_boxes(img), [[1, 2, 30, 40]])
    (tmp_path / "face.jpg.json").write_text(json.dumps({"boxes": [[1, 2, 3]]}))
    with pytest.raises(InputError, match="boxes"):
        sidecar_boxes(img)
