"""Predictor on ONNX Runtime: batches, boxes off the image edge, real accuracy, and every bad input."""
from __future__ import annotations

import numpy as np
import pytest

from sdk import InputError, MetadataError, ModelLoadError, Predictor
from sdk.metadata import CropRule, InputSpec
from sdk.preprocess import crop_regions, prepare_batch, to_image_coords, to_input_coords, warp_matrices


# --- preprocessing geometry --------------------------------------------------------------
@pytest.mark.parametrize("origin", ["pixel_center", "pixel_corner"])
def test_inverse_mapping_is_exact(origin):
    rng = np.random.default_rng(1)
    boxes = np.array([[10.5, 20, 90, 130], [-30, 5, 60, 70]], dtype=np.float32)
    m = warp_matrices(crop_regions(boxes, CropRule(1.3, "max_wh", 0.05, -0.1, origin)), 96, 96)
    pts = rng.uniform(-50, 200, size=(2, 17, 2))
    back = to_image_coords(to_input_coords(pts, m, origin), m, origin)
    np.testing.assert_allclose(back, pts, atol=1e-3)


def test_warp_puts_an_image_point_where_the_mapping_says():
    """A bright pixel in the image lands on the input pixel predicted by the matrix (pixel-centre convention)."""
    img = np.zeros((300, 300, 3), np.uint8)
    img[140, 170] = 255
    spec = InputSpec(name="input", width=128, height=128, scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    # a region of side exactly 128 px: the warp is a pure shift, so the dot stays one sharp pixel
    tensor, m = prepare_batch(img, [[100, 100, 227, 227]], spec, CropRule(1.0, "max_wh_plus1"))
    u, v = to_input_coords(np.array([[[170.0, 140.0]]]), m, "pixel_center")[0, 0]
    row, col = np.unravel_index(tensor[0, 0].argmax(), tensor.shape[2:])
    assert (col, row) == (round(u), round(v)) and abs(u - col) < 1e-6 and abs(v - row) < 1e-6


# --- Predictor behaviour -------------------------------------------------------------------
def test_several_faces_equal_one_by_one(runtime_onnx, face_image):
    p = Predictor(runtime_onnx, threads=1)
    boxes = np.array([[10, 10, 100, 120], [120, 40, 230, 180], [50, 60, 90, 100]], np.float32)
    together = p.predict(face_image, boxes)
    assert together.landmarks.shape == (3, 98, 2) and together.landmarks.dtype == np.float32
    assert together.scores.shape == (3, 98)
    np.testing.assert_array_equal(together.boxes, boxes)
    for i, box in enumerate(boxes):
        single = p.predict(face_image, box)
        np.testing.assert_allclose(single.landmarks[0], together.landmarks[i], atol=1e-3)


def test_box_partly_outside_matches_padded_image(runtime_onnx, face_image):
    """Off-image parts of the crop are black: same as predicting on a black-padded copy."""
    p = Predictor(runtime_onnx)
    box = np.array([[-40, -25, 80, 90]], np.float32)
    pad = 100
    padded = np.zeros((face_image.shape[0] + 2 * pad, face_image.shape[1] + 2 * pad, 3), np.uint8)
    padded[pad:-pad, pad:-pad] = face_image
    a = p.predict(face_image, box).landmarks
    b = p.predict(padded, box + pad).landmarks - pad
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=0.05)


def test_rgb_option_equals_bgr_of_swapped_image(runtime_onnx, face_image):
    p = Predictor(runtime_onnx)
    box = [[20, 20, 150, 160]]
    a = p.predict(face_image, box).landmarks
    b = p.predict(np.ascontiguousarray(face_image[..., ::-1]), box, color="rgb").landmarks
    np.testing.assert_array_equal(a, b)


# --- real weights on real faces ------------------------------------------------------------
def test_h3r_onnx_accuracy_and_agreement_with_torch(h3r_onnx, h3r_checkpoint, aflw2000):
    from landmarkdata.evaluate import predict_dataset, score_predictions
    from converters.api import load_source
    from converters.torch_backend import TorchBackend

    onnx_pred = predict_dataset(Predictor(h3r_onnx), aflw2000, progress=False)
    source = load_source(h3r_checkpoint, arch="h3r_mobilenetv2", input_size=128)
    torch_pred = predict_dataset(Predictor(TorchBackend(source.torch_module, source.meta)), aflw2000, progress=False)
    assert np.linalg.norm(onnx_pred - torch_pred, axis=-1).mean() <= 0.01
    report = score_predictions(onnx_pred, aflw2000, "wflw98")
    assert report["count"] == len(aflw2000)
    assert 2.0 < report["nme"] < 8.0  # 5.05 % over all 2,000 faces; 24 faces scatter around it


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("image, message", [
    (np.zeros((50, 50, 3), np.float32), "uint8"),
    (np.zeros((50, 50), np.uint8), "HxWx3"),
    (np.zeros((50, 50, 4), np.uint8), "HxWx3"),
    ([[0, 1]], "numpy array"),
])
def test_bad_images(runtime_onnx, image, message):
    with pytest.raises(InputError, match=message):
        Predictor(runtime_onnx).predict(image, [[0, 0, 10, 10]])


@pytest.mark.parametrize("boxes, message", [
    ([[10, 10, 10, 50]], "empty or inverted"),
    ([[50, 10, 20, 40]], "empty or inverted"),
    ([[1, 2, 3]], r"\(faces, 4\)"),
    ([[np.nan, 0, 10, 10]], "NaN"),
    ([[500, 500, 600, 600]], "entirely outside"),
])
def test_bad_boxes(runtime_onnx, face_image, boxes, message):
    with pytest.raises(InputError, match=message):
        Predictor(runtime_onnx).predict(face_image, boxes)


def test_bad_color_option(runtime_onnx, face_image):
    with pytest.raises(InputError, match="color"):
        Predictor(runtime_onnx).predict(face_image, [[0, 0, 50, 50]], color="hsv")


def test_truncated_model_file(runtime_onnx, tmp_path):
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(runtime_onnx.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="truncated, corrupt or not ONNX"):
        Predictor(bad)


def test_missing_and_unknown_model_files(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        Predictor(tmp_path / "nope.onnx")
    odd = tmp_path / "model.caffemodel"
    odd.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="unknown extension"):
        Predictor(odd)


def test_onnx_without_metadata(runtime_onnx, tmp_path):
    onnx = pytest.importorskip("onnx", reason="editing an ONNX file needs the onnx package (workstation stack)")
    model = onnx.load(str(runtime_onnx))
    del model.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    with pytest.raises(MetadataError, match="no edgemark metadata"):
        Predictor(plain)
    # ...and the documented way out: pass the metadata explicitly
    meta = Predictor(runtime_onnx).metadata
    assert Predictor(plain, metadata=meta).predict(np.zeros((64, 64, 3), np.uint8), [[0, 0, 63, 63]]).landmarks.shape == (1, 98, 2)


@pytest.mark.parametrize("boxes", [[], np.zeros((0, 4)), np.zeros(0), ()])
def test_no_boxes_means_no_faces(runtime_onnx, face_image, boxes):
    result = Predictor(runtime_onnx).predict(face_image, boxes)
    assert len(result) == 0 and result.landmarks.shape == (0, 98, 2) and result.boxes.shape == (0, 4)


def test_reused_buffers_leave_earlier_results_alone(runtime_onnx, face_image):
    """The Predictor writes crops and tensors into per-thread buffers it reuses (sdk.preprocess.Scratch):
    a later call with other faces, or another number of them, changes nothing already returned."""
    p = Predictor(runtime_onnx, threads=1)
    boxes = np.array([[40, 30, 160, 170]], np.float32)
    first = p.predict(face_image, boxes)
    kept = first.landmarks.copy(), first.point_confidence.copy()
    p.predict(face_image[::-1].copy(), np.repeat(boxes, 3, axis=0) + [[0, 0, 5, 5]])
    again = p.predict(face_image, boxes)
    np.testing.assert_array_equal(first.landmarks, kept[0])
    np.testing.assert_array_equal(first.point_confidence, kept[1])
    np.testing.assert_array_equal(again.landmarks, kept[0])
