"""The map back to image pixels and the confidence appended to a graph that already decodes.

After the decoder went into the graph (``converters.graph_decode``) the SDK still ran, per
``predict``, the inverse warp of the points and the confidence rule in numpy: a dozen small calls,
0.12–0.22 ms on this VM right after a network call, where each numpy routine's first call pays for a
cold cache. Here the graph takes a second input ``edgemark_to_image`` — (N, 2, 2) float32, per face
the x/y scale (row 0) and offset (row 1) of the inverse warp (``sdk.preprocess.image_maps``) — and
returns the points in image pixels, the decoder's scores, the point confidence (non-finite → 0,
clipped to [0, 1]: ``sdk.confidence.unit_interval``) and the face confidence (their mean).

The file says so in its metadata: ``maps_back: true`` beside ``in_graph: true`` and outputs with the
roles ``sdk.decoders.MAPPED_ROLES``. Given the identity map (what a backend feeds when no map is
given) the points are the input coordinates, bit for bit. Before anything is written the new graph is
checked against the original file mapped back in numpy on real face crops and random maps:
within ``MAX_ULPS`` float32 steps of each image coordinate, the confidences within ``MAX_CONF_DIFF``.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from sdk.backends import open_backend
from sdk.confidence import face_confidence, unit_interval
from sdk.decoders import IN_GRAPH, IN_GRAPH_ROLES, MAPS_BACK, TO_IMAGE_INPUT
from sdk.formats import format_of
from sdk.metadata import ModelMetadata, OutputSpec
from sdk.outputs import outputs_by_role

from .graph_rewrite import onnx_constant, reference_tensors, rewrite_model
from .source import ConversionError

MAPPED_NAME, POINT_CONF_NAME, FACE_CONF_NAME = ("edgemark_landmarks", "edgemark_point_confidence",
                                                "edgemark_face_confidence")
# float32 image coordinates: the graph rounds the map's offset and one multiply-add, numpy the float64
# result once, so they may differ by a step or two of float32 at the larger of the coordinate and the
# offset (one step is 6.1e-5 px from 512 to 1024 px, 1.2e-4 px up to 2048).
MAX_ULPS = 2
MAX_CONF_DIFF = 1e-6
NOT_MAPPED = {"tflite": "not built for TFLite: the flatbuffer editor (converters.tflite_graph) appends operators and "
                        "outputs but gives a graph no second input, and the LiteRT adapter feeds one"}


def _check_mappable(meta: ModelMetadata) -> tuple[str, str]:
    params = meta.decoder.params
    if params.get(MAPS_BACK):
        raise ConversionError("the file already maps points back in its graph")
    if not params.get(IN_GRAPH):
        raise ConversionError("the map back goes after a decoder in the graph: rewrite the file with "
                              "--decode-in-graph first")
    points, scores = (meta.output_for(role).name for role in IN_GRAPH_ROLES)
    return points, scores


def mapped_metadata(meta: ModelMetadata) -> ModelMetadata:
    """``meta`` for the file once its graph maps back and scores."""
    n = meta.scheme.num_points
    outputs = (OutputSpec(MAPPED_NAME, "mapped_points", (n, 2), "flat"),
               OutputSpec(meta.output_for("point_scores").name, "point_scores", (n,), "flat"),
               OutputSpec(POINT_CONF_NAME, "point_confidence", (n,), "flat"),
               OutputSpec(FACE_CONF_NAME, "face_confidence", (), "flat"))
    decoder = type(meta.decoder)(meta.decoder.name, {**meta.decoder.params, MAPS_BACK: True})
    return meta.replace(outputs=outputs, decoder=decoder).validate()


def _onnx_graph(model, meta: ModelMetadata):
    """``model`` (onnx.ModelProto) with the map input, the map back and the confidence appended."""
    import onnx
    from onnx import TensorProto, helper

    points, scores = _check_mappable(meta)
    graph = model.graph
    if len(graph.input) != 1:
        raise ConversionError(f"the graph has inputs {[i.name for i in graph.input]}; one image input expected")
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    dim = batch.dim_value if batch.HasField("dim_value") and batch.dim_value > 0 else "batch"  # static stays static
    outputs = {o.name for o in graph.output}
    if not {points, scores} <= outputs:
        raise ConversionError(f"the graph has no outputs {points!r} / {scores!r}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

    const = partial(onnx_constant, graph)  # const(name, value, dtype) -> name

    p = "edgemark_map_back/"
    zero, one, inf = (const(p + n, v, np.float32) for n, v in (("zero", 0.0), ("one", 1.0), ("inf", np.inf)))
    if opset >= 13:
        split = helper.make_node("Split", [TO_IMAGE_INPUT, const(p + "halves", [1, 1], np.int64)],
                                 [p + "scale", p + "offset"], axis=1)
    else:
        split = helper.make_node("Split", [TO_IMAGE_INPUT], [p + "scale", p + "offset"], axis=1, split=[1, 1])
    if opset >= 18:
        mean = helper.make_node("ReduceMean", [POINT_CONF_NAME, const(p + "points_axis", [1], np.int64)],
                                [FACE_CONF_NAME], keepdims=0)
    else:
        mean = helper.make_node("ReduceMean", [POINT_CONF_NAME], [FACE_CONF_NAME], axes=[1], keepdims=0)
    graph.node.extend([
        split,
        helper.make_node("Mul", [points, p + "scale"], [p + "scaled"]),  # (N, L, 2) x (N, 1, 2)
        helper.make_node("Add", [p + "scaled", p + "offset"], [MAPPED_NAME]),
        helper.make_node("Abs", [scores], [p + "magnitude"]),
        helper.make_node("Less", [p + "magnitude", inf], [p + "finite"]),  # NaN and ±inf: False
        helper.make_node("Where", [p + "finite", scores, zero], [p + "finite_scores"]),
        helper.make_node("Max", [p + "finite_scores", zero], [p + "at_least_zero"]),
        helper.make_node("Min", [p + "at_least_zero", one], [POINT_CONF_NAME]),
        mean,
    ])
    graph.input.append(helper.make_tensor_value_info(TO_IMAGE_INPUT, TensorProto.FLOAT, [dim, 2, 2]))
    n = meta.scheme.num_points
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(MAPPED_NAME, TensorProto.FLOAT, [dim, n, 2]),
        helper.make_tensor_value_info(scores, TensorProto.FLOAT, [dim, n]),
        helper.make_tensor_value_info(POINT_CONF_NAME, TensorProto.FLOAT, [dim, n]),
        helper.make_tensor_value_info(FACE_CONF_NAME, TensorProto.FLOAT, [dim]),
    ])
    onnx.checker.check_model(model)
    return model


def _openvino_model(model, meta: ModelMetadata):
    """The OpenVINO model with the same map input and operations (opset ops) appended."""
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    import openvino.opset13 as ops

    points_name, scores_name = _check_mappable(meta)
    params = model.get_parameters()
    if len(params) != 1:
        raise ConversionError(f"the IR has {len(params)} inputs; one image input expected")
    batch = params[0].get_partial_shape()[0]  # a static batch stays static

    def source(name):
        found = [o.get_node().input_value(0) for o in model.outputs if name in o.get_names()]
        if len(found) != 1:
            raise ConversionError(f"the IR has no output {name!r}")
        return found[0]

    points, scores = source(points_name), source(scores_name)
    to_image = ops.parameter(ov.PartialShape([batch, 2, 2]), ov.Type.f32, name=TO_IMAGE_INPUT)
    to_image.output(0).get_tensor().set_names({TO_IMAGE_INPUT})
    scale, offset = ops.split(to_image, ops.constant(np.array(1, np.int64)), 2).outputs()
    mapped = ops.add(ops.multiply(points, scale), offset)
    f32 = lambda v: ops.constant(np.array(v, np.float32))  # noqa: E731 - a scalar constant
    finite = ops.less(ops.abs(scores), f32(np.inf))
    conf = ops.minimum(ops.maximum(ops.select(finite, scores, f32(0.0)), f32(0.0)), f32(1.0))
    face = ops.reduce_mean(conf, ops.constant(np.array([1], np.int64)), keep_dims=False)
    results = []
    for node, name in ((mapped, MAPPED_NAME), (scores, scores_name), (conf, POINT_CONF_NAME), (face, FACE_CONF_NAME)):
        out = node.output(0) if hasattr(node, "output") else node
        out.get_tensor().set_names({name})
        results.append(ops.result(out))
    return ov.Model(results, [*params, to_image], model.get_friendly_name())


def random_maps(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2, 2) float32 maps like real faces' in photos up to ~2000 px: scale 0.3–8, offset 0–2000 px."""
    rng = np.random.default_rng(seed)
    maps = np.empty((n, 2, 2), np.float32)
    maps[:, 0] = rng.uniform(0.3, 8.0, (n, 2))
    maps[:, 1] = rng.uniform(0.0, 2000.0, (n, 2))
    return maps


def _check_equal(original: Path, mapped: Path, meta: ModelMetadata) -> dict[str, float]:
    """The mapped file against the original file's points mapped back and scored in numpy."""
    tensor = reference_tensors(meta)
    before, after = open_backend(original, threads=1), open_backend(mapped, threads=1)
    pts, scores = (outputs_by_role(before.metadata, before.run(tensor))[r] for r in IN_GRAPH_ROLES)
    pc = unit_interval(scores)
    maps = random_maps(len(tensor))
    want = (pts.astype(np.float64) * maps[:, :1] + maps[:, 1:]).astype(np.float32)
    got = outputs_by_role(after.metadata, after.run(tensor, maps))
    ident = outputs_by_role(after.metadata, after.run(tensor))["mapped_points"]
    magnitude = np.maximum(np.abs(want), np.abs(maps[:, 1:]))  # a point near 0 still sums a large offset
    ulps = float((np.abs(got["mapped_points"].astype(np.float64) - want) / np.spacing(magnitude)).max())
    dc = max(float(np.abs(got["point_confidence"] - pc).max()),
             float(np.abs(got["face_confidence"] - face_confidence(pc)).max()),
             float(np.abs(got["point_scores"] - scores).max()))
    if not (ulps <= MAX_ULPS and dc <= MAX_CONF_DIFF and np.array_equal(ident, pts)):
        raise ConversionError(f"the in-graph map back differs from numpy's by {ulps:.3g} float32 steps (allowed "
                              f"{MAX_ULPS}) / {dc:.3g} in confidence (allowed {MAX_CONF_DIFF}), or the identity map "
                              "changes the points; file not written")
    return {"max_ulps": ulps, "max_point_diff_px": float(np.abs(got["mapped_points"] - want).max()),
            "max_confidence_diff": dc, "faces": int(len(tensor))}


def map_back_in_graph(path: str | Path, out_path: str | Path | None = None) -> tuple[Path, dict[str, float]]:
    """Write ``out_path`` (default: ``path`` itself, atomically) mapping back and scoring in its graph.

    ONNX and OpenVINO files whose graph decodes (``--decode-in-graph``); returns the written path and the
    measured difference to the numpy path.
    """
    path = Path(path)
    meta = open_backend(path, threads=1).metadata
    fmt = format_of(path).name
    if fmt in NOT_MAPPED:
        raise ConversionError(f"not mapping back in the graph of a {fmt} file: {NOT_MAPPED[fmt]}")
    transforms = {"onnx": _onnx_graph, "openvino": _openvino_model}
    if fmt not in transforms:
        raise ConversionError(f"the map back in the graph is built for ONNX and OpenVINO files, not {fmt}")
    _check_mappable(meta)
    return rewrite_model(path, out_path, mapped_metadata(meta), transforms[fmt], meta,
                         lambda staged: _check_equal(path, staged, meta))
