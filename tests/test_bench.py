"""Benchmark harness: MAC counting, latency statistics, results schema, and tiny end-to-end runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench
from benchmarks.bench import BenchConfig, BenchError, discover_models, run_bench
from benchmarks.graph_stats import count_graph, model_size_bytes, onnx_for_model
from benchmarks.latency import summarize, time_calls
from benchmarks.report import (SCHEMA_VERSION, ResultsSchemaError, pareto_front, peer_comparisons,
                               validate_results)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


# --------------------------------------------------------------------------- MACs / params


def _init(name: str, shape: tuple[int, ...], dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def _tiny_graph(quantised_first_conv: bool = False) -> onnx.ModelProto:
    """x (batch,3,16,16) → conv 3→8 k3 s2 p1 → depthwise k3 p1 → convT 8→4 k2 s2 → GAP → flatten
    → Gemm 4→10 (transB) → MatMul 10→6 → Reshape (int64 shape constant)."""
    inits = [
        _init("b1", (8,)), _init("w2", (8, 1, 3, 3)), _init("w3", (8, 4, 2, 2)),
        _init("gw", (10, 4)), _init("gb", (10,)), _init("mw", (10, 6)),
        numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "shape"),
    ]
    nodes = []
    if quantised_first_conv:
        inits += [_init("w1_q", (8, 3, 3, 3), np.int8), numpy_helper.from_array(np.full(8, 0.1, np.float32), "w1_s"),
                  numpy_helper.from_array(np.zeros(8, np.int8), "w1_z")]
        nodes.append(helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0))
    else:
        inits.append(_init("w1", (8, 3, 3, 3)))
    nodes += [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("ConvTranspose", ["c2", "w3"], ["c3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "mw"], ["m"]),
        helper.make_node("Reshape", ["m", "shape"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])
    graph = helper.make_graph(nodes, "tiny", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


# Hand count, per face:
#   conv     out 8×8×8 = 512 elements × (3·3·3 = 27)  = 13824
#   dwconv   out 8×8×8 = 512 elements × (1·3·3 = 9)   =  4608
#   convT    in 8×8×8 = 512 elements × (4·2·2 = 16)   =  8192
#   gemm     1×4 · 4×10                               =    40
#   matmul   1×10 · 10×6                              =    60
HAND_MACS = 13824 + 4608 + 8192 + 40 + 60
#   w1 216 + b1 8 + w2 72 + w3 128 + gw 40 + gb 10 + mw 60; the int64 reshape shape is no parameter
HAND_PARAMS = 216 + 8 + 72 + 128 + 40 + 10 + 60


def test_macs_and_params_of_hand_built_graph():
    stats = count_graph(_tiny_graph())
    assert stats.macs == HAND_MACS
    assert stats.params == HAND_PARAMS
    assert stats.macs_by_op == {"Conv": 13824 + 4608, "ConvTranspose": 8192, "Gemm": 40, "MatMul": 60}


def test_quantised_weights_count_the_same_macs_and_no_scales(tmp_path):
    path = tmp_path / "q.onnx"
    onnx.save(_tiny_graph(quantised_first_conv=True), str(path))
    stats = count_graph(path)
    assert stats.macs == HAND_MACS
    assert stats.params == HAND_PARAMS  # int8 weights count, the 8 scales and 8 zero points do not
    assert stats.source == str(path)


def test_non_onnx_models_are_counted_on_their_fp32_sibling(tmp_path):
    onnx.save(_tiny_graph(), str(tmp_path / "net_fp32.onnx"))
    (tmp_path / "net_int8.tflite").write_bytes(b"x")
    (tmp_path / "net_fp16.xml").write_bytes(b"<xml/>")
    (tmp_path / "net_fp16.bin").write_bytes(b"0" * 100)
    assert onnx_for_model(tmp_path / "net_int8.tflite") == tmp_path / "net_fp32.onnx"
    assert onnx_for_model(tmp_path / "net_fp32.onnx") == tmp_path / "net_fp32.onnx"
    assert onnx_for_model(tmp_path / "other_int8.tflite") is None
    assert model_size_bytes(tmp_path / "net_fp16.xml") == 6 + 100  # OpenVINO: .xml + .bin


# --------------------------------------------------------------------------- latency statistics


def test_summary_of_known_durations():
    stats = summarize([k / 1000 for k in (5, 1, 9, 3, 7, 2, 10, 4, 8, 6)])  # 1..10 ms, shuffled
    assert stats.runs == 10
    assert stats.median_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(9.1)  # linear interpolation: 9 + 0.1 · (10 − 9)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.max_ms == pytest.approx(10.0)
    assert stats.mean_ms == pytest.approx(5.5)


def test_time_calls_times_only_the_runs_after_warmup():
    ticks = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])  # three timed calls of 4, 1 and 10 ms
    calls = []
    durations = time_calls(lambda: calls.append(1), runs=3, warmup=2, clock=lambda: next(ticks))
    assert len(calls) == 5
    assert durations == pytest.approx([0.004, 0.001, 0.010])
    assert summarize(durations).median_ms == pytest.approx(4.0)


def _recorded_calls():
    """A list the calls append their names to, a clock that ticks 1 ms per reading, and the call maker."""
    order, now = [], [0.0]

    def clock() -> float:
        now[0] += 0.001
        return now[0]

    def call(name: str):
        return lambda: order.append(name)

    return order, clock, call


def test_interleaved_timing_takes_turns_in_alternating_order():
    from benchmarks.latency import time_interleaved

    order, clock, call = _recorded_calls()
    a, b = time_interleaved([call("a"), call("b")], runs=3, warmup=1, clock=clock)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then turns, reversed every other turn
    assert len(a) == len(b) == 3 and all(d == pytest.approx(0.001) for d in a + b)
    with pytest.raises(ValueError, match="runs"):
        time_interleaved([call("a")], runs=0)


def test_block_timing_gives_each_file_settled_blocks_in_turns():
    """Two files' functions: untimed settle calls, then a block of turns within the file; files alternate."""
    from converters.speedup import time_in_blocks

    order, clock, call = _recorded_calls()
    (a1, a2), (b1, b2) = time_in_blocks([[call("a1"), call("a2")], [call("b1"), call("b2")]], runs=3,
                                        warmup=1, block=2, settle_s=0.0, clock=clock)
    assert order == ["a1", "a2", "b1", "b2",                          # warm-up
                     "a1", "a2", "a1", "a2", "a2", "a1",              # a: one settle pass, a block of 2 turns
                     "b1", "b2", "b1", "b2", "b2", "b1",              # b likewise
                     "b1", "b2", "b1", "b2", "a1", "a2", "a1", "a2"]  # reversed order, the last block of 1
    assert [len(d) for d in (a1, a2, b1, b2)] == [3, 3, 3, 3]
    order.clear()
    time_in_blocks([[call("a")], [call("b")]], runs=1, warmup=0, block=1, settle_s=0.0025, clock=clock)
    assert order == ["a"] * 4 + ["b"] * 4  # settling until 2.5 ms have passed: three passes, then the timed call
    with pytest.raises(ValueError, match="block"):
        time_in_blocks([[call("a")]], runs=1, block=0)


def test_sdk_own_cost_is_predict_minus_the_backend_calls_inside_it(tiny_onnx, face_image):
    """A backend made 5 ms slower on purpose moves the raw and predict times, not the SDK's own cost."""
    import time as _time

    from benchmarks.peer_rows import raw_and_predict
    from sdk.predictor import Predictor

    p = Predictor(tiny_onnx, threads=1)
    boxes = np.array([[40, 30, 160, 170]], np.float32)
    raw, full, own, prepare = raw_and_predict(p, face_image, boxes, runs=5, warmup=1)
    assert own is not None and 0 <= own.median_ms < full.median_ms
    assert prepare is not None and 0 < prepare.median_ms <= own.median_ms
    run = p.backend.run

    def slow_run(tensor):
        _time.sleep(0.005)
        return run(tensor)

    p.backend.run = slow_run
    raw2, full2, own2, prepare2 = raw_and_predict(p, face_image, boxes, runs=5, warmup=1)
    assert raw2.median_ms >= 5 and full2.median_ms >= 5 and own2.median_ms < 5 and prepare2.median_ms < 5
    assert p.backend.run is slow_run  # the timing wrapper is taken off again


def test_sdk_prepare_cost_is_the_time_inside_prepare_faces(tiny_onnx, face_image, monkeypatch):
    """A crop stage made 5 ms slower moves the SDK's own cost and its prepare part, not the raw call;
    the wrapper is taken off again."""
    import time as _time

    import sdk.predictor as predictor_module
    from benchmarks.peer_rows import raw_and_predict
    from sdk.predictor import Predictor

    prepare = predictor_module.prepare_faces

    def slow_prepare(*args, **kwargs):
        _time.sleep(0.005)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "prepare_faces", slow_prepare)
    p = Predictor(tiny_onnx, threads=1)
    boxes = np.array([[40, 30, 160, 170]], np.float32)
    raw, full, own, prep = raw_and_predict(p, face_image, boxes, runs=5, warmup=1)
    assert raw.median_ms < 5 <= prep.median_ms <= own.median_ms < full.median_ms
    assert predictor_module.prepare_faces is slow_prepare


@pytest.mark.parametrize("bad", [[], [0.001, float("nan")], [-0.001]])
def test_summary_rejects_bad_durations(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_time_calls_rejects_zero_runs():
    with pytest.raises(ValueError, match="runs"):
        time_calls(lambda: None, runs=0)


def test_pareto_front():
    pts = [(1.0, 5.0), (2.0, 4.0), (2.5, 4.5), (3.0, 3.0), (4.0, 3.5), (0.5, 6.0)]
    assert pareto_front(pts) == [5, 0, 1, 3]


# --------------------------------------------------------------------------- discovery, imports


def test_discovery_takes_every_format_the_sdk_can_open(tmp_path):
    from sdk.formats import all_extensions

    exts = set(all_extensions())
    for name in ("a.onnx", "b.xml", "b.bin", "c.tflite", "notes.txt", "weights.pth"):
        (tmp_path / name).write_bytes(b"x")
    found = {p.name for p in discover_models([tmp_path])}
    assert found == {n for n in ("a.onnx", "b.xml", "c.tflite") if Path(n).suffix in exts}
    assert "a.onnx" in found
    with pytest.raises(FileNotFoundError):
        discover_models([tmp_path / "missing.onnx"])


def test_bench_without_peers_does_not_import_torch():
    code = ("import sys, benchmarks.bench, benchmarks.report, benchmarks.peers, benchmarks.graph_stats, "
            "benchmarks.machine, benchmarks.commands, argparse; "
            "benchmarks.commands.add_bench_arguments(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- end to end


def _config(models, out, **kw) -> BenchConfig:
    base = dict(models=models, out=out, limit=3, runs=3, warmup=1, threads=(1,), batches=(1, 2), auto_peers=False,
                progress=False)
    return BenchConfig(**{**base, **kw})


def test_end_to_end_tiny_model(tmp_path, tiny_onnx, shared_dir, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / tiny_onnx.name).write_bytes(tiny_onnx.read_bytes())
    (models / "README.txt").write_text("not a model")
    out = tmp_path / "out"
    data = run_bench(_config([models], out))

    for name in ("report.md", "results.json", "latency_vs_nme.png", "ced.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    saved = validate_results(json.loads((out / "results.json").read_text()))
    assert saved["schema_version"] == SCHEMA_VERSION
    assert saved["machine"]["isa"] is not None and saved["runtimes"]["onnxruntime"]
    (model,) = saved["models"]
    assert model["kind"] == "edgemark" and model["runtime"] == "onnxruntime" and model["precision"] == "fp32"
    assert "error" not in model
    assert [(c["threads"], c["batch"]) for c in model["latency"]] == [(1, 1), (1, 2)]
    for cell in model["latency"]:
        assert cell["raw"]["runs"] == 3 and cell["predict"]["runs"] == 3
        assert cell["raw"]["min_ms"] <= cell["raw"]["median_ms"] <= cell["raw"]["p90_ms"]
        ratio = cell["predict"]["median_ms"] / cell["raw"]["median_ms"]
        assert cell["overhead_ratio"] == pytest.approx(ratio, rel=1e-3)
        assert cell["gmacs_per_s"] > 0
    assert model["graph"]["macs"] > 0 and model["graph"]["params"] > 0
    assert model["memory"]["scope"] == "fresh process" and model["memory"]["peak_rss_mb"] > 0
    acc = model["accuracy"]
    assert acc["count"] == 3 and len(acc["per_face_nme"]) == 3 and acc["limit"] == 3
    assert acc["nme"] == pytest.approx(np.mean(acc["per_face_nme"]), abs=1e-3)
    assert set(acc["subsets"]) == {"yaw 0-30", "yaw 30-60", "yaw 60-90"}
    report = (out / "report.md").read_text()
    assert "## Accuracy" in report and "### threads = 1, batch = 2" in report and tiny_onnx.stem in report

    # resumable: the same command measures nothing again
    def refuse(*a, **k):
        raise AssertionError("re-measured a stored result")

    monkeypatch.setattr(bench, "_run_worker", refuse)
    again = run_bench(_config([models], out))
    assert again["models"][0]["latency"] == model["latency"]
    # a new setting measures only the new cell (in-process here, so no worker)
    monkeypatch.setattr(bench, "_run_worker", refuse)
    grown = run_bench(_config([models], out, batches=(1, 2, 3), isolate=False))
    cells = {(c["threads"], c["batch"]): c for c in grown["models"][0]["latency"]}
    assert set(cells) == {(1, 1), (1, 2), (1, 3)}
    assert cells[(1, 1)] == model["latency"][0]
    assert grown["models"][0]["accuracy"]["per_face_nme"] == acc["per_face_nme"]


def test_peers_from_an_explicit_checkpoint(tmp_path, shared_dir):
    torch = pytest.importorskip("torch")
    from converters.api import convert, load_source
    from converters.architectures import get_arch

    torch.manual_seed(1)
    ckpt = tmp_path / "tiny.pth"
    torch.save(get_arch("h3r_mobilenetv2").build(98, 64).state_dict(), ckpt)
    models = tmp_path / "models"
    convert(load_source(ckpt, arch="h3r_mobilenetv2", input_size=64), ["onnx"], models, verify=False)
    out = tmp_path / "out"
    data = run_bench(_config([models], out, batches=(1,), limit=2, runs=2, isolate=False,
                             peers_checkpoint=ckpt, peers_arch="h3r_mobilenetv2", ref_threads=1))
    kinds = sorted((m["kind"], m["peer"]) for m in data["models"])
    assert kinds == [("edgemark", None), ("peer", "ort_default_argmax"), ("peer", "torch_eager")]
    assert all("error" not in m and m["accuracy"]["count"] == 2 for m in data["models"]), data["models"]
    torch_row = next(m for m in data["models"] if m["peer"] == "torch_eager")
    edge_row = next(m for m in data["models"] if m["kind"] == "edgemark")
    # same network, same decoder, same crops: the torch peer and the ONNX file agree to float precision
    assert np.allclose(torch_row["accuracy"]["per_face_nme"], edge_row["accuracy"]["per_face_nme"], atol=1e-2)
    comps = validate_results(json.loads((out / "results.json").read_text()))["comparisons"]
    assert {c["peer_kind"] for c in comps} == {"torch_eager", "ort_default_argmax"}
    assert all(c["latency_ratio"] and c["nme_ratio"] for c in comps)
    assert comps == peer_comparisons(data)
    assert "## Peers" in (out / "report.md").read_text()


def test_schema_validation_names_what_is_missing(tmp_path):
    good = {"schema_version": SCHEMA_VERSION, "machine": {"cpu": "x", "isa": [], "logical_cores": 1},
            "runtimes": dict.fromkeys(("python", "numpy", "opencv", "onnxruntime", "openvino", "ai_edge_litert")),
            "settings": {"dataset": "d", "threads": [1], "batches": [1], "runs": 1, "warmup": 0,
                         "reference": {"threads": 1, "batch": 1}},
            "models": []}
    validate_results(good)
    with pytest.raises(ResultsSchemaError, match="settings"):
        validate_results({**good, "settings": {"dataset": "d"}})
    bad_model = {"id": "m", "kind": "edgemark", "latency": [{"threads": 1, "batch": 1, "runs": 1, "warmup": 0}]}
    with pytest.raises(ResultsSchemaError, match="model m"):
        validate_results({**good, "models": [bad_model]})


def test_300w_folder_gives_common_and_challenge_numbers(tmp_path, tiny_onnx, shared_dir):
    """A 300W-style folder (faces from AFLW2000-3D written as .pts under lfpw/ and ibug/)."""
    from landmarkdata.datasets import load_300w_folder, load_aflw2000_3d

    faces = load_aflw2000_3d(limit=4)
    for i, folder in enumerate(("lfpw", "lfpw", "ibug", "ibug")):
        d = tmp_path / "300w" / folder
        d.mkdir(parents=True, exist_ok=True)
        (d / f"face{i}.jpg").write_bytes(faces.image_paths[i].read_bytes())
        pts = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in faces.landmarks[i])  # .pts is 1-based
        (d / f"face{i}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{pts}\n}}\n")
    data = run_bench(_config([tiny_onnx], tmp_path / "out", dataset="300w", data_root=str(tmp_path / "300w"),
                             limit=None, batches=(1,), runs=2, isolate=False))
    acc = data["models"][0]["accuracy"]
    assert acc["normaliser"] == "interocular" and acc["count"] == 4 and acc["labels"] is None
    assert set(acc["subsets"]) == {"common", "challenge"}
    assert acc["subsets"]["common"]["count"] == 2 and acc["subsets"]["challenge"]["count"] == 2
    per_face = np.array(acc["per_face_nme"])
    challenge = np.array([s == "challenge" for s in load_300w_folder(tmp_path / "300w").subsets])
    assert acc["subsets"]["challenge"]["nme"] == pytest.approx(per_face[challenge].mean(), abs=1e-3)
    assert acc["subsets"]["common"]["nme"] == pytest.approx(per_face[~challenge].mean(), abs=1e-3)
    assert "challenge NME %" in (tmp_path / "out" / "report.md").read_text()


def test_landmark_peer_rows_in_the_same_run(tmp_path, tiny_onnx, shared_dir):
    from benchmarks.landmark_peers import available_peers

    why = available_peers()["mediapipe_facemesh"]
    if why:
        pytest.skip(why)
    models = tmp_path / "models"
    models.mkdir()
    (models / tiny_onnx.name).write_bytes(tiny_onnx.read_bytes())
    out = tmp_path / "out"
    data = run_bench(_config([models], out, batches=(1,), landmark_peers=("mediapipe_facemesh",)))
    rows = {m.get("box_rule"): m for m in data["models"] if m["kind"] == "landmark_peer"}
    assert set(rows) == {"gt", "pipeline"}
    for rule, m in rows.items():
        assert "error" not in m, m.get("error")
        assert m["scheme"] == "ibug68" and m["accuracy"]["count"] >= 1
        assert m["accuracy"]["other_labels"]["labels"] == "original"
        (cell,) = m["latency"]
        assert cell["raw"]["median_ms"] > 0 and cell["predict"]["median_ms"] > 0
    assert rows["pipeline"]["latency"][0]["frame"] == "640x480" and 0 <= rows["pipeline"]["accuracy"]["found_pct"] <= 100
    assert set(rows["pipeline"]["video"]["1"]) >= {"detect", "track"}
    report = (out / "report.md").read_text()
    assert "## edgemark vs MediaPipe vs dlib" in report and "MediaPipe Face Mesh [pipeline]" in report


def test_unknown_landmark_peer_is_an_error(tmp_path, tiny_onnx, shared_dir):
    with pytest.raises(BenchError, match="unknown landmark peer"):
        run_bench(_config([tiny_onnx], tmp_path / "out", landmark_peers=("mediapipe",)))


def test_detector_rows_only_for_the_bundled_default():
    from benchmarks.peer_rows import detector_records
    from sdk.predictor import MODELS_DIR

    inside = {"id": "a", "name": "a", "file": str(MODELS_DIR / "x.onnx")}
    outside = {"id": "b", "name": "b", "file": "/tmp/elsewhere/x.onnx"}
    (row,) = detector_records([inside, outside], MODELS_DIR)
    assert row["id"] == "a.detector" and row["box_rule"] == "detector" and row["measure_video"]


def test_rows_of_deleted_files_are_dropped(tmp_path, tiny_onnx, shared_dir):
    models = tmp_path / "models"
    models.mkdir()
    kept, gone = models / "kept.onnx", models / "gone.onnx"
    kept.write_bytes(tiny_onnx.read_bytes())
    gone.write_bytes(tiny_onnx.read_bytes())
    out = tmp_path / "out"
    run_bench(_config([kept, gone], out, batches=(1,)))
    gone.unlink()
    data = run_bench(_config([kept], out, batches=(1,)))
    assert [Path(m["file"]).name for m in data["models"]] == ["kept.onnx"]


def test_int8_speedup_compares_whole_predict_when_only_one_file_decodes_in_its_graph():
    from benchmarks.report import int8_speedups

    def row(name, in_graph, raw, predict):
        return {"name": name, "kind": "edgemark", "runtime": "openvino", "precision": name.rsplit("_", 1)[1],
                "decoder_params": {"in_graph": True} if in_graph else {},
                "latency": [{"threads": 1, "batch": 1, "raw": {"median_ms": raw}, "predict": {"median_ms": predict}}]}

    data = {"settings": {"threads": [1]}, "models": [row("m_fp32", True, 2.0, 2.2), row("m_int8", False, 1.0, 1.6)]}
    (r,) = int8_speedups(data)
    assert r["basis"] == "predict" and r["cells"][1][2] == pytest.approx(2.2 / 1.6)
    data["models"][1]["decoder_params"] = {"in_graph": True}
    (r,) = int8_speedups(data)
    assert r["basis"] == "raw" and r["cells"][1][2] == pytest.approx(2.0) and not r["not_faster"]


def test_overhead_section_counts_crop_bound_cells():
    """A cell above the ratio target whose crop stage alone exceeds 15 % of the raw call is counted crop-bound;
    one whose crop is cheap is not; cells below 1 ms raw or at the target are not counted at all."""
    from benchmarks.report import _overhead_section

    def cell(raw, predict, own, prepare):
        return {"threads": 1, "batch": 1, "raw": {"median_ms": raw}, "predict": {"median_ms": predict},
                "overhead_ratio": predict / raw, "sdk_own": {"median_ms": own}, "sdk_prepare": {"median_ms": prepare}}

    rows = [("crop_bound", cell(2.0, 2.6, 0.6, 0.4)), ("decode_bound", cell(2.0, 2.6, 0.6, 0.1)),
            ("at_target", cell(2.0, 2.2, 0.2, 0.1)), ("fast_network", cell(0.5, 1.0, 0.5, 0.4))]
    data = {"settings": {"threads": [1], "batches": [1]},
            "models": [{"id": n, "name": n, "kind": "edgemark", "file": f"models/{n}.onnx", "runtime": "onnxruntime",
                        "precision": "fp32", "latency": [c]} for n, c in rows]}
    text = "\n".join(_overhead_section(data))
    assert "ratio is ≤ 1.15: 1 of 3." in text
    assert "Of the 2 above it, 1 of the 2 timed stage by stage are crop-bound" in text
    assert "1.30 (+0.60; own 0.60; crop 0.40)" in text
