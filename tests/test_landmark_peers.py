"""The benchmark peers: MediaPipe Face Mesh's ROI geometry (hand-computed cases), the 468 → 68 table, and
both peers end to end where their packages are installed (the bench extra; skipped otherwise)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.facemesh import (INPUT_SIZE, MESH_TO_IBUG68, Roi, eye_line_rotation, input_to_image_matrix,
                                 mesh_to_ibug68, roi_from_box, roi_from_mesh)
from benchmarks.landmark_peers import BOX_RULES, available_peers


def test_roi_from_box_is_the_long_side_times_1_5_around_the_centre():
    roi = roi_from_box(np.array([10.0, 20.0, 110.0, 80.0]))
    assert (roi.cx, roi.cy, roi.side, roi.rotation) == (60.0, 50.0, 150.0, 0.0)


@pytest.mark.parametrize("dy, angle", [(0.0, 0.0), (10.0, math.atan2(10, 10)), (-10.0, -math.atan2(10, 10))])
def test_eye_line_rotation_turns_the_roi_with_the_eyes(dy, angle):
    # right eye lower on the image (y grows down): the ROI's x axis turns towards +y
    assert eye_line_rotation(np.array([0.0, 0.0]), np.array([10.0, dy])) == pytest.approx(angle)


def test_input_corners_map_onto_the_rotated_square():
    roi = Roi(100.0, 50.0, 40.0, math.pi / 2)
    m = input_to_image_matrix(roi)
    corner = m[:, :2] @ np.array([0.0, 0.0]) + m[:, 2]
    centre = m[:, :2] @ np.array([INPUT_SIZE / 2] * 2) + m[:, 2]
    along_x = m[:, :2] @ np.array([INPUT_SIZE, 0.0]) + m[:, 2]
    np.testing.assert_allclose(centre, [100.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(corner, [120.0, 30.0], atol=1e-9)  # rotated 90°: the input's x runs down the image
    np.testing.assert_allclose(along_x, [120.0, 70.0], atol=1e-9)


def test_roi_from_mesh_recovers_a_rotated_face():
    rng = np.random.default_rng(0)
    mesh = rng.uniform(-1, 1, (468, 2))
    mesh[33], mesh[263] = (-0.5, -0.2), (0.5, -0.2)  # eye corners level in the face's own frame
    angle = 0.3
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    image_pts = mesh @ rot.T * 50 + np.array([200.0, 150.0])
    roi = roi_from_mesh(image_pts)
    assert roi.rotation == pytest.approx(angle)
    extent = (mesh.max(0) - mesh.min(0)).max() * 50
    assert roi.side == pytest.approx(extent * 1.5)
    centre_face = (mesh.max(0) + mesh.min(0)) / 2
    np.testing.assert_allclose([roi.cx, roi.cy], rot @ centre_face * 50 + [200.0, 150.0], atol=1e-9)


def test_mesh_to_68_table():
    assert len(MESH_TO_IBUG68) == 68 and all(0 <= i < 468 for pair in MESH_TO_IBUG68 for i in pair)
    mesh = np.arange(468 * 2, dtype=np.float32).reshape(1, 468, 2)
    out = mesh_to_ibug68(mesh)
    assert out.shape == (1, 68, 2)
    np.testing.assert_allclose(out[0, 36], mesh[0, 33])                           # outer eye corner: one point
    np.testing.assert_allclose(out[0, 27], (mesh[0, 168] + mesh[0, 6]) / 2)       # nose bridge: mean of two


def _installed(name: str) -> None:
    why = available_peers()[name]
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("rule", BOX_RULES["mediapipe_facemesh"])
def test_facemesh_on_real_faces(aflw2000, rule):
    _installed("mediapipe_facemesh")
    from benchmarks.landmark_peers import open_peer
    from landmarkdata.metrics import box_normaliser, nme

    peer = open_peer("mediapipe_facemesh", rule, threads=1)
    errors = []
    for i in range(6):
        image, gt = aflw2000.load_image(i), aflw2000.landmarks[i][None]
        result = peer.predict(image, None if rule == "pipeline" else aflw2000.boxes[i][None])
        assert result.landmarks.dtype == np.float32 and result.landmarks.shape[1:] == (68, 2)
        if len(result):
            errors.append(float(np.min(nme(result.landmarks, np.repeat(gt, len(result), 0),
                                           np.repeat(box_normaliser(gt), len(result))))))
    assert errors and np.median(errors) < 8.0  # a working face mesh, not a geometry bug (those give > 20 %)
    tracker = peer.tracker()
    frame = aflw2000.load_image(0)
    first, second = tracker.update(frame), tracker.update(frame)
    assert tracker.detections_run == 1 and len(first) == len(second) == 1  # the second frame is tracked


def test_dlib_on_real_faces(aflw2000):
    _installed("dlib_68")
    from benchmarks.landmark_peers import open_peer
    from landmarkdata.metrics import box_normaliser, nme

    peer = open_peer("dlib_68", "gt", threads=1)
    frontal = [i for i in range(len(aflw2000)) if abs(aflw2000.yaws[i]) < 20][:4]
    errors = [float(nme(peer.predict(aflw2000.load_image(i), aflw2000.boxes[i][None]).landmarks,
                        aflw2000.landmarks[i][None], box_normaliser(aflw2000.landmarks[i][None]))[0]) for i in frontal]
    assert np.median(errors) < 6.0
    assert peer.tracker() is None
