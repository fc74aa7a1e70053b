"""ONNX Runtime static INT8 (QDQ): quant_pre_process + quantize_static, per-channel weights.

QDQ keeps the graph float at its edges (QuantizeLinear/DequantizeLinear pairs around
each quantized op); ONNX Runtime's CPU provider fuses DQ→Conv→Q into integer kernels.
Nodes of the recipe's float tail are passed as ``nodes_to_exclude``: they get
dequantized inputs and run in float, so the output the decoder reads is never rounded
to an INT8 grid.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from sdk.metadata import ModelMetadata

from .recipe import Int8Recipe
from .scope import onnx_scope

_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy", "distribution": "Distribution"}


class OrtQuantizer:
    """Pre-processes the FP32 model once and caches calibration ranges per method across recipes.

    ONNX Runtime's calibrator collects ranges for every quantizable tensor whatever is
    excluded later, so one calibration serves every float level of a search.
    """

    def __init__(self, fp32_path: str | Path, calibration: np.ndarray, meta: ModelMetadata,
                 workdir: str | Path | None = None):
        self.fp32_path, self.calibration, self.meta = Path(fp32_path), calibration, meta
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="edgemark-ort-int8-")
        self.workdir = Path(workdir) if workdir is not None else Path(self._tmp.name)
        self._pre: Path | None = None
        self._scope = None

    def preprocessed(self) -> Path:
        if self._pre is None:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            # Shape inference + basic graph optimisation: the quantizer needs shapes, and
            # ORT's documentation asks for it; it does not change what the network computes.
            pre = self.workdir / "ort_pre.onnx"
            quant_pre_process(str(_at_least_opset(self.fp32_path, self.workdir, MIN_QDQ_OPSET)), str(pre),
                              skip_symbolic_shape=False)
            self._pre = pre
        return self._pre

    def scope(self):
        if self._scope is None:
            import onnx

            self._scope = onnx_scope(onnx.load(str(self.preprocessed())))
        return self._scope

    def max_level(self) -> int:
        return onnx_max_level(self.fp32_path)

    def quantize(self, recipe: Int8Recipe, out_path: str | Path) -> tuple[Path, dict, ModelMetadata]:
        """Write an INT8 QDQ ONNX model with ``self.meta`` embedded; return (path, recipe details, metadata)."""
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from calibration.readers import ort_reader

        from ..onnx_io import embed_metadata, save_onnx

        if recipe.calibration not in _METHODS:
            raise ValueError(f"ONNX Runtime has no {recipe.calibration!r} calibration; use one of {sorted(_METHODS)}")
        if recipe.io != "float":
            raise ValueError("ONNX Runtime QDQ models keep float inputs/outputs; int8 I/O is a TFLite option")
        scope = self.scope()
        exclude = scope.float_nodes(recipe.float_level, recipe.float_head)
        extra = {"CalibPercentile": float(recipe.percentile)} if recipe.calibration == "percentile" else {}
        act = QuantType.QUInt8 if recipe.activation_type == "uint8" else QuantType.QInt8
        tag = f"{recipe.calibration}{recipe.percentile:g}" if recipe.calibration == "percentile" else recipe.calibration
        q = self.workdir / "ort_q.onnx"
        meta = self.meta
        reader = ort_reader(self.calibration, meta.input.name, source_layout=meta.input.layout,
                            layout=meta.input.layout)
        quantize_static(str(self.preprocessed()), str(q), reader, quant_format=QuantFormat.QDQ,
                        per_channel=recipe.per_channel, activation_type=act, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude or None,
                        calibrate_method=getattr(CalibrationMethod, _METHODS[recipe.calibration]),
                        extra_options=extra, calibration_cache_path=self.workdir / f"ranges_{tag}.json")
        save_onnx(embed_metadata(onnx.load(str(q)), meta), out_path)
        q.unlink(missing_ok=True)
        details = {"float_nodes": scope.float_compute(recipe.float_level, recipe.float_head),
                   "scope": scope.describe(recipe.float_level, recipe.float_head),
                   "max_level": scope.max_level,
                   "quantize_outputs": recipe.float_level == 0}  # a QDQ INT8 output layer always rounds its output
        return Path(out_path), details, meta


MIN_QDQ_OPSET = 13  # per-channel (axis) DequantizeLinear exists from opset 13


def _at_least_opset(path: Path, workdir: Path, opset: int) -> Path:
    """Models exported with an old opset (PFLD: 9) are upgraded first; per-channel QDQ needs ``opset``."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return Path(path)
    upgraded = Path(workdir) / f"opset{opset}.onnx"
    onnx.save(version_converter.convert_version(model, opset), str(upgraded))
    return upgraded


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, meta: ModelMetadata,
                  recipe: Int8Recipe) -> tuple[Path, dict, ModelMetadata]:
    """One-shot form of :class:`OrtQuantizer`."""
    return OrtQuantizer(fp32_path, calibration, meta).quantize(recipe, out_path)


def onnx_max_level(fp32_path: str | Path) -> int:
    import onnx

    return onnx_scope(onnx.load(str(fp32_path))).max_level
