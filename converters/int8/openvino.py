"""OpenVINO INT8 through NNCF post-training quantization of the OpenVINO model.

NNCF inserts FakeQuantize nodes that the CPU plugin executes as INT8 kernels. By
default it does not quantize model outputs, so the output convolution computes in
INT8 but hands the decoder a float (dequantized, full-resolution) tensor: float level 0
is already "dequantize before the output" here. The naive recipe sets
``quantize_outputs=True`` to show what rounding the heat map itself costs. Float
levels ≥ 1 are passed as ``IgnoredScope`` names (the OpenVINO graph's own node names).
"""
from __future__ import annotations

import contextlib
import sys

from pathlib import Path

import numpy as np

from sdk.metadata import ModelMetadata

from .recipe import Int8Recipe
from .scope import openvino_scope

_ESTIMATORS = {"minmax": "MINMAX", "mean_minmax": "MEAN_MINMAX", "mean_percentile": "MEAN_QUANTILE",
               "percentile": "MEAN_QUANTILE"}


def quantize_openvino(fp32_onnx: str | Path, xml_path: str | Path, calibration: np.ndarray, meta: ModelMetadata,
                      recipe: Int8Recipe) -> tuple[Path, dict, ModelMetadata]:
    """Write an INT8 OpenVINO IR (.xml + .bin, FP32 float parts) with ``meta`` in its rt_info."""
    ov = _openvino()  # first: it keeps OpenVINO's and NNCF's usage telemetry switched off
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from calibration.readers import nncf_dataset

    from ..to_openvino import save_ir, stamp_ir

    if recipe.calibration not in _ESTIMATORS:
        raise ValueError(f"NNCF has no {recipe.calibration!r} range estimator here; use one of {sorted(_ESTIMATORS)}")
    if recipe.io != "float":
        raise ValueError("OpenVINO INT8 models keep float inputs/outputs; int8 I/O is a TFLite option")
    model = ov.convert_model(str(fp32_onnx))
    scope = openvino_scope(model)
    ignored = scope.float_compute(recipe.float_level, recipe.float_head)
    advanced = AdvancedQuantizationParameters(
        quantize_outputs=recipe.quantize_outputs and recipe.float_level == 0,
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, _ESTIMATORS[recipe.calibration]))
    if not recipe.per_channel:
        from nncf.quantization.advanced_parameters import QuantizationParameters

        advanced.weights_quantization_params = QuantizationParameters(per_channel=False)
    data = nncf_dataset(calibration, source_layout=meta.input.layout, layout=meta.input.layout)
    # NNCF draws progress bars on stdout: keep stdout for the converter's own report (--json)
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, data, subset_size=len(calibration), preset=nncf.QuantizationPreset.MIXED,
                                  target_device=nncf.TargetDevice.CPU,
                                  ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
                                  advanced_parameters=advanced)
    meta = stamp_ir(quantized, meta)
    xml_path = Path(xml_path)
    save_ir(quantized, xml_path)
    details = {"float_nodes": ignored, "scope": scope.describe(recipe.float_level, recipe.float_head), "max_level": scope.max_level,
               "quantize_outputs": advanced.quantize_outputs}
    return xml_path, details, meta


class OpenVinoQuantizer:
    """NNCF on the IR converted from the FP32 ONNX: one INT8 IR per recipe (see ``quantize_openvino``)."""

    def __init__(self, fp32_onnx: str | Path, calibration: np.ndarray, meta: ModelMetadata):
        self.fp32_onnx, self.calibration, self.meta = Path(fp32_onnx), calibration, meta

    def quantize(self, recipe: Int8Recipe, target: Path) -> tuple[Path, dict, ModelMetadata]:
        return quantize_openvino(self.fp32_onnx, target, self.calibration, self.meta, recipe)

    def max_level(self) -> int:
        return openvino_max_level(self.fp32_onnx)


def openvino_max_level(fp32_onnx: str | Path) -> int:
    ov = _openvino()
    return openvino_scope(ov.convert_model(str(fp32_onnx))).max_level


def _openvino():
    """``openvino`` imported without telemetry; NNCF then finds no telemetry package either and stays silent."""
    from sdk.backends.openvino import import_openvino

    return import_openvino()
