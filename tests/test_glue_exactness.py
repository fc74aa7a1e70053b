"""The SDK's glue computes what the plain formulas compute: normalisation, the softmax sums, the top-k decode."""
from __future__ import annotations

import numpy as np
import pytest

from sdk.decoders import decode_h3r_topk
from sdk.decoders.heatmap import _exp_sums
from sdk.metadata import InputSpec
from sdk.preprocess import normalise


def _spec(color: str) -> InputSpec:
    return InputSpec(name="input", width=16, height=12, color=color, scale=1 / 255, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), layout="nchw", dtype="float32")


@pytest.mark.parametrize("image_color", ["bgr", "rgb"])
@pytest.mark.parametrize("faces", [1, 3])
def test_nchw_normalisation_is_the_per_pixel_formula(image_color, faces):
    rng = np.random.default_rng(faces)
    crops = rng.integers(0, 256, (faces, 12, 16, 3), dtype=np.uint8)
    spec = _spec("rgb")
    order = [2, 1, 0] if image_color == "bgr" else [0, 1, 2]
    scale = np.float32(spec.scale) / np.asarray(spec.std, np.float32)
    offset = np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)
    want = np.stack([crops[..., src].astype(np.float32) * scale[c] - offset[c] for c, src in enumerate(order)], axis=1)
    np.testing.assert_array_equal(normalise(crops, spec, image_color), want)  # bit-identical, not close
    strided = np.zeros((faces, 12, 32, 3), np.uint8)
    strided[:, :, ::2] = crops  # a non-contiguous view of the same pixels
    np.testing.assert_array_equal(normalise(strided[:, :, ::2], spec, image_color), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_sums_match_numpy(dtype):
    rng = np.random.default_rng(0)
    flat = rng.normal(-3, 4, (98, 1024)).astype(dtype)
    want = np.exp(flat.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(_exp_sums(flat), want, rtol=1e-6)
    np.testing.assert_allclose(_exp_sums(flat[:, ::2]), np.exp(flat[:, ::2].astype(np.float64)).sum(axis=1), rtol=1e-6)


def _reference_topk(maps: np.ndarray, stride: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's definition with a full stable sort and float64 softmax: the slow, obvious form."""
    n, l, h, w = maps.shape
    flat = maps.reshape(n * l, h * w).astype(np.float64)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(flat, idx, axis=1)
    peak = flat.max(axis=1, keepdims=True)
    top = np.exp(vals - peak)
    xy = np.stack([(top * (idx % w)).sum(1), (top * (idx // w)).sum(1)], -1) / top.sum(1)[:, None] * stride
    mass = top.sum(1) / np.exp(flat - peak).sum(1)
    return xy.reshape(n, l, 2), mass.reshape(n, l)


@pytest.mark.parametrize("kind", ["float", "quantised", "beyond exp range", "flat"])
@pytest.mark.parametrize("k", [1, 9, 49, 60])
def test_topk_decoder_is_its_definition(kind, k):
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:32, 0:32]
    maps = np.array([-((xx - cx) ** 2 + (yy - cy) ** 2) * 0.3 for cx, cy in rng.uniform(-2, 34, (2 * 20, 2))])
    maps = (maps + rng.normal(0, 0.2, maps.shape)).reshape(2, 20, 32, 32).astype(np.float32)
    if kind == "quantised":  # few levels: ties at the k-th value
        maps = np.round(maps * 2).astype(np.float32) / 2
    elif kind == "beyond exp range":  # |peak| > EXP_SAFE: the shifted softmax
        maps = maps + np.float32(80)
    elif kind == "flat":
        maps = rng.normal(size=maps.shape).astype(np.float32)
    pts, mass = decode_h3r_topk(maps, stride=4.0, topk=k)
    want_pts, want_mass = _reference_topk(maps, 4.0, k)
    assert np.abs(pts - want_pts).max() <= 1e-4
    np.testing.assert_allclose(mass, want_mass, rtol=1e-5)
