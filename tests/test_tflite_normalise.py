"""Normalisation in a TFLite graph (``converters.graph_input._tflite_graph``): small synthetic graphs of the
three shapes the converters write — NCHW input with a leading TRANSPOSE (litert-torch, onnx2tf), the same
behind an INT8 file's QUANTIZE, and NHWC input (onnx2tf's PFLD) — rewritten and run on LiteRT."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TFLite files are edited with TensorFlow's flatbuffer utilities")
pytest.importorskip("ai_edge_litert.interpreter", reason="the rewritten files run on LiteRT")

from sdk.backends import open_backend  # noqa: E402

SIZE, CELLS, POINTS = 128, 32, 98
IMAGENET = dict(color="rgb", scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _metadata(runtime_onnx, layout: str):
    from sdk.metadata import DecoderSpec, OutputSpec

    meta = open_backend(runtime_onnx).metadata
    spec = dataclasses.replace(meta.input, name="input", layout=layout, dtype="float32", quant_scale=None,
                               quant_zero_point=None, **IMAGENET)
    return meta.replace(input=spec, outputs=(OutputSpec("heatmap", "heatmap", (POINTS, CELLS, CELLS), "nchw"),),
                        decoder=DecoderSpec("h3r_topk", {"stride": 4, "topk": 9})).validate()


def _write_tflite(new_tflite_graph, path, meta, layout: str, quantized: bool = False, head: str = "transpose"):
    """input → [QUANTIZE → TRANSPOSE → DEQUANTIZE | TRANSPOSE | –] → AVERAGE_POOL 4×4 → 1×1 CONV (3 → 98)
    → TRANSPOSE → ``heatmap`` (1, 98, 32, 32); ``head='reshape'``: the NCHW input read by a RESHAPE instead."""
    from tensorflow.lite.tools import flatbuffer_utils

    from converters.to_tflite import embed_tflite_metadata, ensure_signature

    model, g = new_tflite_graph()
    schema, graph = g.schema, g.graph
    nchw, nhwc = (1, 3, SIZE, SIZE), (1, SIZE, SIZE, 3)
    image = g.tensor("input", nchw if layout == "nchw" else nhwc)
    to_nhwc = g.constant("to_nhwc", [0, 2, 3, 1], np.int32)
    current = image
    if quantized:
        quant = schema.QuantizationParametersT()
        quant.scale, quant.zeroPoint = [0.0187], [-14]
        q_in, q_nhwc = g.tensor("q_in", nchw, "INT8"), g.tensor("q_nhwc", nhwc, "INT8")
        for index in (q_in, q_nhwc):
            g.graph.tensors[index].quantization = quant
        g.op("QUANTIZE", [image], [q_in])
        g.op("TRANSPOSE", [q_in, to_nhwc], [q_nhwc])
        current = g.tensor("dequantized", nhwc)
        g.op("DEQUANTIZE", [q_nhwc], [current])
    elif layout == "nchw" and head == "transpose":
        current = g.tensor("nhwc", nhwc)
        g.op("TRANSPOSE", [image, to_nhwc], [current])
    elif layout == "nchw":  # read by a RESHAPE: a graph whose layout change edgemark does not know
        current = g.tensor("nhwc", nhwc)
        g.op("RESHAPE", [image, g.constant("shape", nhwc, np.int32)], [current], "ReshapeOptions", newShape=list(nhwc))
    pooled = g.tensor("pooled", (1, CELLS, CELLS, 3))
    g.op("AVERAGE_POOL_2D", [current], [pooled], "Pool2DOptions", padding=schema.Padding.VALID, strideW=4,
         strideH=4, filterWidth=4, filterHeight=4, fusedActivationFunction=0)
    rng = np.random.default_rng(3)
    maps = g.tensor("maps_nhwc", (1, CELLS, CELLS, POINTS))
    g.op("CONV_2D", [pooled, g.constant("w", rng.normal(0, 3, (POINTS, 1, 1, 3)), np.float32),
                     g.constant("b", rng.normal(0, 1, POINTS), np.float32)], [maps], "Conv2DOptions",
         padding=schema.Padding.VALID, strideW=1, strideH=1, dilationWFactor=1, dilationHFactor=1,
         fusedActivationFunction=0)
    heatmap = g.tensor("heatmap", (1, POINTS, CELLS, CELLS))
    g.op("TRANSPOSE", [maps, g.constant("to_nchw", [0, 3, 1, 2], np.int32)], [heatmap])
    graph.inputs, graph.outputs = np.array([image], np.int32), np.array([heatmap], np.int32)
    ensure_signature(model)
    embed_tflite_metadata(model, meta)
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return path


@pytest.fixture(scope="module", params=[("nchw", False), ("nchw", True), ("nhwc", False)],
                ids=["nchw", "nchw-int8", "nhwc"])
def tflite_pair(request, runtime_onnx, tmp_path_factory, new_tflite_graph):
    from converters.graph_input import normalise_in_graph

    layout, quantized = request.param
    out = tmp_path_factory.mktemp("tflite_normalise")
    src = _write_tflite(new_tflite_graph, out / "float_input.tflite", _metadata(runtime_onnx, layout), layout, quantized)
    dst, worst = normalise_in_graph(src, out / "pixels.tflite")
    return src, dst, worst, quantized, layout


def _op_names(path):
    from tensorflow.lite.tools import flatbuffer_utils

    from converters.tflite_graph import GraphEditor

    g = GraphEditor(flatbuffer_utils.read_model(str(path)))
    return [g.op_name(op) for op in g.graph.operators]


def test_rewritten_tflite_takes_uint8_pixels_through_a_delegable_head(tflite_pair):
    from converters.graph_input import PIXELS_NAME
    from sdk.preprocess import takes_pixels

    src, dst, worst, quantized, layout = tflite_pair
    assert worst <= 3e-6  # one rounding where numpy has two
    backend = open_backend(dst, threads=1)
    spec = backend.metadata.input
    assert takes_pixels(spec) and spec.name == PIXELS_NAME and spec.layout == "nhwc"
    detail = backend.interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and tuple(detail["shape"]) == (1, SIZE, SIZE, 3)
    before, after = _op_names(src), _op_names(dst)
    assert after[:2] == ["DEQUANTIZE", "CONV_2D"]
    assert after.count("TRANSPOSE") == before.count("TRANSPOSE") - (layout == "nchw")  # NCHW's leading one goes
    if quantized:
        assert after[2] == "QUANTIZE" and after.count("QUANTIZE") == 1


def test_rewritten_tflite_predicts_what_the_float_file_predicts(tflite_pair, face_image):
    from sdk.predictor import Predictor

    src, dst, *_ = tflite_pair
    a, b = Predictor(src, threads=1), Predictor(dst, threads=1)
    boxes = [[40, 30, 160, 170], [100, 50, 200, 180], [10, 10, 90, 120]]  # three faces through a batch-1 file
    for kwargs in ({}, {"flip_test": True}):
        pa, pb = a.predict(face_image, boxes, **kwargs), b.predict(face_image, boxes, **kwargs)
        assert np.abs(pa.landmarks - pb.landmarks).max() <= 1e-3
        assert np.abs(pa.face_confidence - pb.face_confidence).max() <= 1e-5
    rgb = np.ascontiguousarray(face_image[..., ::-1])
    assert np.abs(b.predict(rgb, boxes, color="rgb").landmarks - a.predict(face_image, boxes).landmarks).max() <= 1e-3


def test_rewritten_tflite_refuses_a_normalised_tensor(tflite_pair, face_image):
    from sdk.errors import InputError
    from sdk.preprocess import normalise, prepare_batch

    src, dst, *_ = tflite_pair
    b = open_backend(dst, threads=1)
    tensor, _ = prepare_batch(face_image, [[40, 30, 160, 170]], b.metadata.input, b.metadata.crop)
    assert tensor.dtype == np.uint8
    want = b.run(tensor)
    for name, value in b.run(tensor.astype(np.float32)).items():  # float pixel values are the same pixels
        assert np.array_equal(value, want[name])
    with pytest.raises(InputError, match="uint8 pixels"):
        b.run(normalise(tensor, open_backend(src).metadata.input).transpose(0, 2, 3, 1).copy())


def test_a_tflite_input_without_the_leading_transpose_is_refused(runtime_onnx, tmp_path, new_tflite_graph):
    from converters.graph_input import normalise_in_graph
    from converters.source import ConversionError

    src = _write_tflite(new_tflite_graph, tmp_path / "odd.tflite", _metadata(runtime_onnx, "nchw"), "nchw", head="reshape")
    with pytest.raises(ConversionError, match="TRANSPOSE"):
        normalise_in_graph(src, tmp_path / "pixels.tflite")
    assert not (tmp_path / "pixels.tflite").exists()


def test_cli_normalises_a_tflite_in_place_and_says_when_there_is_nothing_to_move(tflite_pair, tmp_path, capsys):
    import shutil

    from edgemark_cli import main

    src, *_ = tflite_pair
    target = tmp_path / "in_place.tflite"
    shutil.copyfile(src, target)
    assert main(["convert", str(target), "--normalise-in-graph"]) == 0
    assert "normalisation now in the graph" in capsys.readouterr().out
    assert open_backend(target).metadata.input.dtype == "uint8"
    assert main(["convert", str(target), "--normalise-in-graph"]) == 0
    assert "kept in numpy: the file already normalises" in capsys.readouterr().out
