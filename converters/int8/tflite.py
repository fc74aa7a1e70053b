"""TFLite full-integer INT8 with Google's AI Edge Quantizer on the FP32 .tflite, calibrated on our face crops.

Starting point: the FP32 .tflite the TFLite writer makes (``converters.to_tflite``:
litert-torch for checkpoints — onnx2tf silently mis-converts H3R-128 — onnx2tf for
ONNX-only models), after its outputs were matched to the ONNX and renamed. Quantizer:
``ai_edge_quantizer`` static INT8 (int8 weights per channel, int8 activations, int8
kernels). It was chosen over TensorFlow's own calibrator + MLIR quantizer because on
litert-torch's graphs the latter leaves every convolution in float (it only wraps
PAD/ADD in quantize/dequantize pairs), while AI Edge Quantizer quantizes them all, on
either converter's graph, and takes per-op exceptions by name.

* Calibration: our crops (normalised, in the file's own input layout) are run through
  the model once, recording each tensor's min/max; every recipe reuses that result.
* Float tail: the recipe's float nodes get ``NO_QUANTIZE`` (matched on the op's output
  tensor names, which is how the quantizer names an op): their inputs are dequantized
  and they run in float.
* I/O: by default the quantizer makes the model's input and output tensors int8
  (``io="int8"``); for ``io="float"`` the virtual INPUT/OUTPUT ops are excluded, which puts a
  QUANTIZE after the input and a DEQUANTIZE before each output. Either way the SDK's
  LiteRT adapter handles the I/O type with the scale/zero point stored in the file.
"""
from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sdk.metadata import ModelMetadata

from .recipe import Int8Recipe
from .scope import FloatScope, tflite_scope

_ALGORITHMS = {"minmax": "MIN_MAX_UNIFORM_QUANT", "mse": "MSE"}


class TfliteQuantizer:
    """Holds the FP32 .tflite and its calibration statistics; writes one INT8 .tflite per recipe."""

    def __init__(self, source: Any, fp32_onnx: Path, calibration: np.ndarray, meta: ModelMetadata,
                 workdir: str | Path | None = None):
        from ..to_tflite import choose_converter, face_nchw, finalize_tflite, float_files

        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="edgemark-tfl-int8-")
        self.workdir = Path(workdir) if workdir is not None else Path(self._tmp.name)
        self.converter = choose_converter(source, (getattr(source, "options", None) or {}).get("tflite_converter",
                                                                                               "auto"))
        given = (getattr(source, "options", None) or {}).get("tflite_float")
        # A given FP32 .tflite (e.g. litert-torch's, for an ONNX whose onnx2tf conversion is wrong) is matched
        # against the ONNX by finalize_tflite below like a converted one; otherwise reuse the FP32 conversion.
        raw_fp32 = Path(given) if given else float_files(source, Path(fp32_onnx), self.converter)["fp32"]
        if given:
            self.converter = f"given FP32 file {Path(given).name}"
        self.onnx_path = Path(fp32_onnx)
        self.meta = meta
        # Outputs matched to the ONNX, renamed to the metadata names, weights inlined, layouts recorded.
        self.float_file = self.workdir / "fp32_finalized.tflite"
        self.float_meta = finalize_tflite(raw_fp32, self.onnx_path, meta, face_nchw(meta), self.float_file)
        self.calibration = np.asarray(calibration, dtype=np.float32)
        self._stats: dict[str, Any] = {}
        self._scope: FloatScope | None = None
        self._op_scopes: dict[str, str] = {}

    def _data(self) -> dict[str, list[dict[str, np.ndarray]]]:
        from calibration.readers import tflite_representative_dataset
        from sdk.backends.litert import interpreter_class

        signatures = interpreter_class()(model_path=str(self.float_file)).get_signature_list()
        key = next(iter(signatures))
        name = signatures[key]["inputs"][0]
        gen = tflite_representative_dataset(self.calibration, source_layout=self.meta.input.layout,
                                            layout=self.float_meta.input.layout)
        return {key: [{name: x[0]} for x in gen()]}

    def _recipe(self, recipe: Int8Recipe) -> list[dict]:
        from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

        op = qtyping.TFLOperationName
        no_quant = algorithm_manager.AlgorithmName.NO_QUANTIZE
        manager = recipe_manager.RecipeManager()
        grain = qtyping.QuantGranularity
        granularity = grain.CHANNELWISE if recipe.per_channel else grain.TENSORWISE
        manager.add_static_config(regex=".*", operation_name=op.ALL_SUPPORTED, activation_num_bits=8,
                                  weight_num_bits=8, weight_granularity=granularity,
                                  algorithm_key=getattr(algorithm_manager.AlgorithmName,
                                                        _ALGORITHMS[recipe.calibration]))
        for node in self.scope().float_nodes(recipe.float_level, recipe.float_head):
            manager.add_quantization_config(regex=f"^{re.escape(self._op_scopes[node])}$",
                                            operation_name=op.ALL_SUPPORTED, algorithm_key=no_quant)
        if recipe.io == "float":
            manager.add_quantization_config(regex=".*", operation_name=op.INPUT, algorithm_key=no_quant)
            manager.add_quantization_config(regex=".*", operation_name=op.OUTPUT, algorithm_key=no_quant)
        return manager.get_quantization_recipe()

    def stats(self, recipe: Int8Recipe) -> Any:
        """Calibration statistics, collected once per range algorithm with everything quantized (a superset)."""
        if recipe.calibration not in self._stats:
            from ai_edge_quantizer import quantizer

            full = dataclasses.replace(recipe, float_level=0, float_head=0, io="int8")
            qt = quantizer.Quantizer(str(self.float_file), self._recipe(full))
            self._stats[recipe.calibration] = qt.calibrate(self._data(), num_threads=2)
        return self._stats[recipe.calibration]

    def scope(self) -> FloatScope:
        if self._scope is None:
            from sdk.backends.litert import interpreter_class

            interp = interpreter_class()(model_path=str(self.float_file))
            names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
            ops = interp._get_ops_details()  # noqa: SLF001 - the interpreter's public graph listing
            outputs = [d["index"] for d in interp.get_output_details()]
            self._scope = tflite_scope(ops, outputs)
            # How the quantizer names an op: its output tensor names joined by ';' with a trailing ';'.
            self._op_scopes = {str(int(op["outputs"][0])): "".join(f"{names[int(t)]};" for t in op["outputs"])
                               for op in ops if len(op["outputs"])}
        return self._scope

    # ------------------------------------------------------------------ one recipe
    def quantize(self, recipe: Int8Recipe, target: Path) -> tuple[Path, dict, ModelMetadata]:
        import contextlib
        import io

        from ai_edge_quantizer import quantizer

        if recipe.calibration not in _ALGORITHMS:
            raise ValueError(f"AI Edge Quantizer ranges here: {sorted(_ALGORITHMS)}; not {recipe.calibration!r}")
        scope = self.scope()
        stats = self.stats(recipe)
        qt = quantizer.Quantizer(str(self.float_file), self._recipe(recipe))
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a size report
            data = bytes(qt.quantize(stats).quantized_model)
        meta = self._finalize(data, Path(target))
        details = {"float_nodes": [self._op_scopes[n] for n in scope.float_compute(recipe.float_level, recipe.float_head)],
                   "scope": scope.describe(recipe.float_level, recipe.float_head), "max_level": scope.max_level, "io": recipe.io,
                   "fp32_converter": self.converter, "quantizer": "ai-edge-quantizer",
                   "quantize_outputs": recipe.float_level == 0}  # an int8 output layer rounds its output
        return Path(target), details, meta

    def max_level(self) -> int:
        from .ort import onnx_max_level

        return onnx_max_level(self.onnx_path)  # TFLite graphs mirror the ONNX graph's conv structure

    def _finalize(self, data: bytes, target: Path) -> ModelMetadata:
        """Record the I/O quantization parameters in the metadata and embed it (names are kept by the quantizer)."""
        from tensorflow.lite.tools import flatbuffer_utils as fb

        from ..to_tflite import inline_external_buffers, rewrite_tflite

        fmeta = self.float_meta
        model = fb.convert_bytearray_to_object(bytearray(data))
        inline_external_buffers(model, data)  # the quantizer stores weights after the flatbuffer
        graph = model.subgraphs[0]
        by_name = {_name(graph.tensors[i]): graph.tensors[i] for i in graph.outputs}
        spec_in = fmeta.input
        qin = _quant_params(graph.tensors[graph.inputs[0]])
        if qin is not None:
            spec_in = dataclasses.replace(spec_in, dtype="int8", quant_scale=qin[0], quant_zero_point=qin[1])
        renames: dict[int, str] = {}  # tensor index -> new name
        outputs = []
        for out in fmeta.outputs:
            index = next((i for i in graph.outputs if _name(graph.tensors[i]) == out.name), None)
            dequant = next((i for i in graph.outputs if _name(graph.tensors[i]) == f"{out.name}_dequant"), None)
            if index is None and dequant is not None:
                # Float output: the quantizer appended a DEQUANTIZE whose output it called "<name>_dequant";
                # give the model's output its name back and the int8 tensor before it a distinct one.
                renames.update({i: f"{out.name}_int8" for i, t in enumerate(graph.tensors) if _name(t) == out.name})
                renames[dequant] = out.name
                index = dequant
            if index is None:
                raise RuntimeError(f"the quantized TFLite model lost output {out.name!r}; it has {sorted(by_name)}")
            q = _quant_params(graph.tensors[index])
            outputs.append(dataclasses.replace(out, quant_scale=q[0] if q else None,
                                               quant_zero_point=q[1] if q else None))
        meta = fmeta.replace(input=spec_in, outputs=tuple(outputs), provenance=self.meta.provenance).validate()

        def rename(model_obj) -> None:
            tensors = model_obj.subgraphs[0].tensors
            for i, name in renames.items():
                tensors[i].name = name

        rewrite_tflite(data, target, rename, meta)
        return meta


def _name(tensor) -> str:
    n = tensor.name
    return n.decode() if isinstance(n, bytes) else str(n)


def _quant_params(tensor) -> tuple[float, int] | None:
    """(scale, zero point) of an int8/uint8 tensor, None for float tensors."""
    from tensorflow.lite.python import schema_py_generated as schema

    if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8):
        return None
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])
