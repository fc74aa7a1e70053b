"""Pixel normalisation moved into a model's own graph: the file takes the crops as they come.

``Predictor`` turns each uint8 BGR crop into the network's tensor — channel order, ``(pixel ·
scale − mean) / std`` per channel, NCHW — in numpy: six passes over the crop, ≈ 45 µs of a ≈ 1.3 ms
``predict`` for the bundled default. Prepended to the graph (Cast → Transpose → channel Gather → Mul →
Sub, the same float32 constants ``sdk.preprocess.normalise`` uses), the runtime does it in its kernels
and the SDK hands the uint8 crops over as they are (no float copy: the cast alone cost ~15–20 µs per
face on the cold cache after a network call). The file's input becomes ``edgemark_pixels``: uint8
NHWC BGR, scale 1, mean 0, std 1 — its metadata says exactly that (``sdk.preprocess.takes_pixels``),
so nothing else changes. A file from before, whose pixels input is float32, is given the uint8 input
(a Cast in front). Checked before it is written: the new file on raw crops against the original.

TFLite files get a head that XNNPACK runs in its own kernels: DEQUANTIZE (uint8, scale 1 → float32)
and a 1×1 CONV_2D whose weights hold the channel order and the per-channel multiplier and whose bias
the offset; the NCHW → NHWC TRANSPOSE the converters put in front of the network goes (an INT8 file's
QUANTIZE then reads the normalised NHWC tensor). The convolution rounds once where numpy rounds twice
(outputs within ~3e-6 of their range). In some INT8 files that one rounding moves pixels across an
input quantization level (PFLD's mean 0.5 / std 0.5 puts every pixel half-way between two); the check
refuses those, and they keep the numpy normalisation. Measured on the bundled default (ad-hoc script
ab_files2.py): whole ``predict`` 0.08–0.2 ms faster. The first try, a MUL and a SUB rounded as numpy does, was bit-exact but made the
raw call 0.12–0.33 ms slower, and the ONNX operators above as TFLite ones 0.26–0.38 ms slower.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sdk.backends import open_backend
from sdk.formats import format_of
from sdk.metadata import InputSpec, ModelMetadata
from sdk.preprocess import normalise

from .graph_rewrite import reference_crops, rewrite_model
from .source import ConversionError

PIXELS_NAME = "edgemark_pixels"
MAX_OUTPUT_DIFF = 1e-4  # relative to the output's range


def _constants(spec: InputSpec) -> tuple[list[int], np.ndarray, np.ndarray]:
    """BGR-crop channel order for the network, and the per-channel multiplier and offset (float32)."""
    order = [2, 1, 0] if spec.color == "rgb" else [0, 1, 2]
    std = np.asarray(spec.std, dtype=np.float32)
    return order, (np.float32(spec.scale) / std).astype(np.float32), (np.asarray(spec.mean, np.float32) / std)


def _check_normalisable(meta: ModelMetadata, layouts: tuple[str, ...] = ("nchw",)) -> InputSpec:
    spec = meta.input
    if spec.name == PIXELS_NAME:
        if spec.dtype == "uint8":
            raise ConversionError("the file already normalises its input in its graph")
        return spec  # float32 pixels (an older rewrite): only the uint8 input is added
    if spec.layout not in layouts or spec.dtype != "float32":
        raise ConversionError(f"normalisation in the graph is built for float32 {' or '.join(layouts).upper()} "
                              f"inputs, not {spec.dtype} {spec.layout}")
    return spec


def pixels_metadata(meta: ModelMetadata) -> ModelMetadata:
    import dataclasses

    spec = meta.input
    return meta.replace(input=dataclasses.replace(spec, name=PIXELS_NAME, color="bgr", scale=1.0, mean=(0.0, 0.0, 0.0),
                                                  std=(1.0, 1.0, 1.0), layout="nhwc", dtype="uint8", quant_scale=1.0,
                                                  quant_zero_point=0)).validate()


def _onnx_graph(model, meta: ModelMetadata):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = _check_normalisable(meta)
    graph = model.graph
    (old,) = [i for i in graph.input if i.name == spec.name]
    p = "edgemark_normalise/"
    normalised = p + "tensor"
    if spec.name == PIXELS_NAME:  # float32 pixels already normalised in the graph: cast the uint8 input to them
        normalised = p + "pixels_float"
        head = [helper.make_node("Cast", [PIXELS_NAME], [normalised], to=TensorProto.FLOAT)]
    else:
        order, mul, off = _constants(spec)
        graph.initializer.extend([
            numpy_helper.from_array(np.asarray(order, np.int64), p + "order"),
            numpy_helper.from_array(mul.reshape(1, 3, 1, 1), p + "mul"),
            numpy_helper.from_array(off.reshape(1, 3, 1, 1), p + "offset"),
        ])
        head = [
            helper.make_node("Transpose", [PIXELS_NAME], [p + "nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("Cast", [p + "nchw"], [p + "float"], to=TensorProto.FLOAT),
            helper.make_node("Gather", [p + "float", p + "order"], [p + "ordered"], axis=1),
            helper.make_node("Mul", [p + "ordered", p + "mul"], [p + "scaled"]),
            helper.make_node("Sub", [p + "scaled", p + "offset"], [normalised]),
        ]
    for node in graph.node:  # every reader of the old input now reads the normalised tensor
        node.input[:] = [normalised if name == spec.name else name for name in node.input]
    nodes = head + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    batch = old.type.tensor_type.shape.dim[0]  # keep a static batch static (PFLD's graphs reshape with it)
    graph.input.remove(old)
    graph.input.insert(0, helper.make_tensor_value_info(
        PIXELS_NAME, TensorProto.UINT8,
        [batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch"), spec.height, spec.width, 3]))
    onnx.checker.check_model(model)
    return model


def _openvino_model(model, meta: ModelMetadata):
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    import openvino.opset13 as ops

    spec = _check_normalisable(meta)
    (param,) = model.get_parameters()
    batch = param.get_partial_shape()[0]  # a static batch stays static
    pixels = ops.parameter(ov.PartialShape([batch, spec.height, spec.width, 3]), ov.Type.u8, name=PIXELS_NAME)
    pixels.output(0).get_tensor().set_names({PIXELS_NAME})
    if spec.name == PIXELS_NAME:  # float32 pixels already normalised in the graph: cast the uint8 input to them
        tensor = ops.convert(pixels, ov.Type.f32)
    else:
        order, mul, off = _constants(spec)
        nchw = ops.convert(ops.transpose(pixels, ops.constant(np.array([0, 3, 1, 2], np.int64))), ov.Type.f32)
        ordered = ops.gather(nchw, ops.constant(np.array(order, np.int64)), ops.constant(np.array(1, np.int64)))
        tensor = ops.subtract(ops.multiply(ordered, ops.constant(mul.reshape(1, 3, 1, 1))),
                              ops.constant(off.reshape(1, 3, 1, 1)))
    for target in list(param.output(0).get_target_inputs()):
        target.replace_source_output(tensor.output(0))
    return ov.Model(model.outputs, [pixels], model.get_friendly_name())


def _tflite_nchw_transpose(g, index: int):
    """The TRANSPOSE (0, 2, 3, 1) that is tensor ``index``'s only reader, else None."""
    readers = g.readers(index)
    if len(readers) != 1 or g.op_name(readers[0]) != "TRANSPOSE":
        return None
    perm = g.constant_value(int(readers[0].inputs[1]), np.int32)
    return readers[0] if perm.tolist() == [0, 2, 3, 1] else None


def _tflite_network_entry(g, old: int, layout: str) -> tuple[Any, int | None, int]:
    """Where the normalised NHWC tensor goes: (the INT8 file's QUANTIZE or None, the tensor it must then
    write, the tensor the new head writes). NCHW: the leading TRANSPOSE (and the QUANTIZE before it) are
    taken out, their NHWC output kept; NHWC: the input's readers are pointed at a new tensor."""
    p = "edgemark_normalise/"
    if layout == "nhwc":
        normalised = g.tensor(p + "tensor", g.tensor_shape(old))
        for op in g.readers(old):
            op.inputs = np.asarray([normalised if int(i) == old else int(i) for i in op.inputs], dtype=np.int32)
        return None, None, normalised
    quantize, transpose = None, _tflite_nchw_transpose(g, old)
    if transpose is None:
        first = g.readers(old)
        if len(first) == 1 and g.op_name(first[0]) == "QUANTIZE":
            quantize, transpose = first[0], _tflite_nchw_transpose(g, int(first[0].outputs[0]))
    if transpose is None:
        raise ConversionError("the TFLite graph's NCHW input is not read by one NCHW → NHWC TRANSPOSE (after a "
                              "QUANTIZE for INT8): the converter that wrote it is not one edgemark knows")
    target = int(transpose.outputs[0])  # the NHWC tensor the network reads
    for op in (quantize, transpose):
        if op is not None:
            g.graph.operators.remove(op)
    if quantize is None:
        return None, target, target
    return quantize, target, g.tensor(p + "tensor", g.tensor_shape(target))


def _tflite_graph(model_obj, meta: ModelMetadata):
    """The parsed .tflite taking uint8 NHWC BGR pixels: DEQUANTIZE → 1×1 CONV_2D (channel order, multiplier,
    offset) in front, the network's NCHW → NHWC TRANSPOSE (after an INT8 file's QUANTIZE) gone."""
    from .tflite_graph import GraphEditor

    spec = _check_normalisable(meta, ("nchw", "nhwc"))
    if spec.name == PIXELS_NAME:
        raise ConversionError("a TFLite file with float32 pixels input is not one edgemark writes")
    g = GraphEditor(model_obj)
    if len(g.graph.inputs) != 1:
        raise ConversionError(f"the TFLite graph has {len(g.graph.inputs)} inputs; a landmark model takes one")
    old = int(g.graph.inputs[0])
    shape = g.tensor_shape(old)
    quantize, target, normalised = _tflite_network_entry(g, old, spec.layout)
    p = "edgemark_normalise/"
    n, h, w = (shape[0], shape[2], shape[3]) if spec.layout == "nchw" else shape[:3]
    pixels = g.tensor(PIXELS_NAME, (n, h, w, 3), np.uint8)
    quant = g.schema.QuantizationParametersT()
    quant.scale, quant.zeroPoint = [1.0], [0]
    g.graph.tensors[pixels].quantization = quant
    signature = g.graph.tensors[old].shapeSignature
    if signature is not None and len(signature):  # a dynamic batch stays dynamic
        g.graph.tensors[pixels].shapeSignature = np.asarray([int(signature[0]), h, w, 3], dtype=np.int32)
    order, mul, off = _constants(spec)
    weights = np.zeros((3, 1, 1, 3), np.float32)  # OHWI: network channel c = BGR channel order[c] × mul[c]
    weights[np.arange(3), 0, 0, order] = mul
    as_float = g.tensor(p + "float", (n, h, w, 3))
    g.op("DEQUANTIZE", [pixels], [as_float], at=0)
    g.op("CONV_2D", [as_float, g.constant(p + "weights", weights, np.float32), g.constant(p + "bias", -off, np.float32)],
         [normalised], "Conv2DOptions", at=1, padding=g.schema.Padding.VALID, strideW=1, strideH=1,
         dilationWFactor=1, dilationHFactor=1, fusedActivationFunction=0)
    if quantize is not None:
        g.op("QUANTIZE", [normalised], [target], at=2)
    g.replace_input(old, pixels)
    return model_obj


def _check_equal(original: Path, changed: Path, meta: ModelMetadata) -> float:
    crops = reference_crops(meta)
    before, after = open_backend(original, threads=1), open_backend(changed, threads=1)
    want = before.run(normalise(crops, meta.input))
    got = after.run(crops)
    worst = 0.0
    for name, value in want.items():
        other = got.get(name)
        if other is None:
            raise ConversionError(f"output {name!r} is missing after moving the normalisation into the graph")
        span = float(np.ptp(value)) or 1.0
        worst = max(worst, float(np.abs(other - value).max()) / span)
    if worst > MAX_OUTPUT_DIFF:
        raise ConversionError(f"the in-graph normalisation changes the outputs by {worst:.3g} of their range "
                              f"(allowed {MAX_OUTPUT_DIFF}); file not written")
    return worst


def normalise_in_graph(path: str | Path, out_path: str | Path | None = None) -> tuple[Path, float]:
    """Write ``out_path`` (default: ``path`` itself, atomically) taking raw BGR pixels; ONNX, OpenVINO and TFLite."""
    path = Path(path)
    meta = open_backend(path, threads=1).metadata
    new_meta = pixels_metadata(meta)
    fmt = format_of(path).name
    transforms = {"onnx": _onnx_graph, "openvino": _openvino_model, "tflite": _tflite_graph}
    if fmt not in transforms:
        raise ConversionError(f"normalisation in the graph is built for ONNX, OpenVINO and TFLite files, not {fmt}")
    target, worst = rewrite_model(path, out_path, new_meta, transforms[fmt], meta,
                                  lambda staged: _check_equal(path, staged, meta))
    return target, worst
