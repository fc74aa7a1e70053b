"""Metrics against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from landmarkdata.metrics import (
    aflw2000_3d_report,
    auc,
    box_normaliser,
    ced_curve,
    diag_normaliser,
    failure_rate,
    interocular_normaliser,
    nme,
    subset_report,
    yaw_bins,
)


def test_nme_two_faces_by_hand():
    # Face 0: GT box 4x1 → sqrt(w*h) = 2; errors 1 (dx) and 0 → mean 0.5 → 0.5/2 = 25 %.
    # Face 1: GT box 3x12 → 6; errors 3-4-5 triangle → 5 and 1 → mean 3 → 3/6 = 50 %.
    gt = np.array([[[0, 0], [4, 1]], [[1, 1], [4, 13]]], np.float32)
    pred = gt + np.array([[[1, 0], [0, 0]], [[3, 4], [0, 1]]], np.float32)
    np.testing.assert_allclose(box_normaliser(gt), [2.0, 6.0])
    out = nme(pred, gt, box_normaliser(gt))
    assert out.shape == (2,)
    np.testing.assert_allclose(out, [25.0, 50.0])
    np.testing.assert_allclose(nme(pred[0], gt[0], 2.0), [25.0])  # single face, scalar normaliser


def test_nme_ignores_nan_ground_truth():
    gt = np.array([[[0, 0], [np.nan, np.nan], [10, 0]]], np.float64)
    pred = np.array([[[0, 1], [500, 500], [10, 3]]], np.float64)  # the unlabelled point is way off
    np.testing.assert_allclose(nme(pred, gt, 10.0), [(1 + 3) / 2 / 10 * 100])
    # Box normaliser skips the NaN point too: box 10x0 would be 0, so use a taller face.
    gt2 = np.array([[[0, 0], [np.nan, np.nan], [4, 9]]])
    np.testing.assert_allclose(box_normaliser(gt2), [6.0])
    # No labelled point at all → NaN (face left out), NaN prediction on a labelled point → inf.
    empty = nme(np.zeros((1, 2, 2)), np.full((1, 2, 2), np.nan), 1.0)
    assert np.isnan(empty).all()
    bad = pred.copy()
    bad[0, 0] = np.nan
    assert np.isinf(nme(bad, gt, 10.0)).all()


def test_normalisers():
    gt = np.zeros((1, 68, 2))
    gt[0, 36] = [10, 20]
    gt[0, 45] = [13, 24]
    np.testing.assert_allclose(interocular_normaliser(gt, "ibug68"), [5.0])
    g98 = np.zeros((2, 98, 2))
    g98[:, 72] = [6, 8]
    np.testing.assert_allclose(interocular_normaliser(g98, "wflw98"), [10.0, 10.0])
    g29 = np.zeros((1, 29, 2))
    g29[0, 9] = [0, 7]
    np.testing.assert_allclose(interocular_normaliser(g29, "cofw29"), [7.0])
    with pytest.raises(ValueError, match="aflw21"):
        interocular_normaliser(np.zeros((1, 21, 2)), "aflw21")
    np.testing.assert_allclose(diag_normaliser([[0, 0, 3, 4], [1, 1, 7, 9]]), [5.0, 10.0])


def test_failure_rate_boundary():
    e = np.array([9.99, 10.0, 10.01, 30.0, np.nan])  # NaN = unscored face, left out
    assert failure_rate(e) == pytest.approx(50.0)  # exactly 10 is not a failure
    assert failure_rate(e, threshold=9.0) == pytest.approx(100.0)
    assert failure_rate([np.inf, 1.0]) == pytest.approx(50.0)
    assert np.isnan(failure_rate([]))


def test_auc_exact_step_ced():
    # CED for errors {2, 6} on [0, 10]: 0 on [0,2), 0.5 on [2,6), 1 on [6,10] → area 0.5*4 + 1*4 = 6.
    assert auc([2.0, 6.0]) == pytest.approx(0.6, abs=1e-12)
    assert auc([0.0, 0.0]) == pytest.approx(1.0)
    assert auc([10.0, 50.0, np.inf]) == pytest.approx(0.0)
    # Threshold 8: 0.5 * (8 - 2) + 0.5 * (8 - 6) = 4 → 4 / 8.
    assert auc([2.0, 6.0, np.nan], threshold=8.0) == pytest.approx(0.5, abs=1e-12)
    # Agrees with a fine numerical integration of the CED curve.
    rng = np.random.default_rng(0)
    e = rng.gamma(3.0, 1.5, size=300)
    x, y = ced_curve(e, 10.0, steps=200001)
    assert auc(e) == pytest.approx(np.trapezoid(y, x) / 10.0, abs=1e-4)


def test_ced_curve():
    x, y = ced_curve([2.0, 6.0], threshold=10.0, steps=11)
    np.testing.assert_allclose(x, np.arange(11))
    np.testing.assert_allclose(y, [0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1])


def test_yaw_binning_edges():
    yaw = np.array([0, 30, -30, 30.001, 60, -60, 60.5, 90, 95, -100, -351.2])
    np.testing.assert_array_equal(yaw_bins(yaw), [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    with pytest.raises(ValueError):
        yaw_bins([np.nan])


def test_aflw2000_3d_report():
    yaw = np.array([10, 30, -45, 60, 95, -100])
    e = np.array([1.0, 3.0, 4.0, 6.0, 12.0, 8.0])
    r = aflw2000_3d_report(e, yaw)
    assert r["count"] == 6
    assert r["nme"] == pytest.approx(34.0 / 6)
    assert r["nme_bins"] == pytest.approx({"0-30": 2.0, "30-60": 5.0, "60-90": 10.0})
    assert r["count_bins"] == {"0-30": 2, "30-60": 2, "60-90": 2}
    assert r["nme_bin_mean"] == pytest.approx((2 + 5 + 10) / 3)
    assert r["fr_10"] == pytest.approx(100 / 6)
    # AUC: mean of max(0, 10 - e) = (9+7+6+4+0+2)/6 = 28/6, / 10.
    assert r["auc_10"] == pytest.approx(28 / 60)
    with pytest.raises(ValueError):
        aflw2000_3d_report(e, yaw[:3])


def test_subset_report():
    e = np.array([2.0, 4.0, 12.0, 1.0])
    subsets = ["common", "common", "challenge", "train"]
    r = subset_report(e, subsets, full=("common", "challenge"))
    assert r["common"]["nme"] == pytest.approx(3.0) and r["common"]["count"] == 2
    assert r["challenge"]["nme"] == pytest.approx(12.0) and r["challenge"]["fr_10"] == pytest.approx(100.0)
    assert r["full"]["nme"] == pytest.approx(6.0) and r["full"]["count"] == 3
    assert subset_report(e, subsets)["full"]["count"] == 4
    # WFLW attribute labels: one face can be in several subsets.
    w = subset_report([1.0, 3.0, 5.0], ["pose,occlusion", "pose", None])
    assert w["pose"]["nme"] == pytest.approx(2.0) and w["occlusion"]["count"] == 1
    assert w["full"]["nme"] == pytest.approx(3.0)
    assert set(w) == {"pose", "occlusion", "full"}
