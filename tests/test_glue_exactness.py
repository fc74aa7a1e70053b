"""The SDK's glue computes what the plain formulas compute: the NCHW normalisation, the softmax sums."""
from __future__ import annotations

import numpy as np
import pytest

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
