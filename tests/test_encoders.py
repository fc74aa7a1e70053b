"""Encoder properties (unbiasedness, clipping, masks) and the torch losses built on them."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="workstation stack (pip install './tools[convert]'); the runtime tests run without it")
import torch

from sdk.decoders import decode, decode_shr_local_softargmax, pipnet_neighbour_tables
from training.encoders import (SHR_SIGMA, SHR_TEMPERATURE, encode_h3r, encode_pipnet, encode_shr, h3r_expected_map,
                               pipnet_meanface)
from training.losses import (apply_affine, h3r_loss, local_softargmax, pipnet_loss, pipnet_loss_terms,
                             shr_consistency_loss, shr_heatmap_loss)


def _points(seed: int, n: int, l: int, size: int = 32, stride: float = 4.0, margin: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, size - 1 - margin, (n, l, 2)) * stride


# ----------------------------------------------------------------------------- H3R

def test_h3r_rounding_is_unbiased() -> None:
    """Mean rounded position over K draws equals t within 5 binomial standard errors per axis."""
    k, stride = 4000, 1.0
    t = np.random.default_rng(20).uniform(1, 6, (1, 16, 2))
    maps, valid = encode_h3r(np.repeat(t, k, axis=0), (8, 8), stride, np.random.default_rng(21), dtype=np.uint8)
    assert valid.all() and maps.dtype == np.uint8
    np.testing.assert_array_equal(maps.reshape(k, 16, -1).sum(axis=2), 1)
    rounded, _ = decode("argmax", {"heatmap": maps}, {"stride": stride})
    frac = t[0] - np.floor(t[0])
    se = np.sqrt(frac * (1 - frac) / k)
    assert (np.abs(rounded.mean(axis=0) - t[0]) <= 5 * se + 1e-9).all()
    # and the whole map averages to the analytic expectation
    mean_map = maps.mean(axis=0, dtype=np.float64)
    expected = h3r_expected_map(t, (8, 8), stride)[0]
    se_map = np.sqrt(expected * (1 - expected) / k)
    assert (np.abs(mean_map - expected) <= 5 * se_map + 1e-9).all()


def test_h3r_expected_map_is_bilinear() -> None:
    em = h3r_expected_map(np.array([[[2.25 * 4, 5.5 * 4]]]), (8, 8), 4.0)[0, 0]
    assert em[5, 2] == pytest.approx(0.75 * 0.5) and em[6, 3] == pytest.approx(0.25 * 0.5)
    assert em.sum() == pytest.approx(1.0) and (em > 0).sum() == 4


def test_h3r_outside_points_are_invalid() -> None:
    pts = np.array([[[-1.0, 4.0], [4.0, 40.0], [np.nan, 3.0], [6.0, 7.0]]])   # stride 1, 8×8 map
    maps, valid = encode_h3r(pts, (8, 8), 1.0, np.random.default_rng(0))
    assert valid.tolist() == [[False, False, False, True]]
    assert maps[0, :3].sum() == 0
    # 7.5 rounds up off the map half of the time: then the map is empty and invalid
    _, valid = encode_h3r(np.tile([7.5, 3.0], (2000, 1, 1)), (8, 8), 1.0, np.random.default_rng(1))
    assert 0.4 < valid.mean() < 0.6
    assert h3r_expected_map(np.array([[[7.5, 3.0]]]), (8, 8), 1.0).sum() == pytest.approx(0.5)


# ----------------------------------------------------------------------------- SHR

def test_shr_gaussian_is_continuous() -> None:
    pts = np.array([[[10.3 * 4, 7.8 * 4], [np.nan, 1.0]]])
    maps = encode_shr(pts, (16, 24), 4.0, 1.5)
    assert maps.shape == (1, 2, 16, 24) and maps.dtype == np.float32
    assert maps[0, 1].sum() == 0
    ys, xs = np.mgrid[0:16, 0:24]
    ref = np.exp(-((xs - 10.3) ** 2 + (ys - 7.8) ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(maps[0, 0], ref, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- PIPNet

def test_pipnet_targets_and_border_clipping() -> None:
    stride, grid = 32.0, (8, 8)
    pts = np.array([[[100.0, 50.0], [-20.0, 300.0], [np.nan, np.nan]]])   # second point: left of / below grid
    neighbours = np.array([[1], [0], [0]])
    tg = encode_pipnet(pts, grid, stride, neighbours)
    assert tg["cls"][0, 0, 1, 3] == 1 and tg["cls"][0, 1, 7, 0] == 1 and tg["cls"][0, 2].sum() == 0
    assert tg["offset_x"][0, 0, 1, 3] == pytest.approx(100 / 32 - 3)
    assert tg["offset_y"][0, 1, 7, 0] == pytest.approx(300 / 32 - 7)      # clipped cell: offset leaves [0, 1)
    assert tg["offset_x"][0, 1, 7, 0] == pytest.approx(-20 / 32)
    assert tg["nb_x"][0, 0, 1, 3] == pytest.approx(-20 / 32 - 3)          # j=0's neighbour, at j's cell
    assert tg["nb_y"][0, 1, 7, 0] == pytest.approx(50 / 32 - 7)
    assert tg["nb_mask"][0, 2].sum() == 0 and tg["nb_mask"][0, :2].sum() == 2
    assert tg["valid"].tolist() == [[True, True, False]]
    for key in ("offset_x", "offset_y", "nb_x", "nb_y"):
        assert np.count_nonzero(tg[key]) <= 2
    with pytest.raises(ValueError):
        encode_pipnet(pts, grid, stride, np.array([[1, 2]]))


def test_pipnet_meanface_ignores_nan() -> None:
    lm = np.array([[[0.1, 0.2], [0.5, 0.5]], [[0.3, np.nan], [0.7, 0.9]], [[0.2, 0.4], [np.nan, 0.1]]])
    np.testing.assert_allclose(pipnet_meanface(lm), [[0.15, 0.3], [0.6, 0.7]])
    with pytest.raises(ValueError):
        pipnet_meanface(np.full((2, 3, 2), np.nan))


# ----------------------------------------------------------------------------- losses

def _pipnet_case():
    mf = np.random.default_rng(30).uniform(0.1, 0.9, (6, 2))
    neighbours, _, _ = pipnet_neighbour_tables(mf, 3)
    pts = _points(31, 2, 6, size=8, stride=32.0, margin=0.0)
    pts[1, 2] = np.nan
    tg = encode_pipnet(pts, (8, 8), 32.0, np.asarray(neighbours))
    outputs = {k: torch.tensor(tg[k], requires_grad=True) for k in ("cls", "offset_x", "offset_y", "nb_x", "nb_y")}
    return tg, outputs


def test_pipnet_loss_weights_and_gt_cell_only() -> None:
    tg, outputs = _pipnet_case()
    assert pipnet_loss(outputs, tg).item() == 0.0
    # offsets away from the GT cell are never read by the decoder and cost nothing
    moved = dict(outputs, offset_x=outputs["offset_x"] + 5.0 * (1 - torch.tensor(tg["mask"])))
    assert pipnet_loss(moved, tg).item() == 0.0
    # 0.5 error at every GT offset → L1 0.5; the cls term carries weight 10
    shifted = dict(outputs, nb_y=outputs["nb_y"] + 0.5, cls=outputs["cls"] + 0.1)
    terms = pipnet_loss_terms(shifted, tg)
    assert terms["nb_y"].item() == pytest.approx(0.5) and terms["cls"].item() == pytest.approx(0.01)
    assert pipnet_loss(shifted, tg).item() == pytest.approx(10 * 0.01 + 0.5)
    pipnet_loss(shifted, tg).backward()
    assert outputs["cls"].grad[1, 2].abs().sum() == 0                 # unlabelled landmark: no gradient


def test_h3r_loss_minimum_is_log_expected_map() -> None:
    pts = _points(32, 3, 5)
    expected = h3r_expected_map(pts, (32, 32), 4.0)
    logits = torch.tensor(np.log(expected + 1e-12), requires_grad=True)
    loss = h3r_loss(logits, expected)
    loss.backward()
    assert logits.grad.abs().max().item() < 1e-9
    worse = h3r_loss(logits.detach() + 0.3 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0),
                                                            dtype=logits.dtype), expected)
    assert worse.item() > loss.item()
    # one-hot draws average to the expected-map loss (CE is linear in the target)
    maps, valid = encode_h3r(np.repeat(pts[:1, :1], 3000, axis=0), (32, 32), 4.0, np.random.default_rng(33))
    draws = h3r_loss(logits.detach()[:1, :1].expand(3000, -1, -1, -1), maps, valid)
    assert draws.item() == pytest.approx(h3r_loss(logits.detach()[:1, :1], expected[:1, :1]).item(), rel=0.05)


def test_shr_heatmap_loss_masks_invalid() -> None:
    target = encode_shr(_points(34, 2, 3), (32, 32), 4.0)
    pred = torch.tensor(target)
    pred[0, 1] += 1.0
    assert shr_heatmap_loss(pred, target, np.array([[1, 0, 1], [1, 1, 1]])).item() == 0.0
    assert shr_heatmap_loss(pred, target).item() == pytest.approx(1 / 6)


def test_local_softargmax_matches_numpy_decoder() -> None:
    gen = np.random.default_rng(35)
    maps = encode_shr(_points(36, 3, 7), (32, 32), 4.0, 1.5) + 0.1 * gen.standard_normal((3, 7, 32, 32))
    maps[0, 0, 0, 31] = 5.0                                           # window clipped at the corner
    for t in (0.09, 0.5):
        ref, _ = decode_shr_local_softargmax(maps, stride=4.0, window=5, temperature=t)
        got = local_softargmax(torch.tensor(maps), window=5, temperature=t) * 4.0
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-4)


def test_shr_consistency_loss_undoes_the_transform() -> None:
    stride, size = 4.0, 32
    pts_a = _points(37, 4, 6, margin=8.0)
    ang = np.deg2rad(10.0)
    c, s = np.cos(ang), np.sin(ang)
    fwd = np.array([[c, -s, 6.0], [s, c, -4.0]])                      # original → copy, input pixels
    inv = np.linalg.inv(np.vstack([fwd, [0, 0, 1]]))[:2]              # copy → original
    pts_b = pts_a @ fwd[:, :2].T + fwd[:, 2]
    ha = torch.tensor(encode_shr(pts_a, (size, size), stride, SHR_SIGMA), requires_grad=True)
    hb = torch.tensor(encode_shr(pts_b, (size, size), stride, SHR_SIGMA), requires_grad=True)
    good = shr_consistency_loss(ha, hb, inv, stride=stride)
    assert good.item() < 0.02                                          # both decodings agree to ~SHR precision
    wrong = shr_consistency_loss(ha, hb, np.array([[1.0, 0, 0], [0, 1.0, 0]]), stride=stride)
    assert wrong.item() > 0.5
    wrong.backward()
    assert ha.grad.abs().sum() > 0 and hb.grad.abs().sum() > 0        # Siamese: both branches learn
    # a horizontal flip swaps landmark identities: pass the permutation
    flip = np.array([[-1.0, 0, (size - 1) * stride], [0, 1.0, 0]])    # self-inverse
    perm = np.array([1, 0, 2, 3, 5, 4])
    pts_f = (pts_a @ flip[:, :2].T + flip[:, 2])[:, perm]
    hf = torch.tensor(encode_shr(pts_f, (size, size), stride, SHR_SIGMA))
    assert shr_consistency_loss(ha, hf, flip, stride=stride, permutation=perm).item() < 0.02
    assert shr_consistency_loss(ha, hf, flip, stride=stride).item() > 0.5
    pts = torch.tensor(pts_b)
    np.testing.assert_allclose(apply_affine(pts, inv).numpy(), pts_a, atol=1e-9)
