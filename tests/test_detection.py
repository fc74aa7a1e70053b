"""Face detection: the numpy Haar evaluator, the box adapter, Predictor without boxes, and the
boxes-given path staying exactly what it was."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from sdk import InputError, ModelLoadError, Predictor, PredictorOptions
from sdk.decoders import decode
from sdk.detection import (IDENTITY_ADAPTER, BoxAdapter, CascadeDetector, FaceDetector, YuNetDetector,
                           box_adapter_of, find_cascade)
from sdk.haar import CascadeFormatError, HaarCascade, group_rectangles
from sdk.outputs import outputs_by_role
from sdk.preprocess import prepare_batch, to_image_coords


# --- box adapter ---------------------------------------------------------------------------
def test_box_adapter_apply_then_invert_is_identity():
    a = BoxAdapter(scale_x=0.9, scale_y=1.2, shift_x=0.05, shift_y=0.1)
    boxes = np.array([[10, 20, 110, 140], [-5, 3, 40, 30.5]], np.float32)
    np.testing.assert_allclose(a.invert(a.apply(boxes)), boxes, atol=1e-4)
    out = a.apply(boxes[:1])[0]
    assert np.isclose(out[2] - out[0], 90) and np.isclose(out[3] - out[1], 144)
    assert np.isclose((out[0] + out[2]) / 2, 60 + 5) and np.isclose((out[1] + out[3]) / 2, 80 + 12)


def test_box_adapter_fit_recovers_known_parameters_despite_outliers():
    rng = np.random.default_rng(0)
    truth = BoxAdapter(scale_x=0.95, scale_y=1.1, shift_x=-0.02, shift_y=0.12)
    xy = rng.uniform(0, 500, (60, 2))
    side = rng.uniform(40, 200, (60, 1))
    det = np.concatenate([xy, xy + side], axis=1)
    target = truth.apply(det)
    target[:5] += 80  # a few wrong pairings must not move the medians much
    fitted = BoxAdapter.fit(det, target, mode="box")
    for name in ("scale_x", "scale_y", "shift_x", "shift_y"):
        assert abs(getattr(fitted, name) - getattr(truth, name)) < 0.02, name
    # crop mode: the square crop's side follows the longer side, both axes scaled alike
    crop = BoxAdapter.fit(det, target, mode="crop")
    assert crop.scale_x == crop.scale_y and abs(crop.scale_x - 1.1) < 0.02
    assert abs(crop.shift_x - truth.shift_x) < 0.02 and abs(crop.shift_y - truth.shift_y) < 0.02


def test_box_adapter_rejects_bad_parameters():
    with pytest.raises(ValueError):
        BoxAdapter(scale_x=0)
    with pytest.raises(ValueError):
        BoxAdapter(shift_x=float("nan"))
    with pytest.raises(ValueError):
        BoxAdapter.fit(np.zeros((0, 4)), np.zeros((0, 4)))


# --- Haar cascade evaluator ----------------------------------------------------------------
def test_group_rectangles_merges_neighbours_and_drops_loners():
    cluster = np.array([[100, 100, 50, 50], [102, 101, 50, 50], [99, 103, 52, 52], [101, 99, 49, 49]])
    loner = np.array([[300, 300, 40, 40]])
    rects, counts = group_rectangles(np.concatenate([cluster, loner]), min_neighbors=3)
    assert len(rects) == 1 and counts[0] == 4
    assert np.abs(rects[0] - cluster.mean(axis=0)).max() <= 1
    assert len(group_rectangles(cluster, min_neighbors=4)[0]) == 0  # needs MORE than min_neighbors


def test_group_rectangles_removes_small_cluster_inside_big_one():
    big = np.array([[100, 100, 100, 100]] * 6)
    small = np.array([[130, 130, 30, 30]] * 4)
    rects, counts = group_rectangles(np.concatenate([big, small]), min_neighbors=2)
    assert rects.tolist() == [[100, 100, 100, 100]] and counts.tolist() == [6]


def test_shipped_cascade_is_found_and_keeps_its_licence():
    path = find_cascade()
    assert path.is_file()
    head = gzip.decompress(path.read_bytes())[:4000].decode() if path.suffix == ".gz" else path.read_text()[:4000]
    assert "Intel License Agreement" in head
    casc = HaarCascade.load(path)
    assert (casc.width, casc.height) == (24, 24) and len(casc.stages) == 25


@pytest.mark.parametrize("xml, message", [
    ("<opencv_storage></opencv_storage>", "no <cascade>"),
    ("<opencv_storage><cascade><stageType>BOOST</stageType><featureType>LBP</featureType></cascade></opencv_storage>",
     "only HAAR"),
    ("not xml at all", "cannot read cascade"),
])
def test_bad_cascade_files(tmp_path, xml, message):
    path = tmp_path / "c.xml"
    path.write_text(xml)
    with pytest.raises(CascadeFormatError, match=message):
        HaarCascade.load(path)


def test_missing_cascade_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        CascadeDetector(tmp_path / "none.xml", engine="numpy")


def test_cascade_finds_nothing_on_flat_or_noise_images():
    det = CascadeDetector(engine="numpy")
    for img in (np.full((240, 320, 3), 128, np.uint8),
                np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)):
        boxes, scores = det.detect(img)
        assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_cascade_accepts_gray_and_rejects_float():
    det = CascadeDetector(engine="numpy")
    assert det.detect(np.full((60, 60), 10, np.uint8))[0].shape == (0, 4)
    with pytest.raises(InputError):
        det.detect(np.zeros((60, 60, 3), np.float32))


def test_cascade_finds_real_frontal_faces(aflw2000):
    from sdk.boxes import iou

    det = CascadeDetector(engine="numpy")
    frontal = [i for i in range(len(aflw2000)) if aflw2000.yaws[i] < 20][:6]
    assert len(frontal) >= 4
    found = 0
    for i in frontal:
        boxes, scores = det.detect(aflw2000.load_image(i))
        assert boxes.dtype == np.float32 and scores.shape == (len(boxes),)
        found += bool(len(boxes)) and iou(boxes, aflw2000.boxes[i]).max() >= 0.3
    assert found >= len(frontal) - 1


def test_detect_then_refine_is_nearly_as_good_as_ground_truth_boxes(runtime_onnx, aflw2000):
    """Detection (adapter) + one landmark re-crop lands close to the NME of ground-truth boxes."""
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme

    frontal = [i for i in range(len(aflw2000)) if aflw2000.yaws[i] < 30][:8]
    from sdk.boxes import iou

    det = CascadeDetector(engine="numpy")
    found = [i for i in frontal if (lambda b: len(b) and iou(b, aflw2000.boxes[i]).max() >= 0.3)(
        det.detect(aflw2000.load_image(i))[0])]  # faces the detector really found (not a false positive)
    assert len(found) >= 5
    errs = {0: [], 1: [], "gt": []}
    for refine in (0, 1):
        p = Predictor(runtime_onnx, options=PredictorOptions(refine=refine))
        for i in found:
            gt = aflw2000.landmarks[i][None]
            r = p.predict(aflw2000.load_image(i))
            centres = r.landmarks.mean(axis=1)
            best = int(np.argmin(np.linalg.norm(centres - gt[0].mean(axis=0), axis=1)))
            errs[refine].append(nme(map_landmarks(r.landmarks[best][None], "wflw98", "ibug68"), gt, box_normaliser(gt))[0])
            if refine == 1:
                g = p.predict(aflw2000.load_image(i), aflw2000.boxes[i][None]).landmarks
                errs["gt"].append(nme(map_landmarks(g, "wflw98", "ibug68"), gt, box_normaliser(gt))[0])
    assert np.mean(errs[1]) < np.mean(errs["gt"]) + 0.5
    assert np.mean(errs[1]) < 6.0 and np.mean(errs[0]) < 8.0


# --- YuNet: only the error paths can run offline -----------------------------------------------
def test_yunet_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        YuNetDetector(tmp_path / "face_detection_yunet.onnx")


def test_yunet_corrupt_file(tmp_path):
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(ModelLoadError):
        YuNetDetector(bad)


# --- Predictor without boxes -------------------------------------------------------------------
class FixedDetector:
    """A stand-in detector with known output, to check how Predictor consumes the protocol."""

    def __init__(self, boxes, scores, adapter=None):
        self.boxes, self.scores = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)
        if adapter is not None:
            self.box_adapter = adapter
        self.calls = 0

    def detect(self, image_bgr):
        self.calls += 1
        return self.boxes, self.scores


def test_fixed_detector_satisfies_protocol():
    assert isinstance(FixedDetector([], []), FaceDetector)
    assert box_adapter_of(FixedDetector([], [])) is IDENTITY_ADAPTER


def test_predict_without_boxes_uses_detector_and_its_adapter(runtime_onnx, face_image):
    adapter = BoxAdapter(scale_x=1.1, scale_y=1.2, shift_x=0.0, shift_y=0.1)
    det = FixedDetector([[20, 30, 120, 130], [130, 40, 200, 110]], [5, 3], adapter)
    p = Predictor(runtime_onnx, options=PredictorOptions(detector=det, refine=0, min_face_confidence=0.0))
    result = p.predict(face_image)
    assert det.calls == 1 and len(result) == 2
    np.testing.assert_allclose(result.boxes, adapter.apply(det.boxes))
    np.testing.assert_array_equal(result.extra["detector_boxes"], det.boxes)
    given = p.predict(face_image, adapter.apply(det.boxes))
    np.testing.assert_array_equal(result.landmarks, given.landmarks)


def test_refine_recrops_from_the_landmarks(runtime_onnx, face_image):
    from sdk.detection import landmark_box

    det = FixedDetector([[20, 30, 120, 130]], [5])
    first = Predictor(runtime_onnx, options=PredictorOptions(detector=det, refine=0, min_face_confidence=0)).predict(face_image)
    refined = Predictor(runtime_onnx, options=PredictorOptions(detector=det, min_face_confidence=0)).predict(face_image)
    assert PredictorOptions().refine == 1
    box = landmark_box(first.landmarks[0], Predictor(runtime_onnx).metadata.scheme.to68)
    np.testing.assert_allclose(refined.boxes[0], box, atol=1e-4)
    np.testing.assert_array_equal(refined.extra["detector_boxes"], det.boxes)


def test_detections_the_landmark_model_does_not_believe_are_dropped(runtime_onnx, aflw2000):
    """A real face and a 'face' on a flat patch: only the real one comes back; the other is reported."""
    i = next(i for i in range(len(aflw2000)) if aflw2000.yaws[i] < 20)
    image = aflw2000.load_image(i).copy()
    image[:100, :100] = 128
    det = FixedDetector([aflw2000.boxes[i], [5, 5, 95, 95]], [9, 3])
    r = Predictor(runtime_onnx, detector=det).predict(image)
    assert len(r) == 1 and r.face_confidence[0] >= 0.5
    np.testing.assert_array_equal(r.extra["detector_boxes"], det.boxes[:1])
    np.testing.assert_array_equal(r.extra["rejected_detections"], det.boxes[1:])
    assert r.extra["rejected_confidence"][0] < 0.5
    everything = Predictor(runtime_onnx, options=PredictorOptions(detector=det, min_face_confidence=0)).predict(image)
    assert len(everything) == 2


def test_no_face_gives_empty_prediction(runtime_onnx, face_image):
    p = Predictor(runtime_onnx, detector=FixedDetector(np.zeros((0, 4)), []))
    r = p.predict(face_image)
    assert r.landmarks.shape == (0, 98, 2) and r.scores.shape == (0, 98) and r.boxes.shape == (0, 4)
    assert r.point_confidence.shape == (0, 98) and r.face_confidence.shape == (0,) and len(r) == 0
    # the default detector on a flat image: also empty, not an error
    assert len(Predictor(runtime_onnx).predict(np.full((120, 160, 3), 90, np.uint8))) == 0
    # an explicit (0, 4) box array too
    assert Predictor(runtime_onnx).predict(face_image, np.zeros((0, 4), np.float32)).landmarks.shape == (0, 98, 2)


def test_garbage_detector_boxes_are_dropped(runtime_onnx, face_image):
    det = FixedDetector([[np.nan, 0, 10, 10], [50, 50, 40, 60], [10, 10, 90, 90]], [1, 1, 1])
    r = Predictor(runtime_onnx, options=PredictorOptions(detector=det, min_face_confidence=0)).predict(face_image)
    assert len(r) == 1 and np.isfinite(r.landmarks).all()


def test_rgb_input_is_detected_as_bgr(runtime_onnx, face_image):
    seen = []

    class Spy(FixedDetector):
        def detect(self, image_bgr):
            seen.append(image_bgr.copy())
            return super().detect(image_bgr)

    p = Predictor(runtime_onnx, options=PredictorOptions(detector=Spy([[10, 10, 90, 90]], [1]), min_face_confidence=0))
    p.predict(np.ascontiguousarray(face_image[..., ::-1]), color="rgb")
    np.testing.assert_array_equal(seen[0], face_image)


def test_predict_without_boxes_on_real_photo(runtime_onnx, aflw2000):
    from sdk.schemes import map_landmarks
    from landmarkdata.metrics import box_normaliser, nme

    p = Predictor(runtime_onnx)
    i = next(i for i in range(len(aflw2000)) if aflw2000.yaws[i] < 15)
    r = p.predict(aflw2000.load_image(i))
    assert len(r) >= 1
    gt = aflw2000.landmarks[i][None]
    centres = r.landmarks.mean(axis=1)
    best = int(np.argmin(np.linalg.norm(centres - gt[0].mean(axis=0), axis=1)))
    err = nme(map_landmarks(r.landmarks[best][None], "wflw98", "ibug68"), gt, box_normaliser(gt))[0]
    assert err < 6.0
    assert r.face_confidence[best] > 0.3


# --- the boxes-given path is unchanged -----------------------------------------------------------
def test_boxes_given_path_matches_the_original_pipeline(runtime_onnx, face_image):
    """Same numbers as the pipeline before detection/confidence existed: warp → run → decode → unwarp."""
    p = Predictor(runtime_onnx)
    boxes = np.array([[10, 10, 100, 120], [120, 40, 230, 180]], np.float32)
    meta = p.metadata
    tensor, m = prepare_batch(face_image, boxes, meta.input, meta.crop)
    pts, scores = decode(meta.decoder.name, outputs_by_role(meta, p.backend.run(tensor)), meta.decoder.params)
    expected = to_image_coords(pts, m, meta.crop.coordinate_origin)
    r = p.predict(face_image, boxes)
    if p.backend.map_input is None:
        np.testing.assert_array_equal(r.landmarks, expected)
    else:  # the graph maps back in float32 (converters.graph_map_back): within two float32 steps of the image size
        assert (np.abs(r.landmarks - expected) <= 2 * np.spacing(np.float32(max(face_image.shape)))).all()
    np.testing.assert_array_equal(r.scores, scores)
    np.testing.assert_array_equal(r.boxes, boxes)
    assert r.extra == {} and p.options.flip_test is False


# --- accuracy mode: flip test ------------------------------------------------------------------
def test_flip_test_is_mirror_symmetric(runtime_onnx, face_image):
    """Flip-averaged landmarks of a mirrored image are the mirrored landmarks (exact geometry check
    of the un-mirroring and the point permutation)."""
    p = Predictor(runtime_onnx)
    w = face_image.shape[1]
    box = np.array([[30, 25, 150, 160]], np.float32)
    mirror_box = np.array([[w - 1 - box[0, 2], box[0, 1], w - 1 - box[0, 0], box[0, 3]]], np.float32)
    a = p.predict(face_image, box, flip_test=True)
    b = p.predict(np.ascontiguousarray(face_image[:, ::-1]), mirror_box, flip_test=True)
    perm = p.metadata.scheme.flip_permutation()
    back = b.landmarks[:, perm].copy()
    back[..., 0] = w - 1 - back[..., 0]
    np.testing.assert_allclose(a.landmarks, back, atol=0.05)
    np.testing.assert_allclose(a.point_confidence, b.point_confidence[:, perm], atol=1e-3)
    # and it is off by default
    assert not np.array_equal(p.predict(face_image, box).landmarks, a.landmarks)
    np.testing.assert_array_equal(p.predict(face_image, box).landmarks, p.predict(face_image, box, flip_test=False).landmarks)


def test_flip_test_does_not_hurt_real_accuracy(runtime_onnx, aflw2000):
    from landmarkdata.evaluate import evaluate

    plain = evaluate(Predictor(runtime_onnx), aflw2000, progress=False)["nme"]
    flipped = evaluate(Predictor(runtime_onnx, flip_test=True), aflw2000, progress=False)["nme"]
    assert flipped < plain + 0.05


# --- the two cascade engines agree ---------------------------------------------------------------
def test_opencv_engine_needs_opencv4():
    import cv2

    if hasattr(cv2, "CascadeClassifier"):
        assert CascadeDetector(engine="opencv").engine == "opencv"
    else:
        with pytest.raises(ModelLoadError, match="CascadeClassifier is not available"):
            CascadeDetector(engine="opencv")
        assert CascadeDetector(engine="auto").engine == "numpy"


def test_numpy_and_opencv_engines_give_identical_faces(aflw2000):
    """Only where OpenCV 4 is installed (OpenCV 5 has no CascadeClassifier); checked once on 40
    AFLW2000-3D photos with OpenCV 4.14: identical boxes and neighbour counts on all 40."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip(f"OpenCV {cv2.__version__} has no CascadeClassifier to compare with")
    a, b = CascadeDetector(engine="opencv"), CascadeDetector(engine="numpy")
    for i in range(6):
        image = aflw2000.load_image(i)
        ra, rb = a.detect(image), b.detect(image)
        np.testing.assert_array_equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[1], rb[1])
