"""The H3R decoder inside the graph (converters.graph_decode) and the fast exact top-k of the numpy decoder."""
from __future__ import annotations

import numpy as np
import pytest

from sdk.backends import open_backend
from sdk.decoders import IN_GRAPH, decode_h3r_topk
from sdk.decoders.heatmap import _map_tables, _top_cells, top_cells
from sdk.errors import MetadataError


def _argpartition_cells(flat: np.ndarray, k: int) -> np.ndarray:
    """The k largest cells, ties to the lower index (ONNX TopK's rule), sorted by index."""
    return np.sort(np.argsort(-flat, axis=1, kind="stable")[:, :k], axis=1)


def _peaked_maps(rng, count: int, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    maps = []
    for _ in range(count):
        cx, cy = rng.uniform(-3, size + 3, 2)  # peaks off the map too: the window is clamped at the border
        maps.append(-((xx - cx) ** 2 + (yy - cy) ** 2) * rng.uniform(0.2, 3) + rng.normal(0, 0.3, (size, size)))
    return np.array(maps, np.float32).reshape(count, size * size)


@pytest.mark.parametrize("kind", ["peaked", "noise", "two peaks", "constant", "quantized"])
def test_top_cells_is_the_argpartition_set(kind):
    rng = np.random.default_rng(3)
    if kind == "peaked":
        flat = _peaked_maps(rng, 300)
    elif kind == "noise":  # no peak: every row takes the fallback
        flat = rng.normal(size=(50, 1024)).astype(np.float32)
    elif kind == "two peaks":  # the second peak outside the window holds some of the top cells
        flat = _peaked_maps(rng, 60)
        far = np.roll(flat.reshape(60, 32, 32), 16, axis=2).reshape(60, 1024)
        flat = np.maximum(flat, far + 1e-3)
    elif kind == "quantized":  # INT8 maps: few levels, so equal values at the 9th place (ties)
        flat = np.round(_peaked_maps(rng, 200) / 4) * 4
    else:
        flat = np.ones((4, 1024), np.float32) * 0.5
    got = np.sort(top_cells(flat, 9, 32, 32), axis=1)
    np.testing.assert_array_equal(got, _argpartition_cells(flat, 9))
    for k in (1, 4, 49):  # and the values the decoder reads with them
        idx, values = _top_cells(flat, k, 32, 32, flat.argmax(axis=1), _map_tables(len(flat), 32, 32))
        np.testing.assert_array_equal(np.sort(idx, axis=1), _argpartition_cells(flat, k))
        np.testing.assert_array_equal(values, np.take_along_axis(flat, idx, axis=1))


def test_h3r_decoder_unchanged_by_the_fast_top_k():
    rng = np.random.default_rng(0)
    maps = _peaked_maps(rng, 2 * 98).reshape(2, 98, 32, 32)
    pts, mass = decode_h3r_topk(maps, stride=4.0)
    want, _ = _reference_topk(maps, 4.0, 9)
    assert np.abs(pts - want).max() <= 1e-4
    assert mass.shape == (2, 98) and np.all((mass > 0) & (mass <= 1 + 1e-6))


def _reference_topk(maps: np.ndarray, stride: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's definition with a full stable sort and float64 softmax: the slow, obvious form."""
    n, l, h, w = maps.shape
    flat = maps.reshape(n * l, h * w).astype(np.float64)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(flat, idx, axis=1)
    peak = flat.max(axis=1, keepdims=True)
    top = np.exp(vals - peak)
    xy = np.stack([(top * (idx % w)).sum(1), (top * (idx // w)).sum(1)], -1) / top.sum(1)[:, None] * stride
    mass = top.sum(1) / np.exp(flat - peak).sum(1)
    return xy.reshape(n, l, 2), mass.reshape(n, l)


@pytest.mark.parametrize("kind", ["float", "quantised", "beyond exp range", "flat"])
@pytest.mark.parametrize("k", [1, 9, 49, 60])
def test_topk_decoder_is_its_definition(kind, k):
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:32, 0:32]
    maps = np.array([-((xx - cx) ** 2 + (yy - cy) ** 2) * 0.3 for cx, cy in rng.uniform(-2, 34, (2 * 20, 2))])
    maps = (maps + rng.normal(0, 0.2, maps.shape)).reshape(2, 20, 32, 32).astype(np.float32)
    if kind == "quantised":  # few levels: ties at the k-th value
        maps = np.round(maps * 2).astype(np.float32) / 2
    elif kind == "beyond exp range":  # |peak| > EXP_SAFE: the shifted softmax
        maps = maps + np.float32(80)
    elif kind == "flat":
        maps = rng.normal(size=maps.shape).astype(np.float32)
    pts, mass = decode_h3r_topk(maps, stride=4.0, topk=k)
    want_pts, want_mass = _reference_topk(maps, 4.0, k)
    assert np.abs(pts - want_pts).max() <= 1e-4
    np.testing.assert_allclose(mass, want_mass, rtol=1e-5)


@pytest.fixture(scope="module")
def decoded_pair(tmp_path_factory, tiny_maps_files):
    from converters.graph_decode import decode_in_graph

    out = tmp_path_factory.mktemp("graph_decode")
    fused = {}
    for src in tiny_maps_files.values():
        target = out / ("fused" + src.suffix)
        path, check = decode_in_graph(src, target)
        assert check["max_point_diff_px"] <= 1e-4 and check["faces"] > 0
        fused[src.suffix] = (src, path)
    return fused


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_decoded_file_predicts_what_the_maps_file_predicts(decoded_pair, suffix, face_image):
    from sdk.predictor import Predictor

    maps, fused = decoded_pair[suffix]
    a, b = Predictor(maps, threads=1), Predictor(fused, threads=1)
    assert b.metadata.decoder.params[IN_GRAPH] is True and a.metadata.decoder.params.get(IN_GRAPH) is None
    assert {o.role for o in b.metadata.outputs} == {"points", "point_scores"}
    boxes = [[40, 30, 160, 170], [100, 50, 200, 180]]
    pa, pb = a.predict(face_image, boxes), b.predict(face_image, boxes)
    assert np.abs(pa.landmarks - pb.landmarks).max() <= 1e-3  # ≤ 1e-4 input px × the crop's up-scaling
    assert np.abs(pa.face_confidence - pb.face_confidence).max() <= 1e-5
    flip_a, flip_b = a.predict(face_image, boxes, flip_test=True), b.predict(face_image, boxes, flip_test=True)
    assert np.abs(flip_a.landmarks - flip_b.landmarks).max() <= 1e-3


def test_decoding_twice_or_a_non_h3r_decoder_is_refused(decoded_pair, tmp_path):
    from converters.graph_decode import decode_in_graph
    from converters.source import ConversionError

    _, fused = decoded_pair[".onnx"]
    with pytest.raises(ConversionError, match="already decodes in its graph"):
        decode_in_graph(fused, tmp_path / "again.onnx")


def test_in_graph_metadata_needs_its_outputs(runtime_onnx):
    from sdk.backends import open_backend
    from sdk.metadata import ModelMetadata

    meta = open_backend(runtime_onnx).metadata
    assert meta.decoder.params.get(IN_GRAPH) is True  # the bundled default decodes in its graph
    doc = meta.to_dict()
    doc["outputs"] = [o for o in doc["outputs"] if o["role"] != "point_scores"]
    with pytest.raises(MetadataError, match="point_scores"):
        ModelMetadata.from_dict(doc)
    doc = meta.to_dict()
    doc["decoder"]["params"][IN_GRAPH] = "yes"
    with pytest.raises(MetadataError, match="true or false"):
        ModelMetadata.from_dict(doc)


@pytest.fixture(scope="module")
def pixel_input_pair(tmp_path_factory, decoded_pair):
    from converters.graph_input import normalise_in_graph

    out = tmp_path_factory.mktemp("graph_input")
    pairs = {}
    for suffix, (maps, fused) in decoded_pair.items():
        path, worst = normalise_in_graph(fused, out / ("pixels" + suffix))
        assert worst <= 1e-4
        pairs[suffix] = (maps, path)
    return pairs


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_pixel_input_file_predicts_what_the_original_predicts(pixel_input_pair, suffix, face_image):
    from converters.graph_input import PIXELS_NAME
    from sdk.predictor import Predictor

    maps, pixels = pixel_input_pair[suffix]
    a, b = Predictor(maps, threads=1), Predictor(pixels, threads=1)
    spec = b.metadata.input
    assert (spec.name, spec.layout, spec.color, spec.scale, tuple(spec.std)) == (PIXELS_NAME, "nhwc", "bgr", 1.0,
                                                                              (1.0, 1.0, 1.0))
    boxes = [[40, 30, 160, 170]]
    for kwargs in ({}, {"flip_test": True}):
        pa, pb = a.predict(face_image, boxes, **kwargs), b.predict(face_image, boxes, **kwargs)
        assert np.abs(pa.landmarks - pb.landmarks).max() <= 1e-3
    rgb = np.ascontiguousarray(face_image[..., ::-1])
    assert np.abs(b.predict(rgb, boxes, color="rgb").landmarks - a.predict(face_image, boxes).landmarks).max() <= 1e-3


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_pixel_input_takes_uint8_and_refuses_a_normalised_tensor(pixel_input_pair, suffix, face_image):
    from sdk.errors import InputError
    from sdk.preprocess import normalise, prepare_batch, takes_pixels

    maps, pixels = pixel_input_pair[suffix]
    b = open_backend(pixels, threads=1)
    spec = b.metadata.input
    assert spec.dtype == "uint8" and takes_pixels(spec)
    tensor, _ = prepare_batch(face_image, [[40, 30, 160, 170]], spec, b.metadata.crop)
    assert tensor.dtype == np.uint8 and tensor.shape == (1, spec.height, spec.width, 3)
    want = b.run(tensor)
    for name, value in b.run(tensor.astype(np.float32)).items():  # float pixel values are the same pixels
        assert np.array_equal(value, want[name])
    original = open_backend(maps, threads=1).metadata.input
    with pytest.raises(InputError, match="uint8 pixels"):
        b.run(normalise(tensor, original).transpose(0, 2, 3, 1).copy())


def test_float_pixel_files_are_given_the_uint8_input(decoded_pair, tmp_path):
    """A file from the earlier float32-pixels rewrite gets a Cast in front, outputs unchanged."""
    import dataclasses

    import onnx
    from onnx import TensorProto

    from converters.graph_input import normalise_in_graph, pixels_metadata
    from sdk.metadata import METADATA_KEY

    _, fused = decoded_pair[".onnx"]
    pixels, _ = normalise_in_graph(fused, tmp_path / "pixels.onnx")
    model = onnx.load(str(pixels))  # made into the float32-pixels form the earlier rewrite wrote
    meta = open_backend(pixels, threads=1).metadata
    old_meta = meta.replace(input=dataclasses.replace(meta.input, dtype="float32", quant_scale=None,
                                                      quant_zero_point=None))
    (cast,) = [n for n in model.graph.node if n.op_type == "Cast" and n.output[0].startswith("edgemark_normalise/")]
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    model.graph.node.remove(cast)
    for node in model.graph.node:
        node.input[:] = [cast.input[0] if n == cast.output[0] else n for n in node.input]
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = old_meta.to_json()
    onnx.save(model, str(tmp_path / "float_pixels.onnx"))
    assert open_backend(tmp_path / "float_pixels.onnx", threads=1).metadata.input.dtype == "float32"
    upgraded, worst = normalise_in_graph(tmp_path / "float_pixels.onnx", tmp_path / "upgraded.onnx")
    assert worst == 0.0
    assert open_backend(upgraded, threads=1).metadata.input == pixels_metadata(old_meta).input


def test_normalising_twice_is_refused(pixel_input_pair, tmp_path):
    from converters.graph_input import normalise_in_graph
    from converters.source import ConversionError

    _, pixels = pixel_input_pair[".onnx"]
    with pytest.raises(ConversionError, match="already normalises"):
        normalise_in_graph(pixels, tmp_path / "again.onnx")


def test_int8_speedup_measurement_shape(tiny_onnx):
    from converters.speedup import measure_speedup, speedup_text

    s = measure_speedup(tiny_onnx, tiny_onnx, threads=(1,), runs=5, warmup=1)
    cell = s["threads_1"]
    assert cell["fp32_ms"] > 0 and cell["int8_ms"] > 0 and cell["speedup"] == pytest.approx(
        cell["fp32_ms"] / cell["int8_ms"], rel=1e-2)
    assert isinstance(s["not_faster"], bool) and "1t" in speedup_text(s)


def _maps_only_tflite(meta, batch: int, new_tflite_graph) -> bytes:
    """A .tflite whose graph is one RESHAPE (maps in → the ``heatmap`` output): the decoder appended to it
    then sees exactly the maps a test feeds in."""
    from tensorflow.lite.tools import flatbuffer_utils

    model, g = new_tflite_graph()
    graph = g.graph
    (spec,) = meta.outputs
    shape = (batch, *spec.shape)
    maps_in, maps_out = g.tensor("maps_in", shape), g.tensor(spec.name, shape)
    g.op("RESHAPE", [maps_in, g.constant("shape", shape, np.int32)], [maps_out], "ReshapeOptions",
         newShape=list(shape))
    graph.inputs, graph.outputs = np.array([maps_in], np.int32), np.array([maps_out], np.int32)
    from converters.graph_decode import _tflite_graph

    _tflite_graph(model, meta)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.mark.parametrize("kind", ["peaked", "quantized", "constant"])
def test_tflite_in_graph_decoder_equals_numpy_ties_included(runtime_onnx, kind, new_tflite_graph):
    """TOPK_V2 in the appended TFLite decoder picks the cells the numpy decoder picks, ties to the lower index."""
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="runs the decoder on LiteRT")
    from sdk.backends import open_backend
    from sdk.metadata import DecoderSpec, OutputSpec

    meta = open_backend(runtime_onnx).metadata.replace(
        outputs=(OutputSpec("heatmap", "heatmap", (98, 32, 32), "nchw"),),
        decoder=DecoderSpec("h3r_topk", {"stride": 4, "topk": 9}))
    rng = np.random.default_rng(5)
    maps = _peaked_maps(rng, 2 * 98)
    if kind == "quantized":  # few levels, as an INT8 file's dequantized map: ties at the k-th value
        maps = np.round(maps / np.ptp(maps, axis=1, keepdims=True) * 12) / 4
    elif kind == "constant":
        maps = np.zeros_like(maps)
    maps = maps.reshape(2, 98, 32, 32).astype(np.float32)
    interpreter = litert.Interpreter(model_content=_maps_only_tflite(meta, 2, new_tflite_graph))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], maps)
    interpreter.invoke()
    out = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    pts, mass = decode_h3r_topk(maps, stride=4, topk=9)
    if kind == "quantized":
        flat = maps.reshape(-1, 1024)
        kth = -np.sort(-flat, axis=1)[:, 8]
        assert (np.count_nonzero(flat >= kth[:, None], axis=1) > 9).sum() > 20  # ties do decide here
    assert np.abs(out["edgemark_points"] - pts).max() <= 1e-4
    assert np.abs(out["edgemark_point_scores"] - mass).max() <= 1e-5


def test_int8_speedup_compares_whole_predict_when_the_graphs_differ(decoded_pair):
    from converters.speedup import measure_speedup, speedup_text

    maps, fused = decoded_pair[".onnx"]
    s = measure_speedup(fused, maps, threads=(1,), runs=5, warmup=1)
    cell = s["threads_1"]
    assert s["basis"] == "predict" and cell["speedup"] == pytest.approx(
        cell["fp32_predict_ms"] / cell["int8_predict_ms"], rel=1e-2)
    assert "whole predict" in speedup_text(s)
