"""One-Euro filter, LandmarkTracker on a synthetic moving face, and `edgemark predict VIDEO`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk import Predictor
from sdk.tracking import LandmarkTracker, OneEuroFilter, OneEuroParams, landmark_box


# --- One-Euro filter -----------------------------------------------------------------------
def test_one_euro_params_are_validated():
    with pytest.raises(ValueError):
        OneEuroParams(min_cutoff=0)
    with pytest.raises(ValueError):
        OneEuroParams(beta=-1)


def test_constant_signal_passes_unchanged():
    f = OneEuroFilter(OneEuroParams())
    x = np.array([[10.0, 20.0], [30.0, 40.0]])
    for i in range(10):
        np.testing.assert_allclose(f(x, i / 30), x, atol=1e-5)


def test_filter_reduces_jitter_of_a_still_point():
    rng = np.random.default_rng(0)
    noisy = 100 + rng.normal(0, 1.0, (200, 5, 2))
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    out = np.stack([f(x, i / 30) for i, x in enumerate(noisy)])
    assert np.diff(out[50:], axis=0).std() < 0.3 * np.diff(noisy[50:], axis=0).std()


def test_beta_cuts_lag_on_moving_points():
    t = np.arange(60) / 30
    ramp = np.stack([np.stack([200 * t, 0 * t], -1)[:, None, :]] * 1, 0)[0]  # (60, 1, 2): 200 px/s
    lags = []
    for beta in (0.0, 5.0):
        f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=beta))
        out = np.stack([f(x, ti, scale=100.0) for x, ti in zip(ramp, t)])
        lags.append(float(np.abs(out[-1] - ramp[-1]).max()))
    assert lags[1] < 0.5 * lags[0]


def test_filter_restarts_on_time_going_backwards():
    f = OneEuroFilter()
    f(np.zeros((1, 2)), 1.0)
    np.testing.assert_array_equal(f(np.ones((1, 2)) * 50, 0.5), np.ones((1, 2)) * 50)


def test_landmark_box_uses_the_68_subset():
    pts = np.zeros((3, 2))
    pts[0], pts[1], pts[2] = (0, 0), (10, 20), (100, 100)
    np.testing.assert_array_equal(landmark_box(pts), [0, 0, 100, 100])
    np.testing.assert_array_equal(landmark_box(pts, to68=(0, 1)), [0, 0, 10, 20])


# --- tracker on a synthetic video of a real face -------------------------------------------------
@pytest.fixture(scope="module")
def moving_face(tmp_path_factory, shared_dir):
    from landmarkdata.datasets import load_aflw2000_3d
    from benchmarks.video_bench import make_video, read_frames

    data = load_aflw2000_3d(limit=1)
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    gts = make_video(data.load_image(0), data.landmarks[0], path, frames=24)
    return path, read_frames(path), gts


def _nme(pred, gt):
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme

    return float(nme(map_landmarks(pred[None], "wflw98", "ibug68"), gt[None], box_normaliser(gt[None]))[0])


def test_tracker_follows_the_face_with_one_detection(runtime_onnx, moving_face):
    _, frames, gts = moving_face
    tracker = LandmarkTracker(Predictor(runtime_onnx), redetect_every=100, min_confidence=0.2)
    errs = []
    for i, frame in enumerate(frames):
        r = tracker.update(frame)
        assert len(r) >= 1 and r.extra["detected"] == (i == 0)
        centres = r.landmarks.mean(axis=1)
        best = int(np.argmin(np.linalg.norm(centres - gts[i].mean(axis=0), axis=1)))
        errs.append(_nme(r.landmarks[best], gts[i]))
        assert r.point_confidence.shape == r.scores.shape and np.isfinite(r.landmarks).all()
    assert tracker.detections_run == 1
    assert np.mean(errs) < 6.0 and max(errs) < 10.0


def test_redetect_every_frame_runs_the_detector_every_frame(runtime_onnx, moving_face):
    _, frames, _ = moving_face
    tracker = LandmarkTracker(Predictor(runtime_onnx), redetect_every=1, one_euro=None)
    for frame in frames[:5]:
        r = tracker.update(frame)
        assert r.extra["detected"] and np.array_equal(r.landmarks, r.extra["raw_landmarks"])
    assert tracker.detections_run == 5
    ids = tracker.update(frames[5]).extra["track_ids"]
    assert 0 in ids  # the same face keeps its track id across detections


def test_low_confidence_detection_is_dropped(runtime_onnx):
    """A 'face' box on a flat wall: the landmark model does not believe it, so no track starts."""

    class WallDetector:
        def detect(self, image):
            return np.array([[20, 20, 120, 120]], np.float32), np.ones(1, np.float32)

    frame = np.full((240, 320, 3), 140, np.uint8)
    tracker = LandmarkTracker(Predictor(runtime_onnx), WallDetector(), min_confidence=0.25)
    r = tracker.update(frame)
    assert len(r) == 0 and tracker.tracks == 0 and r.landmarks.shape == (0, 98, 2)


def test_tracker_survives_frame_size_changes_and_blank_frames(runtime_onnx):
    class CornerDetector:
        def detect(self, image):
            h, w = image.shape[:2]
            return np.array([[w - 60, h - 60, w - 1, h - 1]], np.float32), np.ones(1, np.float32)

    tracker = LandmarkTracker(Predictor(runtime_onnx), CornerDetector(), min_confidence=0.0)
    rng = np.random.default_rng(0)
    for shape in [(300, 400, 3), (300, 400, 3), (100, 120, 3), (60, 60, 3), (300, 400, 3)]:
        r = tracker.update(rng.integers(0, 255, shape, dtype=np.uint8))
        assert np.isfinite(r.landmarks).all()
    tracker.reset()
    assert tracker.tracks == 0


def test_tracker_rejects_bad_settings(runtime_onnx):
    p = Predictor(runtime_onnx)
    with pytest.raises(ValueError):
        LandmarkTracker(p, redetect_every=0)
    with pytest.raises(ValueError):
        LandmarkTracker(p, min_confidence=2.0)


# --- CLI on a video ----------------------------------------------------------------------------
def test_cli_predict_video(runtime_onnx, moving_face, tmp_path, capsys):
    import cv2

    from edgemark_cli import main

    path, frames, _ = moving_face
    out, js = tmp_path / "annotated.mp4", tmp_path / "frames.json"
    assert main(["predict", str(path), "--model", str(runtime_onnx), "--out", str(out), "--json", str(js),
                 "--max-frames", "10"]) == 0
    data = json.loads(js.read_text())
    assert len(data["frames"]) == 10 and all(len(f["faces"]) >= 1 for f in data["frames"])
    assert data["frames"][0]["detected"] and not data["frames"][1]["detected"]
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 10
    assert "10 frames" in capsys.readouterr().out


def test_cli_predict_bad_video_and_camera(runtime_onnx, tmp_path, capsys):
    from edgemark_cli import main

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert main(["predict", str(bad), "--model", str(runtime_onnx)]) == 2
    assert "cannot open video" in capsys.readouterr().err
    assert main(["predict", "57", "--model", str(runtime_onnx)]) == 2
    assert "cannot open camera 57" in capsys.readouterr().err


def test_timestamps_must_be_finite_and_increasing(runtime_onnx, face_image):
    from sdk import InputError

    tracker = LandmarkTracker(Predictor(runtime_onnx))
    tracker.update(face_image, timestamp=1.0)
    for bad, message in ((float("nan"), "finite"), (float("inf"), "finite"), (1.0, "increase"), (0.5, "increase"),
                         ("soon", "number")):
        with pytest.raises(InputError, match=message):
            tracker.update(face_image, timestamp=bad)
    tracker.update(face_image, timestamp=1.5)  # a bad call leaves the state as it was
    tracker.reset()
    tracker.update(face_image, timestamp=0.0)  # reset() starts a new clock


def test_a_frame_size_change_detects_at_once(runtime_onnx):
    import cv2

    sample = cv2.imread(str(Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"))
    tracker = LandmarkTracker(Predictor(runtime_onnx), redetect_every=100)
    first = tracker.update(sample)
    second = tracker.update(sample)
    assert first.extra["detected"] and not second.extra["detected"] and len(second) == 1
    moved = cv2.copyMakeBorder(sample, 0, 0, 300, 0, cv2.BORDER_CONSTANT)  # wider frame, face 300 px right
    third = tracker.update(moved)
    assert third.extra["detected"] and len(third) == 1
    assert abs(third.boxes[0, 0] - (second.boxes[0, 0] + 300)) < 25  # not 300 px off: found anew
