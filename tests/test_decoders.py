"""Decoder round trips: perfect encodings from ``training.encoders`` must decode back to the points.

Random sub-pixel points (seeded) on a 32×32 map at stride 4, kept >= 3 cells from
the border so every decoder window lies inside the map.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sdk.decoders import DECODERS, DecoderParamError, decode, pipnet_neighbour_tables
from training.encoders import (SHR_SIGMA, SHR_TEMPERATURE, SHR_WINDOW, encode_pipnet, encode_shr,
                               h3r_expected_map)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEMARK_SHARED", REPO.parent / "shared"))
MAP = (32, 32)
STRIDE = 4.0
MARGIN = 3.0


def _points(seed: int, n: int, l: int, size=MAP, stride=STRIDE, margin=MARGIN) -> np.ndarray:
    """(n, l, 2) sub-pixel points in input pixels, >= margin cells inside the map."""
    rng = np.random.default_rng(seed)
    h, w = size
    x = rng.uniform(margin, w - 1 - margin, (n, l))
    y = rng.uniform(margin, h - 1 - margin, (n, l))
    return np.stack([x, y], axis=-1) * stride


def _err(pred: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred.astype(np.float64) - pts, axis=-1)


# ----------------------------------------------------------------------------- PIPNet

def _pipnet_round_trip(meanface: np.ndarray, nb: int, seed: int) -> None:
    l = meanface.shape[0]
    neighbours, rev1, rev2 = pipnet_neighbour_tables(meanface, nb)
    pts = _points(seed, max(1, -(-500 // l)), l)
    tg = encode_pipnet(pts, MAP, STRIDE, np.asarray(neighbours))
    outputs = {k: tg[k] for k in ("cls", "offset_x", "offset_y", "nb_x", "nb_y")}
    params = {"stride": STRIDE, "num_neighbours": nb, "reverse_index1": rev1, "reverse_index2": rev2}
    DECODERS["pipnet"].check_params(params)
    pred, score = decode("pipnet", outputs, params)
    assert pred.shape == pts.shape and pred.dtype == np.float32
    assert _err(pred, pts).max() < 1e-4
    np.testing.assert_array_equal(score, 1.0)


def test_pipnet_round_trip_synthetic_meanface() -> None:
    rng = np.random.default_rng(1)
    _pipnet_round_trip(rng.uniform(0.1, 0.9, (29, 2)), nb=6, seed=2)


def test_pipnet_round_trip_wflw_meanface() -> None:
    path = SHARED / "weights" / "pipnet-meanface" / "WFLW.txt"
    if not path.is_file():
        pytest.skip(f"shared mean face not found at {path} (set EDGEMARK_SHARED)")
    meanface = np.loadtxt(path).reshape(-1, 2)
    assert meanface.shape == (98, 2)
    _pipnet_round_trip(meanface, nb=10, seed=3)


def test_pipnet_merges_neighbour_predictions() -> None:
    """A wrong own offset is averaged with exact neighbour guesses: the merge really reads the nb maps."""
    rng = np.random.default_rng(4)
    mf = rng.uniform(0.1, 0.9, (12, 2))
    neighbours, rev1, rev2 = pipnet_neighbour_tables(mf, 4)
    pts = _points(5, 3, 12)
    tg = encode_pipnet(pts, MAP, STRIDE, np.asarray(neighbours))
    outputs = {k: tg[k] for k in ("cls", "offset_x", "offset_y", "nb_x", "nb_y")}
    outputs["offset_x"] = outputs["offset_x"] + 1.0 * tg["mask"]   # own x guess off by one cell
    params = {"stride": STRIDE, "num_neighbours": 4, "reverse_index1": rev1, "reverse_index2": rev2}
    pred, _ = decode("pipnet", outputs, params)
    r = np.asarray(rev1).shape[1]
    has_rev = np.asarray(rev2)[:, 0] >= 0          # landmarks nobody lists fall back to their own guess
    expected_dx = np.where(has_rev, STRIDE / (1 + r), STRIDE)
    np.testing.assert_allclose(pred[..., 0] - pts[..., 0], np.broadcast_to(expected_dx, pred.shape[:2]), atol=1e-4)
    np.testing.assert_allclose(pred[..., 1], pts[..., 1], atol=1e-4)


# ----------------------------------------------------------------------------- H3R

def test_h3r_topk_round_trip_beats_argmax() -> None:
    pts = _points(6, 5, 100)
    logits = np.log(h3r_expected_map(pts, MAP, STRIDE) + 1e-12).astype(np.float32)
    pred, _ = decode("h3r_topk", {"heatmap": logits}, {"stride": STRIDE, "topk": 9})
    base, _ = decode("argmax", {"heatmap": logits}, {"stride": STRIDE})
    err, err_argmax = _err(pred, pts).mean(), _err(base, pts).mean()
    assert err <= 0.05, err
    assert err * 5 <= err_argmax, (err, err_argmax)


# ----------------------------------------------------------------------------- SHR

def _shr_error(maps: np.ndarray, pts: np.ndarray, temperature: float) -> float:
    pred, _ = decode("shr_local_softargmax", {"heatmap": maps},
                     {"stride": STRIDE, "window": SHR_WINDOW, "temperature": temperature})
    return float(_err(pred, pts).mean())


def test_shr_local_softargmax_round_trip_beats_argmax() -> None:
    pts = _points(7, 5, 100)
    maps = encode_shr(pts, MAP, STRIDE, SHR_SIGMA)
    err = _shr_error(maps, pts, SHR_TEMPERATURE)
    base, _ = decode("argmax", {"heatmap": maps}, {"stride": STRIDE})
    err_argmax = _err(base, pts).mean()
    assert err <= 0.05, err
    assert err * 5 <= err_argmax, (err, err_argmax)


def test_shr_temperature_is_the_searched_optimum() -> None:
    """SHR_TEMPERATURE sits at the minimum of a log-spaced search (documents how it was chosen)."""
    pts = _points(8, 2, 100)
    maps = encode_shr(pts, MAP, STRIDE, SHR_SIGMA)
    grid = np.geomspace(0.03, 0.5, 25)
    errors = np.array([_shr_error(maps, pts, t) for t in grid])
    assert _shr_error(maps, pts, SHR_TEMPERATURE) <= errors.min() * 1.02
    assert 0.5 * SHR_TEMPERATURE < grid[errors.argmin()] < 2 * SHR_TEMPERATURE


# ----------------------------------------------------------------------------- baselines, regression

@pytest.mark.parametrize("kind", ["shr", "h3r"])
def test_argmax_quarter_beats_argmax(kind: str) -> None:
    pts = _points(9, 5, 100)
    maps = encode_shr(pts, MAP, STRIDE, 1.0) if kind == "shr" else h3r_expected_map(pts, MAP, STRIDE)
    quarter, _ = decode("argmax_quarter", {"heatmap": maps}, {"stride": STRIDE})
    plain, _ = decode("argmax", {"heatmap": maps}, {"stride": STRIDE})
    assert _err(quarter, pts).mean() < 0.8 * _err(plain, pts).mean()


def test_regression_rescales() -> None:
    rng = np.random.default_rng(10)
    w, h = 160, 96
    frac = rng.uniform(0, 1, (3, 7, 2))
    pix = frac * np.array([w, h])
    params = {"input_width": w, "input_height": h}
    out, score = decode("regression", {"landmarks": frac.reshape(3, 14)}, params)
    np.testing.assert_allclose(out, pix, rtol=1e-6, atol=1e-4)
    assert out.shape == (3, 7, 2) and score.shape == (3, 7)
    out, _ = decode("regression", {"landmarks": frac * 2 - 1}, {**params, "centered": True})
    np.testing.assert_allclose(out, pix, rtol=1e-6, atol=1e-4)
    out, _ = decode("regression", {"landmarks": pix[..., None, None].reshape(3, 14, 1, 1)},
                    {**params, "normalized": False})
    np.testing.assert_allclose(out, pix, rtol=1e-6, atol=1e-4)


# ----------------------------------------------------------------------------- batches and shapes

def _all_cases() -> list[tuple[str, dict, dict]]:
    pts = _points(11, 4, 9)
    mf = np.random.default_rng(12).uniform(0.1, 0.9, (9, 2))
    neighbours, rev1, rev2 = pipnet_neighbour_tables(mf, 3)
    tg = encode_pipnet(pts, MAP, STRIDE, np.asarray(neighbours))
    noise = np.random.default_rng(13)
    pip = {k: tg[k] + 0.05 * noise.standard_normal(tg[k].shape).astype(np.float32)
           for k in ("cls", "offset_x", "offset_y", "nb_x", "nb_y")}
    maps = encode_shr(pts, MAP, STRIDE, 1.5) + 0.05 * noise.standard_normal((4, 9, *MAP))
    return [
        ("argmax", {"heatmap": maps}, {"stride": STRIDE}),
        ("argmax_quarter", {"heatmap": maps}, {"stride": STRIDE}),
        ("h3r_topk", {"heatmap": maps}, {"stride": STRIDE, "topk": 9}),
        ("shr_local_softargmax", {"heatmap": maps}, {"stride": STRIDE, "window": 5, "temperature": 0.2}),
        ("pipnet", pip, {"stride": STRIDE, "num_neighbours": 3, "reverse_index1": rev1, "reverse_index2": rev2}),
        ("regression", {"landmarks": noise.uniform(-1, 1, (4, 18))}, {"input_width": 64, "input_height": 48,
                                                                      "centered": True}),
    ]


@pytest.mark.parametrize("name,outputs,params", _all_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_batch_equals_one_by_one(name: str, outputs: dict, params: dict) -> None:
    pred, score = decode(name, outputs, params)
    for i in range(pred.shape[0]):
        p1, s1 = decode(name, {k: v[i:i + 1] for k, v in outputs.items()}, params)
        np.testing.assert_array_equal(p1[0], pred[i])
        np.testing.assert_array_equal(s1[0], score[i])
    assert pred.dtype == np.float32 and score.dtype == np.float32 and score.shape == pred.shape[:2]


@pytest.mark.parametrize("name", ["argmax", "argmax_quarter", "h3r_topk", "shr_local_softargmax"])
def test_heatmap_decoders_reject_bad_shapes(name: str) -> None:
    with pytest.raises(ValueError):
        decode(name, {"heatmap": np.zeros((9, 32, 32))}, {"stride": 4})
    with pytest.raises(ValueError):
        decode(name, {"heatmap": np.zeros((1, 2, 9, 32, 32))}, {"stride": 4})


def test_pipnet_and_regression_reject_bad_shapes() -> None:
    outputs = {k: np.zeros((1, 5, 8, 8)) for k in ("cls", "offset_x", "offset_y")}
    outputs.update(nb_x=np.zeros((1, 10, 8, 8)), nb_y=np.zeros((1, 10, 8, 8)))
    mf = np.random.default_rng(14).uniform(0, 1, (5, 2))
    _, rev1, rev2 = pipnet_neighbour_tables(mf, 2)
    params = {"stride": 32, "num_neighbours": 2, "reverse_index1": rev1, "reverse_index2": rev2}
    decode("pipnet", outputs, params)                                          # consistent: fine
    with pytest.raises(ValueError):
        decode("pipnet", outputs, {**params, "num_neighbours": 3})             # nb maps don't match
    with pytest.raises(ValueError):
        decode("pipnet", {**outputs, "offset_x": np.zeros((1, 5, 4, 16))}, params)
    with pytest.raises(ValueError):
        decode("pipnet", {**outputs, "cls": np.zeros((5, 8, 8))}, params)
    with pytest.raises(ValueError):
        decode("pipnet", outputs, {**params, "reverse_index1": rev1[:4], "reverse_index2": rev2[:4]})
    with pytest.raises(ValueError):
        decode("regression", {"landmarks": np.zeros((1, 4, 3))}, {"input_width": 8, "input_height": 8})
    with pytest.raises(ValueError):
        decode("regression", {"landmarks": np.zeros((1, 7))}, {"input_width": 8, "input_height": 8})
    with pytest.raises(DecoderParamError):
        decode("no_such_decoder", {}, {})
