"""Calibration on a plain folder of the user's own photos: the built-in detector finds the faces."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration import CalibrationSourceError, build_calibration_set
from calibration.sets import resolve_source

SAMPLE = Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"

pytest.importorskip("onnxruntime", reason="the detector and the default model need a runtime")


@pytest.fixture()
def photos(tmp_path) -> Path:
    folder = tmp_path / "my photos"
    folder.mkdir()
    image = cv2.imread(str(SAMPLE))
    shutil.copy(SAMPLE, folder / "a.jpg")
    cv2.imwrite(str(folder / "b.png"), image[:, ::-1])
    cv2.imwrite(str(folder / "c.jpg"), cv2.resize(image, (384, 384)))
    cv2.imwrite(str(folder / "empty.jpg"), np.full((240, 320, 3), 90, np.uint8))  # a photo without a face
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_a_folder_without_boxes_is_detected(photos):
    src = resolve_source(str(photos))
    assert len(src.dataset) == 3 and src.dataset.num_points == 0
    assert "3 faces found by BlazeFaceDetector in 5 photos" in src.name
    assert sorted(src.dataset.names) == ["a.jpg#0", "b.png#0", "c.jpg#0"]
    box = src.dataset.boxes[src.dataset.names.index("a.jpg#0")]
    assert 170 < box[0] < 195 and 250 < box[2] < 285 and 75 < box[1] < 100 and 165 < box[3] < 195


def test_the_identity_follows_the_files(photos):
    before = resolve_source(str(photos)).identity
    os.utime(photos / "a.jpg", ns=(1, 1))
    assert resolve_source(str(photos)).identity != before


def test_calibration_set_from_the_folder(photos, tmp_path, capsys):
    from sdk import Predictor

    meta = Predictor().metadata
    cs = build_calibration_set(meta, str(photos), size=2, val_size=1, cache_dir=tmp_path / "cache", progress=True)
    per_face = (3, meta.input.height, meta.input.width) if meta.input.layout == "nchw" else \
        (meta.input.height, meta.input.width, 3)  # the model's own input layout (the default takes NHWC pixels)
    assert cs.calibration.shape == (2, *per_face) and len(cs.validation) == 1
    assert cs.gt_scheme is None
    assert "3 faces found by BlazeFaceDetector in 5 photos" in capsys.readouterr().err
    with pytest.raises(CalibrationSourceError, match="--calib-size"):
        build_calibration_set(meta, str(photos), size=200, val_size=100, cache_dir=tmp_path / "cache")


def test_a_folder_with_no_face_or_no_photo(tmp_path):
    (tmp_path / "flat").mkdir()
    cv2.imwrite(str(tmp_path / "flat" / "wall.jpg"), np.full((240, 320, 3), 90, np.uint8))
    with pytest.raises(CalibrationSourceError, match="found no face in the 1 photos"):
        resolve_source(str(tmp_path / "flat"))
    (tmp_path / "none").mkdir()
    with pytest.raises(CalibrationSourceError, match="holds no photos"):
        resolve_source(str(tmp_path / "none"))
