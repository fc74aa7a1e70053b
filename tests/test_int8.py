"""INT8: calibration sets, toolchain readers, float-tail scopes, and INT8 files for each runtime under a budget.

The INT8 models are made from a tiny randomly initialised H3R-style network (64 px, 8
points) calibrated on real AFLW face crops; with random weights the heat maps are flat, so
the landmark agreement numbers are large — the tests check the mechanics (files, metadata,
quantized kernels, budget outcomes, quantized I/O handling), not accuracy. Accuracy on the
real H3R-128 weights is measured by the benchmarks, not here.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="workstation stack (pip install './tools[convert]'); the runtime tests run without it")
pytest.importorskip("onnx", reason="workstation stack (pip install './tools[convert]'); the runtime tests run without it")

from calibration import CalibrationSourceError, build_calibration_set, load_boxes_file
from calibration.readers import (ONNX2TF_CALIBRATION_FILE, ort_reader, tflite_representative_dataset,
                                 write_onnx2tf_calibration)
from converters.formats import writer_for
from sdk.formats import FORMATS
from converters.int8.scope import FloatScope, GraphNode

SIZE, POINTS = 64, 8


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_meta():
    from converters.architectures import get_arch

    return get_arch("h3r_mobilenetv2").make_metadata(POINTS, SIZE)


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory, tiny_meta):
    """A tiny torch source (its FP32 ONNX is exported once and shared by every runtime)."""
    torch = pytest.importorskip("torch")
    from converters.api import SourceModel, ensure_onnx
    from converters.architectures import get_arch

    torch.manual_seed(0)
    module = get_arch("h3r_mobilenetv2").build(POINTS, SIZE).eval()
    source = SourceModel(name="tiny", meta=tiny_meta, torch_module=module)
    ensure_onnx(source)
    yield source
    source.cleanup()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calib-cache")


def _options(cache_dir: Path, **kw):
    from converters.int8 import Int8Options

    base = dict(calib_size=16, val_size=8, seed=0, cache_dir=str(cache_dir), progress=False)
    return Int8Options(**{**base, **kw})


@pytest.fixture()
def face_folder(tmp_path) -> Path:
    """A folder of synthetic images with a boxes.json: the image-folder source format."""
    rng = np.random.default_rng(1)
    faces = []
    for k in range(6):
        img = rng.integers(0, 255, size=(90, 100, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"img{k}.png"), img)
        faces.append({"image": f"img{k}.png", "box": [10 + k, 12, 70, 80 - k]})
    (tmp_path / "boxes.json").write_text(json.dumps({"faces": faces}))
    return tmp_path


# --------------------------------------------------------------------------- calibration sets


def test_calibration_set_reproducible_from_seed(shared_dir, tiny_meta, tmp_path):
    a = build_calibration_set(tiny_meta, size=12, val_size=6, seed=3, use_cache=False, progress=False)
    b = build_calibration_set(tiny_meta, size=12, val_size=6, seed=3, use_cache=False, progress=False)
    c = build_calibration_set(tiny_meta, size=12, val_size=6, seed=4, use_cache=False, progress=False)
    assert a.calibration.shape == (12, 3, SIZE, SIZE) and a.validation.shape == (6, 3, SIZE, SIZE)
    assert np.array_equal(a.calibration, b.calibration) and np.array_equal(a.validation, b.validation)
    assert a.key == b.key != c.key
    assert not np.array_equal(a.calibration, c.calibration)
    # Held-out split: no face is both calibrated on and validated on; GT landmarks kept for it.
    assert not set(a.info["calibration_faces"]) & set(a.info["validation_faces"])
    assert a.val_landmarks.shape == (6, 21, 2) and a.gt_scheme == "aflw21"
    # The cache returns exactly what was built, under the same key.
    d = build_calibration_set(tiny_meta, size=12, val_size=6, seed=3, cache_dir=tmp_path, progress=False)
    e = build_calibration_set(tiny_meta, size=12, val_size=6, seed=3, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("calib_*.npz"))) == 1
    assert np.array_equal(d.calibration, a.calibration) and np.array_equal(e.val_matrices, a.val_matrices)


def test_calibration_uses_the_predictors_preprocessing(shared_dir, tiny_meta):
    from landmarkdata.datasets import load_aflw_faces
    from sdk.preprocess import prepare_batch

    cs = build_calibration_set(tiny_meta, size=4, val_size=2, seed=0, use_cache=False, progress=False)
    data = load_aflw_faces()
    i = data.names.index(cs.info["calibration_faces"][0])
    tensor, _ = prepare_batch(data.load_image(i), data.boxes[i][None], tiny_meta.input, tiny_meta.crop)
    assert np.array_equal(cs.calibration[0], tensor[0])


@pytest.mark.parametrize("source", ["aflw2000-3d", "AFLW2000-3D", "aflw2000-3d=/anywhere"])
def test_test_set_is_refused(tiny_meta, source):
    with pytest.raises(CalibrationSourceError, match="test set"):
        build_calibration_set(tiny_meta, source, size=2, val_size=1, use_cache=False, progress=False)


def test_test_set_folder_is_refused(shared_dir, tiny_meta):
    with pytest.raises(CalibrationSourceError, match="AFLW2000-3D"):
        build_calibration_set(tiny_meta, shared_dir / "data" / "aflw2000-3d", size=2, val_size=1,
                              use_cache=False, progress=False)


def test_image_folder_sources(face_folder, tiny_meta):
    cs = build_calibration_set(tiny_meta, face_folder, size=4, val_size=2, seed=0, use_cache=False, progress=False)
    assert cs.calibration.shape == (4, 3, SIZE, SIZE) and cs.val_landmarks.shape == (2, 0, 2)
    assert cs.gt_scheme is None
    rows = ["image,x1,y1,x2,y2"] + [f"img{k}.png,5,5,60,70" for k in range(3)]
    (face_folder / "faces.csv").write_text("\n".join(rows))
    assert len(load_boxes_file(face_folder / "faces.csv")) == 3
    (face_folder / "bad.csv").write_text("name,a,b\nimg0.png,1,2\n")
    with pytest.raises(CalibrationSourceError, match="header"):
        load_boxes_file(face_folder / "bad.csv")
    with pytest.raises(CalibrationSourceError, match="usable faces"):
        build_calibration_set(tiny_meta, face_folder, size=6, val_size=2, use_cache=False, progress=False)


def test_readers_feed_one_face_at_a_time(tmp_path):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).normal(size=(3, 3, 8, 10)).astype(np.float32)
    reader = ort_reader(x, "input")
    batches = [reader.get_next() for _ in range(4)]
    assert batches[-1] is None and all(b["input"].shape == (1, 3, 8, 10) for b in batches[:3])
    reader.rewind()
    assert np.array_equal(reader.get_next()["input"], x[:1])
    nhwc = [b[0] for b in tflite_representative_dataset(x)()]
    assert len(nhwc) == 3 and nhwc[0].shape == (1, 8, 10, 3) and np.array_equal(nhwc[1][0], x[1].transpose(1, 2, 0))
    path = write_onnx2tf_calibration(x, tmp_path)
    assert path.name == ONNX2TF_CALIBRATION_FILE and np.load(path).shape == (3, 8, 10, 3)


# --------------------------------------------------------------------------- float scope


def _graph() -> FloatScope:
    """in → c1 → add(c1, c2(c1)) → c3 → slice → out: a residual block before an output conv."""
    n = [GraphNode("c1", "Conv", ("in",), ("t1",)), GraphNode("c2", "Conv", ("t1",), ("t2",)),
         GraphNode("add", "Add", ("t1", "t2"), ("t3",)), GraphNode("c3", "Conv", ("t3",), ("t4",)),
         GraphNode("slice", "Slice", ("t4",), ("out",))]
    return FloatScope(n, ["out"], ("Conv",))


def test_float_scope_grows_from_the_output():
    s = _graph()
    assert s.float_nodes(0) == []
    assert s.float_nodes(1) == ["add", "c3", "slice"]  # the output conv, its float input and what follows it
    assert s.float_nodes(2) == ["c2", "add", "c3", "slice"]
    assert s.float_nodes(3) == ["c1", "c2", "add", "c3", "slice"]  # c1's longest path runs through c2
    assert s.max_level == 3
    for level in range(4):  # closed downstream: nothing after a float node is re-quantized
        keep = set(s.float_nodes(level))
        after = {c.name for n in s.nodes if n.name in keep for t in n.outputs for c in s._consumers.get(t, ())}
        assert after <= keep


def test_float_head_grows_from_the_input():
    s = _graph()
    assert s.float_nodes(0, head=1) == ["c1"]
    assert s.float_nodes(0, head=2) == ["c1", "c2", "add"]  # add's longest path from the input runs through c2
    assert s.float_nodes(1, head=1) == ["c1", "add", "c3", "slice"]  # tail and head together, in graph order
    assert s.describe(1, 1) == "last 1 compute level(s) + first 1 in float (2 of 3 conv/matmul layers)"
    for head in range(4):  # closed upstream: nothing before a float node is quantized on its way there
        keep = set(s.float_nodes(0, head))
        producers = {t: n.name for n in s.nodes for t in n.outputs}
        before = {producers[t] for n in s.nodes if n.name in keep for t in n.inputs if t in producers}
        assert before <= keep


def test_the_ladder_tries_each_tail_with_and_without_a_float_head():
    from converters.int8.search import HEAD_LEVEL, Int8Options, ladder

    rungs = [(r.float_level, r.float_head) for r in ladder(Int8Options(), "onnxruntime", 4)]
    assert rungs == [(0, 0), (0, HEAD_LEVEL), (1, 0), (1, HEAD_LEVEL), (2, 0), (2, HEAD_LEVEL), (3, 0),
                     (3, HEAD_LEVEL)]
    assert [r.float_head for r in ladder(Int8Options(levels=(0, 1)), "onnxruntime", 4)] == [0, 0]
    assert ladder(Int8Options(), "onnxruntime", 4)[1].name == "minmax/float0+head2/pc/float-io"


def test_float_scope_on_h3r_graph(tiny_source):
    import onnx

    from converters.int8.scope import onnx_scope

    model = onnx.load(str(tiny_source.onnx_path))
    scope = onnx_scope(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    # level 1: the conv that writes the heat maps; level 2 adds the head's first 1x1 conv before it
    assert scope.float_compute(1) == [convs[-1].name]
    assert convs[-1].output[0] in {o.name for o in model.graph.output}
    assert sorted(scope.float_compute(2)) == sorted([convs[-2].name, convs[-1].name])
    assert len(scope.float_compute(5)) == 5 and scope.max_level > 10
    assert scope.float_compute(0, head=1) == [convs[0].name]  # the stem conv reads the input
    assert scope.float_compute(0, head=2) == [convs[0].name, convs[1].name]


# --------------------------------------------------------------------------- INT8 files


def _extra(path: Path) -> dict:
    from sdk.backends import open_backend

    return dict(open_backend(path).metadata.provenance.extra)


def _check_budget_outcomes(source, fmt, tmp_path, cache_dir, **kw):
    """Loose budget: the first rung is kept and stamped. Impossible budget: typed error listing every attempt."""
    from converters.int8 import Int8BudgetError, quantize_with_budget
    from converters.source import ConversionError

    ext = FORMATS[fmt].extension
    with pytest.raises(ConversionError, match="--reference-nme"):  # the tiny model's 8 points map to no labels
        quantize_with_budget(source, writer_for(fmt), tmp_path / f"ok{ext}",
                             _options(cache_dir, max_nme_increase=1000.0, levels=(0,), **kw))
    kw = {"reference_nme": 20.0, **kw}
    ok = quantize_with_budget(source, writer_for(fmt), tmp_path / f"ok{ext}",
                              _options(cache_dir, max_nme_increase=1000.0, levels=(0, 1), **kw))
    assert ok.path.is_file() and len(ok.attempts) == 1 and ok.recipe.float_level == 0
    extra = _extra(ok.path)
    assert extra["int8_recipe"]["float_level"] == 0 and extra["validation"]["faces"] == 8
    assert extra["calibration"]["size"] == 16 and extra["calibration"]["source"] == "aflw-faces"
    assert extra["validation"]["budget"] == 1000.0
    with pytest.raises(Int8BudgetError) as info:
        quantize_with_budget(source, writer_for(fmt), tmp_path / f"fail{ext}", _options(cache_dir, max_nme_increase=0.0,
                                                                            levels=(0, 1), **kw))
    err = info.value
    assert [a.recipe.float_level for a in err.attempts] == [0, 1]
    assert all(a.validation is not None and a.increase > 0 for a in err.attempts)
    assert "float0" in str(err) and "float1" in str(err) and "+0 % NME (relative" in str(err)
    assert extra["validation"]["fp32_nme"] == 20.0 and "given" in extra["validation"]["fp32_nme_source"]
    assert extra["validation"]["predicted_increase_pct"] >= 0
    assert not (tmp_path / f"fail{ext}").exists()
    assert not list(tmp_path.glob(".int8-*"))  # no work files left behind
    return ok


def test_onnxruntime_int8(shared_dir, tiny_source, tmp_path, cache_dir):
    pytest.importorskip("onnxruntime")
    import onnx

    ok = _check_budget_outcomes(tiny_source, "onnx", tmp_path, cache_dir)
    graph = onnx.load(str(ok.path)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 30  # really quantized, per channel
    # Level 1 keeps the output conv float: its weight is a plain float initializer, not dequantized.
    from converters.int8 import quantize_with_budget

    lvl1 = quantize_with_budget(tiny_source, writer_for("onnx"), tmp_path / "l1.onnx", _options(cache_dir, levels=(1,)))
    nodes = onnx.load(str(lvl1.path)).graph.node
    conv = [n for n in nodes if n.op_type == "Conv"][-1]  # the conv that writes the heat maps
    assert not conv.input[1].endswith("DequantizeLinear_Output")
    assert _extra(lvl1.path)["int8_recipe"]["float_nodes"] == [conv.name]


def test_openvino_int8(shared_dir, tiny_source, tmp_path, cache_dir):
    pytest.importorskip("nncf")
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    ok = _check_budget_outcomes(tiny_source, "openvino", tmp_path, cache_dir)
    ops = [op.get_type_name() for op in ov.Core().read_model(str(ok.path)).get_ops()]
    assert ops.count("FakeQuantize") > 30


def test_naive_baseline_and_decoder_swap(shared_dir, tiny_source, tmp_path, cache_dir):
    pytest.importorskip("onnxruntime")
    import onnx

    from converters.int8 import quantize_with_budget
    from converters.baseline import copy_with_decoder
    from sdk.backends import open_backend

    naive = quantize_with_budget(tiny_source, writer_for("onnx"), tmp_path / "naive.onnx", _options(cache_dir, recipe="naive"))
    assert naive.recipe.label == "naive" and naive.recipe.quantize_outputs
    out_q = [n for n in onnx.load(str(naive.path)).graph.node if n.output[0] == "heatmap"]
    assert out_q and out_q[0].op_type == "DequantizeLinear"  # the heat map itself is rounded to INT8
    swapped = copy_with_decoder(naive.path, tmp_path / "naive_argmax.onnx")
    meta = open_backend(swapped).metadata
    assert meta.decoder.name == "argmax" and meta.provenance.extra["decoder_swapped_from"] == "h3r_topk"
    a = onnx.load(str(naive.path)).graph
    b = onnx.load(str(swapped)).graph
    assert a.SerializeToString() == b.SerializeToString()  # same weights and graph, only the metadata differs


def test_tflite_int8_and_quantized_io(shared_dir, tiny_source, tmp_path, cache_dir):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tensorflow")
    from converters.int8 import quantize_with_budget
    from sdk.backends import open_backend
    from sdk.predictor import Predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = _check_budget_outcomes(tiny_source, "tflite", tmp_path, cache_dir)
        io8 = quantize_with_budget(tiny_source, writer_for("tflite"), tmp_path / "io8.tflite", _options(cache_dir, io="int8",
                                                                                          levels=(0,)))
        lvl1 = quantize_with_budget(tiny_source, writer_for("tflite"), tmp_path / "l1.tflite", _options(cache_dir, levels=(1,)))
    assert _int8_convs(open_backend(lvl1.path).interpreter) == (40, 41)  # the output conv stays float
    backend = open_backend(ok.path)
    assert _int8_convs(backend.interpreter) == (41, 41)  # every conv runs an int8 kernel (level 0)
    assert backend.interpreter.get_input_details()[0]["dtype"] == np.float32
    b8 = open_backend(io8.path)
    assert b8.interpreter.get_input_details()[0]["dtype"] == np.int8
    assert b8.interpreter.get_output_details()[0]["dtype"] == np.int8
    assert b8.metadata.input.dtype == "int8" and b8.metadata.input.quant_scale > 0
    assert b8.metadata.outputs[0].quant_scale > 0
    # The Predictor hides the I/O type: same landmarks from the float-I/O and int8-I/O files.
    from landmarkdata.datasets import load_aflw_faces

    data = load_aflw_faces(limit=400)
    boxes = data.boxes[::50]
    images = [data.load_image(i) for i in range(0, 400, 50)]
    pf, p8 = Predictor(backend), Predictor(b8)
    for img, box in zip(images, boxes):
        a = pf.predict(img, box[None]).landmarks
        b = p8.predict(img, box[None]).landmarks
        assert np.abs(a - b).max() <= 0.5


def _int8_convs(interpreter) -> tuple[int, int]:
    """(convolutions whose input and weights are int8, all convolutions) of a TFLite interpreter."""
    dtype = {d["index"]: np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    return sum(dtype[op["inputs"][0]] == np.int8 and dtype[op["inputs"][1]] == np.int8 for op in convs), len(convs)


def test_cli_convert_int8(shared_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from converters.architectures import get_arch
    from converters.to_onnx import export_onnx
    from edgemark_cli import main

    monkeypatch.setenv("EDGEMARK_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    spec = get_arch("h3r_mobilenetv2")
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(spec.build(POINTS, SIZE), spec.make_metadata(POINTS, SIZE), onnx_path)
    rc = main(["convert", str(onnx_path), "--to", "onnx", "--int8", "--calib-size", "16", "--calib-val-size", "8",
               "--max-nme-increase", "1000%", "--reference-nme", "30", "--out", str(tmp_path / "out"), "--no-verify",
               "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["precision"] == "int8")
    assert Path(row["file"]).name == "tiny_int8.onnx" and row["int8_recipe"] and row["val_nme_vs_fp32"] is not None
    assert row["predicted_nme_increase_pct"] >= 0
    rc = main(["convert", str(onnx_path), "--to", "onnx", "--int8", "--calib", "aflw2000-3d", "--out",
               str(tmp_path / "out2"), "--no-verify"])
    assert rc == 2 and "test set" in capsys.readouterr().err
