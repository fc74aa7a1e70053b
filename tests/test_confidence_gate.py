"""Per-model face-confidence gates: chosen from samples, stored in metadata, used by predict(image)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.metadata import FaceConfidenceSpec, MetadataError, ModelMetadata
from sdk.predictor import Predictor, PredictorOptions

ROOT = Path(__file__).resolve().parents[1]
PIPNET_LIGHT = ROOT / "training" / "models" / "edgemark_pipnet_light_128_fp32.onnx"
SAMPLE = ROOT / "sdk" / "data" / "sample.jpg"


def test_threshold_separates_faces_from_face_free_boxes():
    from calibration.confidence import ConfidenceSamples, choose_threshold, rates

    rng = np.random.default_rng(0)
    samples = ConfidenceSamples(rng.uniform(0.15, 0.25, 500), rng.uniform(0.0, 0.12, 1000), 500)
    spec = choose_threshold(samples)
    assert spec.informative and 0.12 <= spec.threshold <= 0.15  # a low-scoring model still gets a gate
    assert rates(samples, spec.threshold) == (0.0, 0.0)
    overlapping = ConfidenceSamples(rng.uniform(0.3, 0.9, 500), rng.uniform(0.3, 0.9, 1000), 500)
    assert not choose_threshold(overlapping).informative and choose_threshold(overlapping).threshold is None
    with pytest.raises(ValueError, match="no face was detected"):
        choose_threshold(ConfidenceSamples(np.zeros(0), np.ones(3), 10))


def _with_gate(meta: ModelMetadata, **kw) -> ModelMetadata:
    return meta.replace(face_confidence=FaceConfidenceSpec(**kw))


def test_the_gate_comes_from_the_metadata_unless_the_caller_sets_one(runtime_onnx):
    meta = Predictor(runtime_onnx).metadata
    assert Predictor(runtime_onnx).face_gate == meta.face_confidence.threshold  # the bundled file is calibrated
    assert 0.5 < meta.face_confidence.threshold < 0.8 and meta.face_confidence.measured["faces"] > 300
    from sdk.backends import open_backend

    assert Predictor(open_backend(runtime_onnx, metadata=_with_gate(meta, threshold=0.3))).face_gate == 0.3
    assert Predictor(open_backend(runtime_onnx, metadata=_with_gate(meta))).face_gate == 0.5  # uncalibrated file
    assert Predictor(open_backend(runtime_onnx, metadata=_with_gate(meta, informative=False))).face_gate is None
    assert Predictor(runtime_onnx, options=PredictorOptions(min_face_confidence=0.9)).face_gate == 0.9


def test_face_confidence_spec_is_checked():
    with pytest.raises(MetadataError, match="threshold must be in"):
        FaceConfidenceSpec(threshold=2.0).validate()
    with pytest.raises(MetadataError, match="informative must be"):
        FaceConfidenceSpec(informative="yes").validate()


def test_a_low_scoring_bundled_model_keeps_real_faces_without_boxes():
    """PIPNet-light scores real faces ~0.16: with the fixed 0.5 gate predict(image) found no face."""
    pytest.importorskip("onnxruntime")
    image = cv2.imread(str(SAMPLE))
    calibrated = Predictor(PIPNET_LIGHT)
    assert calibrated.face_gate < 0.2
    assert len(calibrated.predict(image)) == 1
    assert len(Predictor(PIPNET_LIGHT, options=PredictorOptions(min_face_confidence=0.5)).predict(image)) == 0
    assert len(calibrated.predict(np.zeros((240, 320, 3), np.uint8))) == 0


def test_regression_models_leave_the_decision_to_the_detector(runtime_onnx):
    from sdk.backends import open_backend
    from sdk.decoders import DECODERS

    assert not DECODERS["regression"].informative
    meta = Predictor(runtime_onnx).metadata
    uninformative = _with_gate(meta, informative=False, threshold=None)
    p = Predictor(open_backend(runtime_onnx, metadata=uninformative))
    assert p.face_gate is None
    assert len(p.predict(cv2.imread(str(SAMPLE)))) == 1
