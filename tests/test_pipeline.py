"""The real path, stage by stage: what `edgemark bench --pipeline` measures and reports."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.pipeline import frame_640x480, measure_pipeline
from benchmarks.report import PIPELINE_STAGES, pipeline_section


def test_frame_is_640x480_and_keeps_the_aspect():
    frame = frame_640x480(np.full((512, 512, 3), 200, np.uint8))
    assert frame.shape == (480, 640, 3)
    assert (frame[:, :80] == 0).all() and (frame[:, 80:560] == 200).all()


def test_every_stage_is_timed(runtime_onnx):
    from sdk import Predictor

    out = measure_pipeline(Predictor(runtime_onnx, threads=1), runs=3, warmup=1)
    assert set(out["stages_ms"]) == set(PIPELINE_STAGES) and out["faces"] == 1
    assert all(v > 0 for v in out["stages_ms"].values())
    assert out["no_boxes_over_boxes"] == pytest.approx(out["predict_no_boxes_ms"] / out["predict_with_boxes_ms"], rel=1e-2)


def test_report_has_the_pipeline_table():
    data = {"models": [{"id": "a", "name": "m.onnx", "runtime": "onnxruntime", "precision": "fp32", "kind": "edgemark",
                        "pipeline": {"1": {"stages_ms": {k: 1.0 for k in PIPELINE_STAGES}, "predict_no_boxes_ms": 7.0,
                                           "predict_with_boxes_ms": 3.0, "no_boxes_over_boxes": 2.33}}}]}
    text = "\n".join(pipeline_section(data))
    assert "predict(image)` without boxes" in text and "| `m.onnx` | onnxruntime | fp32 | 1 | 1.00 |" in text
    assert text.rstrip().endswith("| 7.00 | 3.00 | 2.33 |")
    assert pipeline_section({"models": [{"name": "x"}]}) == []
