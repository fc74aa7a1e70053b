"""Crop rules (schema 2): round trips, the official conventions by hand, PIL parity, upgrades, parity runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.metadata import OFFICIAL_CROPS, CropRule, InputSpec, MetadataError, ModelMetadata
from sdk.preprocess import (clip_regions, content_spans, crop_regions, map_matrices, prepare_batch, to_image_coords,
                            to_input_coords)
from sdk.resample import antialias_weights, resize_region_antialias, resize_region_antialias_numpy

RULES = {
    "plain_center": CropRule(1.25, "max_wh_plus1"),
    "plain_corner_shifted": CropRule(1.3, "max_wh", 0.05, -0.1, "pixel_corner"),
    "diag": CropRule(1.1, "diag"),
    "per_axis": CropRule(1.2, "per_axis", expand_y=1.4, shift_y=0.1, offset_px=-0.5),
    **{f"official_{k}": v for k, v in OFFICIAL_CROPS.items()},
}
SPEC = InputSpec(name="input", width=96, height=80)


@pytest.mark.parametrize("name", sorted(RULES))
def test_crop_then_map_back_is_the_identity(name):
    rule = RULES[name]
    rng = np.random.default_rng(3)
    boxes = np.array([[40.0, 30.0, 140.0, 150.0], [-20.0, 5.0, 60.0, 70.0], [150.0, 100.0, 199.5, 159.0]])
    shape = (160, 200, 3)
    mats = map_matrices(crop_regions(boxes, rule), rule, shape, SPEC.width, SPEC.height)
    points = rng.uniform(-30, 220, size=(3, 40, 2))
    back = to_image_coords(to_input_coords(points, mats, rule.coordinate_origin), mats, rule.coordinate_origin)
    np.testing.assert_allclose(back, points, atol=2e-4)
    tensor, m2 = prepare_batch(rng.integers(0, 255, shape, dtype=np.uint8), boxes, SPEC, rule)
    assert tensor.shape == (3, 3, 80, 96)
    np.testing.assert_allclose(m2, mats)


@pytest.mark.parametrize("name", sorted(RULES))
def test_box_by_box_geometry_equals_the_array_formula(name):
    """crop_regions / warp_matrices run box by box on Python floats (fast right after a network call):
    the same numbers as the formula on whole arrays, for every rule."""
    from sdk.preprocess import warp_matrices

    rule = RULES[name]
    b = np.random.default_rng(7).uniform(-50, 400, (64, 4))
    b[:, 2:] = b[:, :2] + np.random.default_rng(8).uniform(1, 300, (64, 2))
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = {"max_wh": np.maximum(w, h), "max_wh_plus1": np.maximum(w + 1, h + 1), "diag": np.hypot(w, h)}
    if rule.side_mode == "per_axis":
        sx, sy = w * rule.expand, h * (rule.expand if rule.expand_y is None else rule.expand_y)
    else:
        sx = sy = side[rule.side_mode] * rule.expand
    want = np.stack([(b[:, 0] + b[:, 2]) / 2 + rule.shift_x * sx + rule.offset_px,
                     (b[:, 1] + b[:, 3]) / 2 + rule.shift_y * sy + rule.offset_px, sx, sy], axis=1)
    regions = crop_regions(b, rule)
    np.testing.assert_array_equal(regions, want)
    m = warp_matrices(regions, 96, 80, rule.map_offset_px)
    scale = np.array([96, 80]) / want[:, 2:]
    np.testing.assert_array_equal(m[:, [0, 1], [0, 1]], scale)
    np.testing.assert_array_equal(m[:, :, 2], (want[:, 2:] / 2 - want[:, :2] - rule.map_offset_px) * scale - 0.5)
    assert crop_regions(np.zeros((0, 4)), rule).shape == (0, 4) and warp_matrices(np.zeros((0, 4)), 96, 80).shape == (0, 2, 3)


def test_h3r_official_convention_by_hand():
    """Box [10, 20, 49, 69]: side max(40, 50) x 1.25 = 62.5 about ((10+49+1)/2, (20+69+1)/2) = (30, 45)."""
    rule = OFFICIAL_CROPS["h3r"]
    region = crop_regions(np.array([[10.0, 20.0, 49.0, 69.0]]), rule)
    np.testing.assert_allclose(region, [[29.5, 44.5, 62.5, 62.5]])  # pixel-centre coordinates: corner − 0.5
    # PIL's crop box (left, top, right, bottom) = (-1.25, 13.75, 61.25, 76.25), rounded half-to-even
    assert content_spans(region, rule.rounding).tolist() == [[-1, 14, 61, 76]]
    # decoded u = 64 at S = 128: x = u * s / S + left = 31.25 - 1.25 = 30; y = 31.25 + 13.75 = 45
    mats = map_matrices(region, rule, (100, 100, 3), 128, 128)
    np.testing.assert_allclose(to_image_coords(np.array([[[64.0, 64.0], [0.0, 0.0]]]), mats, rule.coordinate_origin),
                               [[[30.0, 45.0], [-1.25, 13.75]]], atol=1e-5)


def test_pipnet_official_convention_by_hand():
    """Box [2, 20, 50, 78] in a 100x80 image: x 1.2 per axis → [-2.8, 14.2, 54.8, 83.8], clipped to [0, 79]."""
    rule = OFFICIAL_CROPS["pipnet"]
    region = crop_regions(np.array([[2.0, 20.0, 50.0, 78.0]]), rule)
    clipped = clip_regions(region, (80, 100, 3))
    first = clipped[:, :2] - clipped[:, 2:] / 2 + 0.5
    np.testing.assert_allclose(np.c_[first, first + clipped[:, 2:]], [[0.0, 14.2, 54.8, 79.0]], atol=1e-9)
    assert content_spans(clipped, rule.rounding).tolist() == [[0, 14, 54, 79]]  # image[14:79, 0:54]
    # p = (0.5, 0.5) → x = xmin + p * width = 27.4, y = 14.2 + 0.5 * 64.8 = 46.6 (U = p * 256)
    mats = map_matrices(region, rule, (80, 100, 3), 256, 256)
    np.testing.assert_allclose(to_image_coords(np.array([[[128.0, 128.0]]]), mats, rule.coordinate_origin),
                               [[[27.4, 46.6]]], atol=1e-5)


def test_pipnet_detector_variant_moves_the_box_down():
    rule = OFFICIAL_CROPS["pipnet_detector"]
    region = crop_regions(np.array([[10.0, 10.0, 110.0, 110.0]]), rule)
    # width 1.2 w, height h, centre moved down by 0.1 h (the demo's "remove a part of the top")
    np.testing.assert_allclose(region, [[59.5, 69.5, 120.0, 100.0]])


def test_rounded_bilinear_crop_is_cv2_resize_of_the_slice():
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 150, 3), dtype=np.uint8)
    rule = OFFICIAL_CROPS["pipnet"]
    box = np.array([[20.3, 15.7, 100.2, 98.9]])
    spec = InputSpec(name="input", width=64, height=64, color="bgr", scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    tensor, _ = prepare_batch(image, box, spec, rule)
    x0, y0, x1, y1 = content_spans(clip_regions(crop_regions(box, rule), image.shape), "floor")[0]
    expected = cv2.resize(image[y0:y1, x0:x1], (64, 64))
    np.testing.assert_array_equal(tensor[0].transpose(1, 2, 0), expected.astype(np.float32))


@pytest.mark.parametrize("in_size,out_size", [(300, 128), (128, 128), (61, 160), (1000, 96), (7, 3)])
def test_antialias_weights_are_normalised_fixed_point(in_size, out_size):
    w = antialias_weights(in_size, out_size)
    assert w.shape == (out_size, in_size) and (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 2 ** 22, atol=in_size)  # each row rounds to one in 22-bit fixed point
    assert np.array_equal(w, np.round(w))


def test_antialias_resize_matches_pillow_bit_for_bit():
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    for x0, y0, side, size in [(-30, -10, 200, 128), (10, 20, 90, 160), (100, 60, 300, 96), (5, 5, 64, 64)]:
        ref = np.asarray(Image.fromarray(image).crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR))
        np.testing.assert_array_equal(resize_region_antialias(image, x0, y0, x0 + side, y0 + side, size, size), ref)
        # the numpy path a runtime without Pillow takes: the same pixels
        np.testing.assert_array_equal(resize_region_antialias_numpy(image, x0, y0, x0 + side, y0 + side, size, size), ref)


def test_antialias_needs_whole_pixels_and_refuses_regions_far_beyond_the_image():
    from sdk.errors import InputError

    image = np.zeros((50, 50, 3), np.uint8)
    spec = InputSpec(name="input", width=32, height=32)
    with pytest.raises(InputError, match="whole-pixel"):
        prepare_batch(image, [[5, 5, 40, 40]], spec, CropRule(resize="antialias"))
    with pytest.raises(InputError, match="over 16x"):
        prepare_batch(image, [[0, 0, 40, 40000]], spec, OFFICIAL_CROPS["h3r"])


def test_crop_rule_fields_are_checked():
    with pytest.raises(MetadataError, match="crop.rounding"):
        CropRule(rounding="ceil").validate()
    with pytest.raises(MetadataError, match="crop.resize"):
        CropRule(resize="lanczos").validate()
    with pytest.raises(MetadataError, match="expand_y needs side_mode 'per_axis'"):
        CropRule(expand_y=1.1).validate()
    with pytest.raises(MetadataError, match="crop.clip"):
        CropRule(clip="yes").validate()


V1_CROP = {"expand": 1.25, "side_mode": "max_wh_plus1", "shift_x": 0.0, "shift_y": 0.0,
           "coordinate_origin": "pixel_center"}


def _v1_dict(meta: ModelMetadata) -> dict:
    d = meta.to_dict()
    d["schema_version"] = 1
    d["crop"] = dict(V1_CROP)
    return d


def test_schema_1_metadata_reads_as_the_same_geometry():
    from sdk.backends import open_backend
    from sdk.predictor import default_model_path

    meta = open_backend(default_model_path("onnx")).metadata
    old = ModelMetadata.from_dict(_v1_dict(meta))
    assert old.schema_version == 2
    assert old.crop == CropRule(1.25, "max_wh_plus1") and old.crop.is_plain and old.crop.map_offset_px == 0
    with pytest.raises(MetadataError, match="schema version 3 is not supported"):
        ModelMetadata.from_dict({**_v1_dict(meta), "schema_version": 3})


def test_upgrade_rewrites_a_schema_1_file_in_place(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from converters.onnx_io import save_onnx
    from edgemark_cli import main
    from sdk.metadata import METADATA_KEY
    from sdk.predictor import Predictor, default_model_path

    proto = onnx.load(str(default_model_path("onnx")))
    meta = Predictor(default_model_path("onnx")).metadata
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = json.dumps(_v1_dict(meta))
    old = tmp_path / "old_fp32.onnx"
    save_onnx(proto, old)
    image = np.full((200, 200, 3), 128, np.uint8)
    before = Predictor(old).predict(image, [[50, 50, 150, 150]]).landmarks
    assert main(["convert", str(old), "--upgrade"]) == 0
    assert "schema 2" in capsys.readouterr().out
    stored = {p.key: p.value for p in onnx.load(str(old)).metadata_props}[METADATA_KEY]
    assert json.loads(stored)["schema_version"] == 2
    np.testing.assert_array_equal(Predictor(old).predict(image, [[50, 50, 150, 150]]).landmarks, before)


def _shared_or_skip():
    from landmarkdata.paths import shared_root

    root = shared_root()
    if not (root / "weights" / "h3r").is_dir() or not (root / "data" / "aflw2000-3d").is_dir():
        pytest.skip(f"needs ../shared (weights/h3r, data/aflw2000-3d); not found at {root}")
    pytest.importorskip("torch")
    pytest.importorskip("PIL")


def test_h3r_official_checkpoint_matches_the_official_pipeline(tmp_path):
    _shared_or_skip()
    from benchmarks.official_parity import h3r_parity

    row = h3r_parity(128, tmp_path, limit=40)
    for labels in ("reannotated", "original"):
        r = row[labels]
        assert r["mean_diff_px"] <= 0.05 and abs(r["official_nme"] - r["edgemark_nme"]) <= 0.01, r


def test_pipnet_official_layout_matches_the_official_pipeline(tmp_path):
    _shared_or_skip()
    from benchmarks.official_parity import pipnet_parity

    row = pipnet_parity(tmp_path, faces=8)
    assert row["mean_diff_px"] <= 0.05, row
