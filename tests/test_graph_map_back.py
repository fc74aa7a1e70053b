"""The map back to image pixels and the confidence inside the graph (converters.graph_map_back)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from sdk.confidence import face_confidence, unit_interval
from sdk.decoders import IN_GRAPH, MAPPED_ROLES, MAPS_BACK, TO_IMAGE_INPUT
from sdk.errors import InputError, MetadataError

pytest.importorskip("onnxruntime")


def _within_steps(got: np.ndarray, want: np.ndarray, magnitude: float, steps: int = 3) -> bool:
    """Within ``steps`` float32 steps at ``magnitude``, the largest term of the float32 sum (the image's size)."""
    return bool((np.abs(got.astype(np.float64) - want) <= steps * np.spacing(np.float32(magnitude))).all())


def _assert_same_predictions(a, b, image, boxes) -> list:
    """``b`` (mapping back in its graph) predicts what ``a`` does, plain and with the flip test: landmarks
    within 3 float32 steps of the image's size (two roundings on either side with the flip test), the
    same confidences and scores; returns b's predictions."""
    got = []
    for flip in (False, True):
        pa, pb = a.predict(image, boxes, flip_test=flip), b.predict(image, boxes, flip_test=flip)
        assert _within_steps(pb.landmarks, pa.landmarks, max(image.shape)), np.abs(pa.landmarks - pb.landmarks).max()
        assert pb.landmarks.dtype == np.float32 and pb.landmarks.shape == pa.landmarks.shape
        for name in ("point_confidence", "face_confidence", "scores"):
            np.testing.assert_allclose(getattr(pb, name), getattr(pa, name), atol=1e-6, err_msg=name)
        assert pb.face_confidence.shape == (len(boxes),) and pb.face_confidence.dtype == np.float32
        got.append(pb)
    return got


@pytest.fixture(scope="module")
def mapped_pair(tmp_path_factory, tiny_maps_files):
    """{suffix: (decoding file, the same file mapping back)} for a tiny H3R model, ONNX and OpenVINO."""
    out = tmp_path_factory.mktemp("graph_map_back")
    pairs = {}
    for src in tiny_maps_files.values():
        decoded, mapped = _decode_and_map_back(src, out)
        pairs[src.suffix] = (decoded, mapped)
    return pairs


def _decode_and_map_back(src, out):
    """``src`` rewritten twice, each step checked by its converter: (decoding file, mapping-back file)."""
    from converters.graph_decode import decode_in_graph
    from converters.graph_map_back import map_back_in_graph

    decoded, check = decode_in_graph(src, out / ("decoded" + src.suffix))
    assert check["max_point_diff_px"] <= 1e-4  # a runtime may fuse the float32 operations (one step apart)
    mapped, check = map_back_in_graph(decoded, out / ("mapped" + src.suffix))
    assert check["max_ulps"] <= 2 and check["max_confidence_diff"] <= 1e-6 and check["faces"] > 0
    return decoded, mapped


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_mapped_file_predicts_what_the_decoding_file_predicts(mapped_pair, suffix, face_image):
    from sdk.predictor import Predictor, PredictorOptions

    decoded, mapped = mapped_pair[suffix]
    a, b = Predictor(decoded, threads=1), Predictor(mapped, threads=1)
    assert b.backend.map_input == TO_IMAGE_INPUT and a.backend.map_input is None
    assert b.metadata.decoder.params[MAPS_BACK] is True and b.metadata.decoder.params[IN_GRAPH] is True
    assert {o.role for o in b.metadata.outputs} == set(MAPPED_ROLES)
    boxes = [[40, 30, 160, 170], [100, 50, 200, 180], [5, 5, 60, 70]]
    _assert_same_predictions(a, b, face_image, boxes)
    # more faces than one backend call takes: chunked, same answer
    chunked = Predictor(mapped, options=PredictorOptions(threads=1, max_batch=2)).predict(face_image, boxes)
    np.testing.assert_array_equal(chunked.landmarks, b.predict(face_image, boxes).landmarks)


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_identity_map_gives_the_input_coordinates_bit_for_bit(mapped_pair, suffix):
    from converters.graph_rewrite import reference_tensors
    from sdk.backends import open_backend
    from sdk.outputs import outputs_by_role

    decoded, mapped = mapped_pair[suffix]
    a, b = open_backend(decoded, threads=1), open_backend(mapped, threads=1)
    tensor = reference_tensors(a.metadata, count=4)
    want = outputs_by_role(a.metadata, a.run(tensor))
    got = outputs_by_role(b.metadata, b.run(tensor))  # no map given: the backend feeds the identity
    np.testing.assert_array_equal(got["mapped_points"], want["points"])
    np.testing.assert_array_equal(got["point_scores"], want["point_scores"])
    np.testing.assert_array_equal(got["point_confidence"], unit_interval(want["point_scores"]))
    np.testing.assert_allclose(got["face_confidence"], face_confidence(unit_interval(want["point_scores"])), atol=1e-7)


def test_map_input_is_checked(mapped_pair):
    from sdk.backends import open_backend

    decoded, mapped = mapped_pair[".onnx"]
    b = open_backend(mapped, threads=1)
    tensor = np.zeros((2, *b.input_shape()), np.uint8) if b.metadata.input.dtype == "uint8" else \
        np.zeros((2, *b.input_shape()), np.float32)
    with pytest.raises(InputError, match=r"float32 array shaped \(2, 2, 2\)"):
        b.run(tensor, np.ones((1, 2, 2), np.float32))
    with pytest.raises(InputError, match=r"float32 array shaped"):
        b.run(tensor, np.ones((2, 2, 2), np.float64))
    with pytest.raises(InputError, match="does not map points back"):
        open_backend(decoded, threads=1).run(tensor, np.ones((2, 2, 2), np.float32))


def _scores_graph(points: int):
    """An ONNX 'decoder in the graph' whose points and scores are its input's slices: what the confidence
    part of the map back does with any scores, NaN and inf included, can be fed directly."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from converters.graph_decode import POINTS_NAME, SCORES_NAME

    nodes = [helper.make_node("Slice", ["x", "s0", "s2", "ax"], [POINTS_NAME]),
             helper.make_node("Slice", ["x", "s2", "s3", "ax"], ["last"]),
             helper.make_node("Squeeze", ["last", "ax"], [SCORES_NAME])]
    inits = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("s0", 0), ("s2", 2), ("s3", 3), ("ax", 2))]
    graph = helper.make_graph(nodes, "scores", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", points, 3])],
                              [helper.make_tensor_value_info(POINTS_NAME, TensorProto.FLOAT, ["batch", points, 2]),
                               helper.make_tensor_value_info(SCORES_NAME, TensorProto.FLOAT, ["batch", points])], inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_in_graph_confidence_is_the_numpy_rule(runtime_onnx, runtime, tmp_path):
    """Non-finite scores give 0, the rest are clipped to [0, 1], the face confidence is their mean."""
    import onnx

    from converters import graph_map_back
    from converters.graph_decode import POINTS_NAME, SCORES_NAME
    from sdk.backends import open_backend
    from sdk.metadata import OutputSpec

    meta = open_backend(runtime_onnx).metadata
    n = meta.scheme.num_points
    decoded = meta.replace(outputs=(OutputSpec(POINTS_NAME, "points", (n, 2), "flat"),
                                    OutputSpec(SCORES_NAME, "point_scores", (n,), "flat")),
                           decoder=type(meta.decoder)(meta.decoder.name, {"stride": 4.0, "topk": 9, IN_GRAPH: True}))
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 1.5, (3, n, 3)).astype(np.float32)
    x[0, :4, 2] = [np.nan, np.inf, -np.inf, 0.25]
    maps = np.stack([rng.uniform(0.5, 3, (3, 2)), rng.uniform(-50, 900, (3, 2))], axis=1).astype(np.float32)
    path = tmp_path / "scores.onnx"
    if runtime == "onnxruntime":
        import onnxruntime as ort

        onnx.save(graph_map_back._onnx_graph(_scores_graph(n), decoded), str(path))
        run = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run
        mapped, scores, pc, fc = run(None, {"x": x, TO_IMAGE_INPUT: maps})
    else:
        pytest.importorskip("openvino")
        from sdk.backends.openvino import import_openvino

        ov = import_openvino()
        onnx.save(_scores_graph(n), str(path))
        model = graph_map_back._openvino_model(ov.Core().read_model(str(path)), decoded)
        request = ov.Core().compile_model(model, "CPU").create_infer_request()
        request.infer({0: x, 1: maps})
        mapped, scores, pc, fc = (np.array(request.get_output_tensor(i).data) for i in range(4))
    want_pc = unit_interval(x[..., 2])
    np.testing.assert_array_equal(pc, want_pc)
    assert pc[0, :4].tolist() == [0.0, 0.0, 0.0, 0.25]
    np.testing.assert_allclose(fc, face_confidence(want_pc), atol=1e-6)
    want = x[..., :2].astype(np.float64) * maps[:, :1] + maps[:, 1:]
    assert _within_steps(mapped, want, 2 * np.abs(want).max(), steps=2)
    np.testing.assert_array_equal(scores[np.isfinite(scores)], x[..., 2][np.isfinite(x[..., 2])])


def test_map_back_needs_a_decoding_graph_and_is_not_done_twice(mapped_pair, tiny_onnx, tmp_path):
    from converters.graph_map_back import map_back_in_graph
    from converters.source import ConversionError

    with pytest.raises(ConversionError, match="--decode-in-graph first"):
        map_back_in_graph(tiny_onnx, tmp_path / "maps.onnx")
    _, mapped = mapped_pair[".onnx"]
    with pytest.raises(ConversionError, match="already maps points back"):
        map_back_in_graph(mapped, tmp_path / "again.onnx")
    assert not (tmp_path / "maps.onnx").exists() and not (tmp_path / "again.onnx").exists()


def test_metadata_and_graph_must_agree_on_the_map_input(mapped_pair, tmp_path):
    """maps_back needs in_graph; a file whose metadata and inputs disagree is refused at load, naming it."""
    from converters.onnx_io import embed_metadata, save_onnx
    from sdk.backends import open_backend
    from sdk.metadata import ModelMetadata

    decoded, mapped = mapped_pair[".onnx"]
    meta = open_backend(mapped).metadata
    doc = meta.to_dict()
    doc["decoder"]["params"].pop(IN_GRAPH)
    with pytest.raises(MetadataError, match="needs 'in_graph'"):
        ModelMetadata.from_dict(doc)
    import onnx

    # the decoding file's graph (one input) under metadata that says it maps back
    lying = tmp_path / "lying.onnx"
    save_onnx(embed_metadata(onnx.load(str(decoded)), meta), lying)
    with pytest.raises(MetadataError, match="lacks the input 'edgemark_to_image'"):
        open_backend(lying)


def test_convert_cli_rewrites_in_place_and_says_what_it_did(mapped_pair, tmp_path, capsys):
    from edgemark_cli import main

    decoded, _ = mapped_pair[".onnx"]
    target = tmp_path / "cli.onnx"
    shutil.copyfile(decoded, target)
    assert main(["convert", str(target), "--map-back-in-graph"]) == 0
    assert "map back and confidence now in the graph" in capsys.readouterr().out
    from sdk.backends import open_backend

    assert open_backend(target).map_input == TO_IMAGE_INPUT


def test_bundled_default_maps_back_in_its_graph(runtime_onnx):
    """The bundled ONNX / OpenVINO default files map back in their graphs (README: SDK overhead)."""
    from sdk.backends import open_backend

    for path in (runtime_onnx, runtime_onnx.with_suffix(".xml")):
        if path.suffix == ".xml":
            pytest.importorskip("openvino")
        backend = open_backend(path)
        assert backend.map_input == TO_IMAGE_INPUT and backend.metadata.decoder.params[MAPS_BACK] is True


# --- regression files (PFLD): the rescale in the graph, then the map back; a static batch of one ----------
@pytest.fixture(scope="module", params=[False, True], ids=["unit", "centered"])
def regression_files(request, tmp_path_factory):
    """A tiny coordinate regressor with PFLD's metadata and its static batch of 1 (ONNX opset 9, and its
    OpenVINO IR): {suffix: (numpy-decoded file, decoding + mapping-back file)}."""
    pytest.importorskip("openvino")
    from pathlib import Path

    from onnx import TensorProto, helper, numpy_helper

    from converters.api import metadata_from_json
    from converters.onnx_io import embed_metadata, save_onnx
    from converters.to_openvino import convert_onnx_to_openvino

    centered = request.param
    meta = metadata_from_json(Path(__file__).resolve().parents[1] / "converters" / "metadata" / "pfld_ghostone_112.json")
    meta = meta.replace(decoder=type(meta.decoder)("regression", {**meta.decoder.params, "centered": centered}))
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["linear"]),
             helper.make_node("Tanh" if centered else "Sigmoid", ["linear"], ["output"])]
    inits = [numpy_helper.from_array(rng.normal(0, 2, (3, 196)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 1, 196).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "tiny_pfld", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 196])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=8)
    out = tmp_path_factory.mktemp("regression_map_back")
    src = out / "pfld.onnx"
    save_onnx(embed_metadata(model, meta), src)
    xml = out / "pfld.xml"
    convert_onnx_to_openvino(src, meta, xml)
    return {path.suffix: (path, _decode_and_map_back(path, out)[1]) for path in (src, xml)}


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_regression_file_decodes_and_maps_back_in_its_graph(regression_files, suffix, face_image):
    from sdk.predictor import Predictor

    numpy_file, mapped = regression_files[suffix]
    a, b = Predictor(numpy_file, threads=1), Predictor(mapped, threads=1)
    assert b.backend.map_input == TO_IMAGE_INPUT and b.backend.input_shape() == a.backend.input_shape()
    assert b.face_gate is None  # regression stays uninformative: the detector decides
    boxes = [[40, 30, 160, 170], [100, 50, 200, 180], [5, 5, 60, 70]]  # three faces through a batch of one
    for pb in _assert_same_predictions(a, b, face_image, boxes):
        assert (pb.point_confidence == 1).all() and (pb.face_confidence == 1).all()


def test_regression_on_tflite_keeps_its_numpy_rescale_and_says_why(runtime_onnx):
    from converters.graph_decode import skip_reason
    from sdk.backends import open_backend

    meta = open_backend(runtime_onnx).metadata
    pfld = meta.replace(decoder=type(meta.decoder)("regression", {"input_width": 128, "input_height": 128}))
    assert "one numpy multiply" in skip_reason(pfld, "tflite")
    assert skip_reason(pfld, "onnx") is None and skip_reason(pfld, "openvino") is None


def test_int8_speedup_compares_whole_predict_when_one_file_maps_back(mapped_pair):
    """A raw call that also maps back does more work than one that does not: convert's INT8 speed-up then
    compares whole predict calls (converters.speedup.same_work)."""
    from converters.speedup import same_work
    from sdk.backends import open_backend

    decoded, mapped = (open_backend(p).metadata for p in mapped_pair[".onnx"])
    assert same_work(mapped, mapped) and same_work(decoded, decoded)
    assert not same_work(decoded, mapped)
