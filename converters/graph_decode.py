"""The H3R top-k decoder appended to a model's own graph, so the runtime decodes in native code.

Around a sub-millisecond network, numpy's ``argpartition`` + softmax over a 98 × 32 × 32 heat map
costs as much as the network (≈0.4 ms of a 1.3 ms ``predict`` for the bundled default). Appending
the same arithmetic to the graph — reshape → TopK(k) → softmax of the k scores → their weighted
(column, row) × stride, and the softmax mass Σ_topk e^v / Σ_all e^v as the score — lets ONNX
Runtime and OpenVINO run it in their own kernels, and the file then returns (N, L, 2) points and
(N, L) scores instead of the maps (nothing map-sized is copied back to Python either).

The file says so in its metadata: decoder ``h3r_topk`` with ``in_graph: true`` and outputs with
the roles ``points`` / ``point_scores`` (``sdk.decoders.IN_GRAPH``). Before anything is written the
new graph is checked against the numpy decoder on the maps of the original file, on real face
crops: ≤ ``MAX_POINT_DIFF_PX`` per point, or the file is refused.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from sdk.backends import open_backend
from sdk.decoders import DECODERS, IN_GRAPH, decode
from sdk.formats import format_of
from sdk.metadata import ModelMetadata, OutputSpec
from sdk.outputs import outputs_by_role

from .graph_rewrite import onnx_constant, reference_tensors, rewrite_model
from .source import ConversionError

GRAPH_DECODERS = ("h3r_topk", "regression")
# (format, precision) whose H3R files keep their maps, and why (measured).
NOT_IN_GRAPH = {
    ("openvino", "int8"): "OpenVINO's TopK, asked for the lower-index order on ties, takes 4.5 ms on an INT8 file's "
                          "heat map (quantized to few levels: full of ties) where the whole network takes 1.7 ms "
                          "(PERF_COUNT, H3R-160, 1 thread); the numpy decoder is faster there",
}
# Regression files (PFLD) on TFLite keep the numpy rescale, and why.
REGRESSION_NOT_IN_GRAPH = {
    "tflite": "no gain to measure: the rescale is one numpy multiply, and a TFLite graph cannot take the map back "
              "after it (converters.graph_map_back), which is what the ONNX and OpenVINO files gain from",
}
POINTS_NAME, SCORES_NAME = "edgemark_points", "edgemark_point_scores"


def skip_reason(meta: ModelMetadata, fmt: str) -> str | None:
    """Why a file of this decoder, format and precision keeps its decoder out of the graph (None: it need not)."""
    if meta.decoder.name == "regression":
        return REGRESSION_NOT_IN_GRAPH.get(fmt)
    return NOT_IN_GRAPH.get((fmt, meta.provenance.precision))
MAX_POINT_DIFF_PX = 1e-4
MAX_SCORE_DIFF = 1e-5


def _check_decodable(meta: ModelMetadata, layouts: tuple[str, ...] = ("nchw",)
                     ) -> tuple[OutputSpec, int, float, int, int]:
    if meta.decoder.params.get(IN_GRAPH):
        raise ConversionError("the file already decodes in its graph")
    if meta.decoder.name not in GRAPH_DECODERS:
        raise ConversionError(f"decoding in the graph is built for {list(GRAPH_DECODERS)}, not {meta.decoder.name!r}")
    (heatmap,) = [o for o in meta.outputs if o.role == "heatmap"]
    if heatmap.layout not in layouts or heatmap.shape is None or len(heatmap.shape) != 3 or None in heatmap.shape:
        raise ConversionError(f"output {heatmap.name!r} must be a static {'/'.join(x.upper() for x in layouts)} "
                              f"heat map, got {heatmap.shape} ({heatmap.layout})")
    params = {"topk": 9, **meta.decoder.params}
    h, w = heatmap.shape[1:] if heatmap.layout == "nchw" else heatmap.shape[:2]
    return heatmap, int(params["topk"]), float(params["stride"]), int(h), int(w)


def decoded_metadata(meta: ModelMetadata) -> ModelMetadata:
    """``meta`` for the file once its graph ends in the decoder."""
    points = meta.scheme.num_points
    outputs = (OutputSpec(POINTS_NAME, "points", (points, 2), "flat"),
               OutputSpec(SCORES_NAME, "point_scores", (points,), "flat"))
    decoder = type(meta.decoder)(meta.decoder.name, {**meta.decoder.params, IN_GRAPH: True})
    return meta.replace(outputs=outputs, decoder=decoder).validate()


def _onnx_graph(model, meta: ModelMetadata):
    """``model`` (onnx.ModelProto) with the decoder appended and the maps no longer an output."""
    import onnx
    from onnx import TensorProto, helper

    heatmap, k, stride, h, w = _check_decodable(meta)
    graph = model.graph
    if heatmap.name not in [o.name for o in graph.output]:
        raise ConversionError(f"the graph has no output {heatmap.name!r}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise ConversionError(f"decoding in the graph needs ONNX opset >= 13 (ReduceSum axes as input), got {opset}")

    const = partial(onnx_constant, graph)  # const(name, value, dtype) -> name

    p = "edgemark_decode/"
    shape = const(p + "shape", [0, 0, h * w], np.int64)
    kk = const(p + "k", [k], np.int64)
    last = const(p + "last_axis", [-1], np.int64)
    width = const(p + "width", w, np.int64)
    step = const(p + "stride", stride, np.float32)

    def reduce(op, x, out, keep):
        if op == "ReduceMax" and opset < 18:
            return helper.make_node(op, [x], [out], axes=[-1], keepdims=keep)
        return helper.make_node(op, [x, last], [out], keepdims=keep)

    nodes = [
        helper.make_node("Reshape", [heatmap.name, shape], [p + "flat"]),
        helper.make_node("TopK", [p + "flat", kk], [p + "vals", p + "idx"], axis=-1, largest=1, sorted=1),
        reduce("ReduceMax", p + "vals", p + "peak", 1),
        helper.make_node("Sub", [p + "vals", p + "peak"], [p + "vals_shifted"]),
        helper.make_node("Exp", [p + "vals_shifted"], [p + "top"]),
        reduce("ReduceSum", p + "top", p + "top_sum", 1),
        helper.make_node("Div", [p + "top", p + "top_sum"], [p + "weights"]),
        helper.make_node("Mod", [p + "idx", width], [p + "col_i"]),
        helper.make_node("Div", [p + "idx", width], [p + "row_i"]),
        helper.make_node("Cast", [p + "col_i"], [p + "col"], to=TensorProto.FLOAT),
        helper.make_node("Cast", [p + "row_i"], [p + "row"], to=TensorProto.FLOAT),
        helper.make_node("Mul", [p + "weights", p + "col"], [p + "wx"]),
        helper.make_node("Mul", [p + "weights", p + "row"], [p + "wy"]),
        reduce("ReduceSum", p + "wx", p + "x", 1),
        reduce("ReduceSum", p + "wy", p + "y", 1),
        helper.make_node("Concat", [p + "x", p + "y"], [p + "xy"], axis=-1),
        helper.make_node("Mul", [p + "xy", step], [POINTS_NAME]),
        helper.make_node("Sub", [p + "flat", p + "peak"], [p + "flat_shifted"]),
        helper.make_node("Exp", [p + "flat_shifted"], [p + "all"]),
        reduce("ReduceSum", p + "all", p + "total", 0),
        helper.make_node("Squeeze", [p + "top_sum", last], [p + "top_mass"]),
        helper.make_node("Div", [p + "top_mass", p + "total"], [SCORES_NAME]),
    ]
    graph.node.extend(nodes)
    points = meta.scheme.num_points
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(POINTS_NAME, TensorProto.FLOAT, ["batch", points, 2]),
        helper.make_tensor_value_info(SCORES_NAME, TensorProto.FLOAT, ["batch", points]),
    ])
    onnx.checker.check_model(model)
    return model


def _openvino_model(model, meta: ModelMetadata):
    """The OpenVINO model with the same decoder appended (opset ops) and only points / scores as outputs."""
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    import openvino.opset13 as ops

    heatmap, k, stride, h, w = _check_decodable(meta)
    outs = [o for o in model.outputs if heatmap.name in o.get_names()]
    if len(outs) != 1:
        raise ConversionError(f"the IR has no output {heatmap.name!r}")
    axis = ops.constant(np.array([-1], np.int64))
    maps = outs[0].get_node().input_value(0)  # what feeds the old Result node, not the Result itself
    flat = ops.reshape(maps, ops.constant(np.array([0, 0, h * w], np.int64)), special_zero=True)
    top = ops.topk(flat, ops.constant(np.array(k, np.int64)), axis=-1, mode="max", sort="value",
                   index_element_type="i64", stable=True)  # ties to the lower index, as sdk's numpy decoder
    vals, idx = top.output(0), top.output(1)
    peak = ops.reduce_max(vals, axis, keep_dims=True)
    e = ops.exp(ops.subtract(vals, peak))
    e_sum = ops.reduce_sum(e, axis, keep_dims=True)
    weights = ops.divide(e, e_sum)
    width = ops.constant(np.array(w, np.int64))
    col = ops.convert(ops.floor_mod(idx, width), "f32")
    row = ops.convert(ops.divide(idx, width), "f32")  # integer Divide floors (python_division), idx >= 0
    x = ops.reduce_sum(ops.multiply(weights, col), axis, keep_dims=True)
    y = ops.reduce_sum(ops.multiply(weights, row), axis, keep_dims=True)
    points = ops.multiply(ops.concat([x, y], -1), ops.constant(np.array(stride, np.float32)))
    total = ops.reduce_sum(ops.exp(ops.subtract(flat, peak)), axis, keep_dims=False)
    scores = ops.divide(ops.squeeze(e_sum, axis), total)
    points.output(0).get_tensor().set_names({POINTS_NAME})
    scores.output(0).get_tensor().set_names({SCORES_NAME})
    return ov.Model([points.output(0), scores.output(0)], model.get_parameters(), model.get_friendly_name())


def _tflite_graph(model_obj, meta: ModelMetadata):
    """The parsed .tflite with the same decoder appended (builtin ops) and only points / scores as outputs.

    TOPK_V2 orders equal values by lower index, the rule the numpy decoder follows (checked on real
    crops before the file is written, INT8 maps with their ties included)."""
    from .tflite_graph import GraphEditor

    heatmap, k, stride, h, w = _check_decodable(meta, ("nchw", "nhwc"))
    g = GraphEditor(model_obj)
    maps = g.tensor_index(heatmap.name)
    if maps not in [int(i) for i in g.graph.outputs] or not g.is_float32(maps):
        raise ConversionError(f"the TFLite graph has no float32 output {heatmap.name!r}")
    shape = g.tensor_shape(maps)
    if len(shape) != 4 or shape[0] < 1:
        raise ConversionError(f"output {heatmap.name!r} must have a static batch, got shape {shape}")
    n, points = shape[0], meta.scheme.num_points
    p = "edgemark_decode/"
    if heatmap.layout == "nhwc":
        nchw = g.tensor(p + "maps_nchw", (n, points, h, w))
        g.op("TRANSPOSE", [maps, g.constant(p + "to_nchw", [0, 3, 1, 2], np.int32)], [nchw])
        maps = nchw
    last = g.constant(p + "last_axis", [2], np.int32)
    flat = g.tensor(p + "flat", (n, points, h * w))
    g.op("RESHAPE", [maps, g.constant(p + "shape", [n, points, h * w], np.int32)], [flat], "ReshapeOptions",
         newShape=[n, points, h * w])
    vals, idx = g.tensor(p + "vals", (n, points, k)), g.tensor(p + "idx", (n, points, k), np.int32)
    g.op("TOPK_V2", [flat, g.constant(p + "k", k, np.int32)], [vals, idx], "TopKV2Options")
    peak = g.tensor(p + "peak", (n, points, 1))
    g.op("REDUCE_MAX", [vals, last], [peak], "ReducerOptions", keepDims=True)
    shifted, top = g.tensor(p + "vals_shifted", (n, points, k)), g.tensor(p + "top", (n, points, k))
    g.op("SUB", [vals, peak], [shifted], "SubOptions")
    g.op("EXP", [shifted], [top], "ExpOptions")
    top_sum = g.tensor(p + "top_sum", (n, points, 1))
    g.op("SUM", [top, last], [top_sum], "ReducerOptions", keepDims=True)
    weights = g.tensor(p + "weights", (n, points, k))
    g.op("DIV", [top, top_sum], [weights], "DivOptions")
    width = g.constant(p + "width", w, np.int32)
    xy = []
    for name, int_op in (("col", "FLOOR_MOD"), ("row", "FLOOR_DIV")):
        as_int, as_float = g.tensor(p + name + "_i", (n, points, k), np.int32), g.tensor(p + name, (n, points, k))
        g.op(int_op, [idx, width], [as_int], "FloorModOptions" if int_op == "FLOOR_MOD" else "FloorDivOptions")
        g.op("CAST", [as_int], [as_float], "CastOptions", inDataType=g.type_code("INT32"),
             outDataType=g.type_code("FLOAT32"))
        weighted, total = g.tensor(p + "w" + name, (n, points, k)), g.tensor(p + name + "_mean", (n, points, 1))
        g.op("MUL", [weights, as_float], [weighted], "MulOptions")
        g.op("SUM", [weighted, last], [total], "ReducerOptions", keepDims=True)
        xy.append(total)
    cells = g.tensor(p + "xy", (n, points, 2))
    g.op("CONCATENATION", xy, [cells], "ConcatenationOptions", axis=2)
    points_out = g.tensor(POINTS_NAME, (n, points, 2))
    g.op("MUL", [cells, g.constant(p + "stride", stride, np.float32)], [points_out], "MulOptions")
    # The mass's denominator Σ_all e^(v - peak) is 1 / (the largest softmax probability): TFLite's
    # SOFTMAX kernel is vectorised where a SUB + EXP + SUM over the whole map runs in reference kernels.
    probs, p_max = g.tensor(p + "probs", (n, points, h * w)), g.tensor(p + "p_max", (n, points, 1))
    g.op("SOFTMAX", [flat], [probs], "SoftmaxOptions", beta=1.0)
    g.op("REDUCE_MAX", [probs, last], [p_max], "ReducerOptions", keepDims=True)
    mass = g.tensor(p + "mass", (n, points, 1))
    g.op("MUL", [top_sum, p_max], [mass], "MulOptions")
    top_mass = g.tensor(p + "top_mass", (n, points))
    g.op("RESHAPE", [mass, g.constant(p + "mass_shape", [n, points], np.int32)], [top_mass], "ReshapeOptions",
         newShape=[n, points])
    g.graph.tensors[top_mass].name = SCORES_NAME.encode()
    g.set_outputs([points_out, top_mass])
    return model_obj


def _regression_params(meta: ModelMetadata) -> tuple[str, int, int, bool, bool]:
    """(output name, input width, height, normalized, centered) of a regression file to decode in its graph."""
    if meta.decoder.params.get(IN_GRAPH):
        raise ConversionError("the file already decodes in its graph")
    params = {**DECODERS["regression"].defaults, **meta.decoder.params}
    return (meta.output_for("landmarks").name, int(params["input_width"]), int(params["input_height"]),
            bool(params["normalized"]), bool(params["centered"]))


def _onnx_regression_graph(model, meta: ModelMetadata):
    """``model`` with ``sdk.decoders.regression``'s rescale appended: (N, L, 2) points and (N, L) ones."""
    import onnx
    from onnx import TensorProto, helper

    name, width, height, normalized, centered = _regression_params(meta)
    graph = model.graph
    outs = [o for o in graph.output if o.name == name]
    if len(outs) != 1 or outs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ConversionError(f"the graph has no float32 output {name!r}")

    const = partial(onnx_constant, graph)  # const(name, value, dtype) -> name

    p = "edgemark_decode/"
    nodes = [helper.make_node("Reshape", [name, const(p + "shape", [0, -1, 2], np.int64)], [p + "xy"])]
    xy = p + "xy"
    if normalized:
        if centered:  # (xy + 1) * 0.5, as the numpy decoder computes it in float32
            nodes += [helper.make_node("Add", [xy, const(p + "one", 1.0, np.float32)], [p + "shifted"]),
                      helper.make_node("Mul", [p + "shifted", const(p + "half", 0.5, np.float32)], [p + "unit"])]
            xy = p + "unit"
        nodes.append(helper.make_node("Mul", [xy, const(p + "size", [width, height], np.float32)], [POINTS_NAME]))
    else:
        nodes.append(helper.make_node("Identity", [xy], [POINTS_NAME]))
    ones = helper.make_tensor(p + "one_value", TensorProto.FLOAT, [1], [1.0])
    nodes += [helper.make_node("Shape", [p + "xy"], [p + "xy_shape"]),  # (N, L): Gather, in every opset
              helper.make_node("Gather", [p + "xy_shape", const(p + "first_two", [0, 1], np.int64)], [p + "scores_shape"]),
              helper.make_node("ConstantOfShape", [p + "scores_shape"], [SCORES_NAME], value=ones)]
    graph.node.extend(nodes)
    points = meta.scheme.num_points
    batch = outs[0].type.tensor_type.shape.dim[0]
    dim = batch.dim_value if batch.HasField("dim_value") and batch.dim_value > 0 else "batch"
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(POINTS_NAME, TensorProto.FLOAT, [dim, points, 2]),
                         helper.make_tensor_value_info(SCORES_NAME, TensorProto.FLOAT, [dim, points])])
    onnx.checker.check_model(model)
    return model


def _openvino_regression_model(model, meta: ModelMetadata):
    """The OpenVINO model with the same rescale appended (opset ops)."""
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    import openvino.opset13 as ops

    name, width, height, normalized, centered = _regression_params(meta)
    outs = [o for o in model.outputs if name in o.get_names()]
    if len(outs) != 1:
        raise ConversionError(f"the IR has no output {name!r}")
    xy = ops.reshape(outs[0].get_node().input_value(0), ops.constant(np.array([0, -1, 2], np.int64)), special_zero=True)
    points = xy
    if normalized:
        if centered:
            points = ops.multiply(ops.add(points, ops.constant(np.array(1.0, np.float32))),
                                  ops.constant(np.array(0.5, np.float32)))
        points = ops.multiply(points, ops.constant(np.array([width, height], np.float32)))
    else:
        points = ops.convert(points, "f32")
    dims = ops.gather(ops.shape_of(xy), ops.constant(np.array([0, 1], np.int64)), ops.constant(np.array(0, np.int64)))
    scores = ops.broadcast(ops.constant(np.array(1.0, np.float32)), dims)
    points.output(0).get_tensor().set_names({POINTS_NAME})
    scores.output(0).get_tensor().set_names({SCORES_NAME})
    return ov.Model([points.output(0), scores.output(0)], model.get_parameters(), model.get_friendly_name())


def _check_equal(original: Path, decoded: Path, meta: ModelMetadata) -> dict[str, float]:
    """The decoded file's points/scores against the numpy decoder on the original file's maps."""
    tensor = reference_tensors(meta)
    before = open_backend(original, threads=1)
    after = open_backend(decoded, threads=1)
    want = decode(meta.decoder.name, outputs_by_role(before.metadata, before.run(tensor)), meta.decoder.params)
    got = decode(after.metadata.decoder.name, outputs_by_role(after.metadata, after.run(tensor)),
                 after.metadata.decoder.params)
    dp = float(np.abs(got[0] - want[0]).max())
    ds = float(np.abs(got[1] - want[1]).max())
    if not (dp <= MAX_POINT_DIFF_PX and ds <= MAX_SCORE_DIFF):
        raise ConversionError(f"the in-graph decoder differs from the numpy one by {dp:.3g} px / {ds:.3g} in score "
                              f"(allowed {MAX_POINT_DIFF_PX} px / {MAX_SCORE_DIFF}); file not written")
    return {"max_point_diff_px": dp, "max_score_diff": ds, "faces": int(len(tensor))}


def decode_in_graph(path: str | Path, out_path: str | Path | None = None) -> tuple[Path, dict[str, float]]:
    """Write ``out_path`` (default: ``path`` itself, atomically) with the decoder inside its graph.

    ONNX, OpenVINO and TFLite files; returns the written path and the measured difference to numpy decoding.
    """
    path = Path(path)
    meta = open_backend(path, threads=1).metadata
    fmt = format_of(path).name
    if meta.decoder.name not in GRAPH_DECODERS:
        raise ConversionError(f"decoding in the graph is built for {list(GRAPH_DECODERS)}, not {meta.decoder.name!r}")
    reason = skip_reason(meta, fmt)
    if reason:
        raise ConversionError(f"not decoding in the graph of a {fmt} {meta.provenance.precision} "
                              f"{meta.decoder.name} file: {reason}")
    if meta.decoder.name == "regression":
        transforms = {"onnx": _onnx_regression_graph, "openvino": _openvino_regression_model}
    else:
        transforms = {"onnx": _onnx_graph, "openvino": _openvino_model, "tflite": _tflite_graph}
    if fmt not in transforms:
        raise ConversionError(f"decoding in the graph is built for {', '.join(transforms)} files, not {fmt}")
    return rewrite_model(path, out_path, decoded_metadata(meta), transforms[fmt], meta,
                         lambda staged: _check_equal(path, staged, meta))
