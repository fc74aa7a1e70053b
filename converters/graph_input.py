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
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.backends import open_backend
from sdk.formats import format_of
from sdk.metadata import InputSpec, ModelMetadata
from sdk.preprocess import normalise

from .graph_rewrite import reference_crops, rewrite_model
from .source import ConversionError

PIXELS_NAME = "edgemark_pixels"
# formats whose files keep the numpy normalisation, and why (measured)
NOT_IN_GRAPH = {"tflite": "in a TFLite graph it measured slower: the same operators in front of the network made "
                          "the bundled default's raw call 0.26–0.38 ms slower than the numpy normalisation"}
MAX_OUTPUT_DIFF = 1e-4  # relative to the output's range


def _constants(spec: InputSpec) -> tuple[list[int], np.ndarray, np.ndarray]:
    """BGR-crop channel order for the network, and the per-channel multiplier and offset (float32)."""
    order = [2, 1, 0] if spec.color == "rgb" else [0, 1, 2]
    std = np.asarray(spec.std, dtype=np.float32)
    return order, (np.float32(spec.scale) / std).astype(np.float32), (np.asarray(spec.mean, np.float32) / std)


def _check_normalisable(meta: ModelMetadata) -> InputSpec:
    spec = meta.input
    if spec.name == PIXELS_NAME:
        if spec.dtype == "uint8":
            raise ConversionError("the file already normalises its input in its graph")
        return spec  # float32 pixels (an older rewrite): only the uint8 input is added
    if spec.layout != "nchw" or spec.dtype != "float32":
        raise ConversionError(f"normalisation in the graph is built for float32 NCHW inputs, not {spec.dtype} "
                              f"{spec.layout}")
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
    """Write ``out_path`` (default: ``path`` itself, atomically) taking raw BGR pixels; ONNX and OpenVINO
    (not TFLite: ``NOT_IN_GRAPH``)."""
    path = Path(path)
    meta = open_backend(path, threads=1).metadata
    new_meta = pixels_metadata(meta)
    fmt = format_of(path).name
    if fmt in NOT_IN_GRAPH:
        raise ConversionError(f"not normalising in the graph of a {fmt} file: {NOT_IN_GRAPH[fmt]}")
    if fmt not in ("onnx", "openvino"):
        raise ConversionError(f"normalisation in the graph is built for ONNX and OpenVINO files, not {fmt}")
    target, worst = rewrite_model(path, out_path, new_meta, _onnx_graph if fmt == "onnx" else _openvino_model, meta,
                                  lambda staged: _check_equal(path, staged, meta))
    return target, worst
