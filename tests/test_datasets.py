"""Dataset loaders on small real-format files, and AFLW2000-3D on the shared data."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from landmarkdata import paths
from sdk.schemes import map_landmarks
from landmarkdata.datasets import (
    DATASETS,
    DatasetFormatError,
    FaceSample,
    ImageReadError,
    LandmarkDataset,
    box_from_landmarks,
    load_300w_folder,
    load_aflw2000_3d,
    load_aflw_faces,
    load_coco_keypoints,
    load_dataset,
    load_wflw_annotations,
    read_pts,
)
from sdk.schemes import WFLW98_TO_68


def _write_image(path: Path, w: int = 40, h: int = 30, value: int = 0) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    img[:, :, 2] = 200  # red in BGR: checks channel order on the way back
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return img


def _write_pts(path: Path, pts_1based: np.ndarray) -> None:
    lines = ["version: 1", f"n_points:  {len(pts_1based)}", "{"]
    lines += [f"{x:.3f} {y:.3f}" for x, y in pts_1based]
    lines += ["}"]
    path.write_text("\n".join(lines) + "\n")


def _face68(rng: np.random.Generator, offset: float) -> np.ndarray:
    return (rng.uniform(5, 25, size=(68, 2)) + offset).astype(np.float64)


# ------------------------------------------------------------------ paths


def test_shared_root_env_and_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEMARK_SHARED", str(tmp_path))
    assert paths.shared_root() == tmp_path
    (tmp_path / "data").mkdir()
    assert paths.shared_path("data") == tmp_path / "data"
    assert paths.shared_path("nope", required=False) == tmp_path / "nope"
    with pytest.raises(paths.SharedDataMissing, match="EDGEMARK_SHARED") as info:
        paths.shared_path("nope", "x.npy")
    assert str(tmp_path / "nope" / "x.npy") in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.delenv("EDGEMARK_SHARED")
    # unset: the shared/ beside the working directory or one of its parents, not the install location
    (tmp_path / "shared").mkdir()
    (tmp_path / "checkout" / "tests").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "checkout" / "tests")
    assert paths.shared_root() == (tmp_path / "shared").resolve()


# ------------------------------------------------------------------ 300W


@pytest.fixture()
def w300_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "300W"
    gts = {}
    for sub, stem, off in (("helen/testset", "a", 0.0), ("ibug", "b", 3.0)):
        img_path = root / sub / f"{stem}.png"
        _write_image(img_path)
        pts = _face68(rng, off)
        _write_pts(img_path.with_suffix(".pts"), pts)
        gts[f"{sub}/{stem}.png"] = pts - 1.0
    return root, gts


def test_read_pts_is_zero_based(tmp_path):
    p = tmp_path / "x.pts"
    pts = np.arange(136, dtype=np.float64).reshape(68, 2) + 1.0
    _write_pts(p, pts)
    np.testing.assert_allclose(read_pts(p), pts - 1.0, atol=1e-4)
    p.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(DatasetFormatError, match="n_points is 68 but 1"):
        read_pts(p)


def test_load_300w_folder(w300_folder):
    root, gts = w300_folder
    ds = load_300w_folder(root)
    assert isinstance(ds, LandmarkDataset)
    assert ds.scheme == "ibug68" and ds.name == "300w" and len(ds) == 2
    assert ds.names == sorted(gts)
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert isinstance(s, FaceSample)
        assert s.landmarks.dtype == np.float32 and s.landmarks.shape == (68, 2)
        np.testing.assert_allclose(s.landmarks, gts[name], atol=1e-3)
        np.testing.assert_allclose(s.box, [*gts[name].min(0), *gts[name].max(0)], atol=1e-3)
        assert s.box.dtype == np.float32 and s.box.shape == (4,)
        assert s.yaw is None
        img = ds.load_image(i)
        assert img.shape == (30, 40, 3) and img.dtype == np.uint8 and img[0, 0, 2] == 200
    assert [ds[i].subset for i in range(2)] == ["common", "challenge"]
    # Loading the iBUG folder on its own still knows it is the challenge set.
    only = load_300w_folder(root / "ibug")
    assert len(only) == 1 and only[0].subset == "challenge"
    assert load_dataset("300w", root).names == ds.names


def test_300w_unknown_folder_subset_is_none(tmp_path):
    img = tmp_path / "my_faces" / "c.jpg"
    _write_image(img)
    _write_pts(img.with_suffix(".pts"), _face68(np.random.default_rng(1), 0))
    assert load_300w_folder(tmp_path / "my_faces")[0].subset is None


def test_slicing_and_indexing(w300_folder):
    ds = load_300w_folder(w300_folder[0])
    part = ds[1:]
    assert isinstance(part, LandmarkDataset) and len(part) == 1 and part.scheme == "ibug68"
    assert part[0].name == ds[1].name == ds[-1].name
    np.testing.assert_array_equal(part.landmarks[0], ds.landmarks[1])
    with pytest.raises(IndexError):
        ds[2]
    assert [s.name for s in ds] == ds.names
    with pytest.raises(ValueError):  # arrays are read-only: samples cannot corrupt the set
        ds[0].landmarks[0, 0] = 1.0


def test_load_image_errors(tmp_path, w300_folder):
    ds = load_300w_folder(w300_folder[0])
    bad = LandmarkDataset("x", "ibug68", ["bad"], [tmp_path / "bad.png"], ds.landmarks[:1], ds.boxes[:1])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        bad.load_image(0)
    gone = LandmarkDataset("x", "ibug68", ["gone"], [tmp_path / "gone.png"], ds.landmarks[:1], ds.boxes[:1])
    with pytest.raises(FileNotFoundError, match="gone.png"):
        gone.load_image(0)


# ------------------------------------------------------------------ WFLW


def _wflw_line(pts: np.ndarray, box, flags, path: str) -> str:
    nums = [f"{v:.4f}" for v in pts.reshape(-1)] + [str(b) for b in box] + [str(f) for f in flags]
    return " ".join(nums + [path])


def test_load_wflw_annotations(tmp_path):
    rng = np.random.default_rng(2)
    pts_a = rng.uniform(10, 90, size=(98, 2))
    pts_b = rng.uniform(20, 80, size=(98, 2))
    ann = tmp_path / "list_98pt_rect_attr_test.txt"
    ann.write_text("\n".join([
        _wflw_line(pts_a, (5, 6, 95, 97), (1, 0, 0, 0, 1, 0), "51--Dancing/51_Dancing_1.jpg"),
        _wflw_line(pts_b, (15, 16, 85, 87), (0, 0, 0, 0, 0, 0), "51--Dancing/51_Dancing_1.jpg"),
    ]) + "\n")
    ds = load_wflw_annotations(ann, tmp_path / "WFLW_images")
    assert ds.scheme == "wflw98" and len(ds) == 2
    np.testing.assert_allclose(ds[0].landmarks, pts_a, atol=1e-3)
    np.testing.assert_array_equal(ds[0].box, [5, 6, 95, 97])
    assert ds[0].subset == "pose,occlusion" and ds[1].subset is None
    assert ds[0].image_path == tmp_path / "WFLW_images" / "51--Dancing" / "51_Dancing_1.jpg"
    assert ds.names == ["51--Dancing/51_Dancing_1.jpg#0", "51--Dancing/51_Dancing_1.jpg#1"]
    # the official layout without --image-root: WFLW_images beside the annotation folder (once a crash)
    (tmp_path / "WFLW_images").mkdir()
    (tmp_path / "WFLW_annotations").mkdir()
    nested = tmp_path / "WFLW_annotations" / ann.name
    nested.write_text(ann.read_text())
    from landmarkdata.datasets import open_dataset

    found = open_dataset("wflw", nested)
    assert found[0].image_path == tmp_path / "WFLW_images" / "51--Dancing" / "51_Dancing_1.jpg"
    by_lm = load_wflw_annotations(ann, tmp_path, box_source="landmarks")
    np.testing.assert_allclose(by_lm[1].box, [*pts_b.min(0), *pts_b.max(0)], atol=1e-3)
    ann.write_text("1 2 3 img.jpg\n")
    with pytest.raises(DatasetFormatError, match=":1:"):
        load_wflw_annotations(ann, tmp_path)


# ------------------------------------------------------------------ COCO


def test_load_coco_keypoints(tmp_path):
    kp = []
    gt = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)
    for i, (x, y) in enumerate(gt):
        kp += [x, y, 0 if i == 5 else 2]
    data = {
        "images": [{"id": 7, "file_name": "indoor_001.png", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 7, "keypoints": kp, "num_keypoints": 67,
                         "bbox": [10.0, 20.0, 30.0, 40.0], "iscrowd": 0, "category_id": 1}],
        "categories": [{"id": 1, "name": "face"}],
    }
    jp = tmp_path / "face_landmarks_300w_test.json"
    jp.write_text(json.dumps(data))
    _write_image(tmp_path / "images" / "indoor_001.png")
    ds = load_dataset("coco", jp, image_root=tmp_path / "images")
    assert ds.scheme == "ibug68" and len(ds) == 1 and ds.names == ["indoor_001.png"]
    s = ds[0]
    assert np.isnan(s.landmarks[5]).all() and not np.isnan(np.delete(s.landmarks, 5, 0)).any()
    np.testing.assert_array_equal(s.box, [10, 20, 40, 60])
    assert ds.load_image(0).shape == (30, 40, 3)
    lm_box = load_coco_keypoints(jp, tmp_path, box_source="landmarks")[0].box
    np.testing.assert_array_equal(lm_box, [0, 1, 134, 135])
    # Scheme follows the point count.
    for k, name in ((98, "wflw98"), (29, "cofw29"), (19, "aflw19"), (5, "custom5")):
        data["annotations"][0]["keypoints"] = [1.0, 2.0, 2] * k
        jp.write_text(json.dumps(data))
        assert load_coco_keypoints(jp, tmp_path).scheme == name


# ------------------------------------------------------------------ helpers, registry, mapping


def test_box_from_landmarks_ignores_nan():
    pts = np.array([[1, 5], [np.nan, np.nan], [4, 2], [3, 9]], np.float32)
    np.testing.assert_array_equal(box_from_landmarks(pts), [1, 2, 4, 9])
    both = box_from_landmarks(np.stack([pts, pts + 1]))
    assert both.shape == (2, 4) and both.dtype == np.float32
    assert np.isnan(box_from_landmarks(np.full((3, 2), np.nan))).all()


def test_registry_and_unknown():
    assert set(DATASETS) == {"aflw2000-3d", "300w", "wflw", "coco"}
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("300w")


def test_map_landmarks():
    pred = np.random.default_rng(3).normal(size=(2, 98, 2)).astype(np.float32)
    out = map_landmarks(pred, "wflw98", "ibug68")
    assert out.shape == (2, 68, 2)
    np.testing.assert_array_equal(out[:, 36], pred[:, 60])  # outer eye corners
    np.testing.assert_array_equal(out[:, 45], pred[:, 72])
    np.testing.assert_array_equal(out, pred[:, list(WFLW98_TO_68)])
    np.testing.assert_array_equal(map_landmarks(out, "ibug68", "ibug68"), out)
    with pytest.raises(ValueError, match="no landmark mapping"):
        map_landmarks(out, "ibug68", "wflw98")
    with pytest.raises(ValueError, match="no landmark mapping"):
        map_landmarks(np.zeros((1, 21, 2)), "aflw21", "ibug68")
    with pytest.raises(ValueError, match="98"):
        map_landmarks(out, "wflw98", "ibug68")


# ------------------------------------------------------------------ shared data


def _aflw2000_root() -> Path:
    try:
        return paths.shared_path("data", "aflw2000-3d")
    except paths.SharedDataMissing as exc:
        pytest.skip(f"AFLW2000-3D shared data absent: {exc}")


def test_aflw2000_3d_real_data():
    root = _aflw2000_root()
    ds = load_aflw2000_3d()
    assert ds.scheme == "ibug68" and ds.name == "aflw2000-3d" and len(ds) == 2000
    assert ds.landmarks.shape == (2000, 68, 2) and ds.landmarks.dtype == np.float32
    assert ds.boxes.shape == (2000, 4) and ds.boxes.dtype == np.float32
    on_disk = {p.name for p in (root / "images").iterdir()}
    assert set(ds.names) <= on_disk and len(set(ds.names)) == 2000
    assert all(p.parent == root / "images" and p.name == n for p, n in zip(ds.image_paths, ds.names))
    s = ds[0]
    np.testing.assert_array_equal(s.box, [*s.landmarks.min(0), *s.landmarks.max(0)])
    assert s.yaw is not None and s.yaw >= 0 and (ds.yaws >= 0).all()
    assert ds.load_image(0).shape == (450, 450, 3)
    orig = load_aflw2000_3d(labels="original", limit=3)
    assert len(orig) == 3 and not np.array_equal(orig.landmarks, ds.landmarks[:3])
    with pytest.raises(ValueError):
        load_aflw2000_3d(labels="fixed")


def test_aflw2000_3d_env_override_and_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEMARK_AFLW2000", str(tmp_path))
    with pytest.raises(paths.SharedDataMissing, match="names.txt"):
        load_aflw2000_3d()


def test_aflw_faces_real_data():
    try:
        paths.shared_path("data", "aflw-faces")
    except paths.SharedDataMissing as exc:
        pytest.skip(f"AFLW faces shared data absent: {exc}")
    ds = load_aflw_faces(limit=50)
    assert ds.scheme == "aflw21" and len(ds) == 50 and ds.landmarks.shape == (50, 21, 2)
    assert np.isnan(ds.landmarks).any()  # unannotated points stay NaN
    np.testing.assert_array_equal(ds.boxes, box_from_landmarks(ds.landmarks))
