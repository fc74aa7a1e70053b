"""OpenVINO and TFLite files: metadata round trip, typed errors for damaged files, backends that agree,
an offline onnx2tf, and ONNX-only models through the CLI.

One tiny randomly initialised H3R-style model (64 px) is converted once per module. With
random weights the decoded landmarks say little (flat heat maps), so the backends are
compared on their raw outputs, brought to NCHW through the metadata, on real face crops.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sdk.backends.openvino import import_openvino  # noqa: E402

torch = pytest.importorskip("torch")
try:
    ov = import_openvino()  # not pytest.importorskip: a plain import sends OpenVINO's usage telemetry
except ImportError:
    pytest.skip("openvino is not installed", allow_module_level=True)
pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnx2tf")

import onnx  # noqa: E402

from converters import to_tflite  # noqa: E402
from converters.api import ConversionError, SourceModel, convert, load_source, metadata_from_json  # noqa: E402
from converters.onnx2tf_runner import network_blocked  # noqa: E402
from converters.verify import real_face_tensors  # noqa: E402
from sdk.backends import backend_for_path, open_backend  # noqa: E402
from sdk.backends.litert import _to_float, _to_input  # noqa: E402
from sdk.backends.tflite_flatbuffer import read_metadata_entries  # noqa: E402
from edgemark_cli import main  # noqa: E402
from sdk.errors import ModelLoadError  # noqa: E402
from sdk.metadata import METADATA_KEY, MetadataError, ModelMetadata  # noqa: E402
from sdk.outputs import outputs_by_role  # noqa: E402
from sdk.predictor import Predictor  # noqa: E402

SIZE, POINTS = 64, 98


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, shared_dir) -> SimpleNamespace:
    """Tiny model as: torch module, ONNX, OpenVINO FP32/FP16, TFLite FP32/FP16 (onnx2tf, from a bare ONNX
    plus a JSON metadata file, as users bring them) and TFLite FP32/FP16 (litert-torch, from torch)."""
    from converters.architectures import get_arch

    torch.manual_seed(0)
    spec = get_arch("h3r_mobilenetv2")
    module = spec.build(POINTS, SIZE).eval()
    meta = spec.make_metadata(POINTS, SIZE)
    out = tmp_path_factory.mktemp("formats")
    torch_source = SourceModel(name="tiny", meta=meta, torch_module=module)
    results = convert(torch_source, ["onnx", "openvino"], out, precisions=("fp32",))
    results += convert(torch_source, ["openvino"], out, precisions=("fp16",))
    paths = {(r.format, r.precision): r.path for r in results}

    # the ONNX-only route: a bare ONNX (no metadata inside) and a metadata JSON beside it
    bare = out / "bare" / "tiny_bare.onnx"
    bare.parent.mkdir()
    proto = onnx.load(str(paths[("onnx", "fp32")]))
    del proto.metadata_props[:]
    onnx.save(proto, str(bare))
    meta_json = out / "bare" / "tiny_meta.json"
    meta_json.write_text(meta.to_json())
    onnx_source = load_source(bare, metadata=metadata_from_json(meta_json), name="tiny_onnx2tf")
    results += convert(onnx_source, ["tflite"], out, precisions=("fp32", "fp16"))
    paths.update({("onnx2tf", r.precision): r.path for r in results[-2:]})

    torch_source.options["tflite_converter"] = "auto"  # a torch source picks litert-torch
    results += convert(torch_source, ["tflite"], out / "litert_torch", precisions=("fp32", "fp16"))
    paths.update({("litert-torch", r.precision): r.path for r in results[-2:]})
    return SimpleNamespace(meta=meta, module=module, out=out, paths=paths, results=results, bare=bare,
                           meta_json=meta_json, faces=real_face_tensors(meta, 6))


FORMATS = [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"), ("onnx2tf", "fp32"), ("onnx2tf", "fp16"),
           ("litert-torch", "fp32"), ("litert-torch", "fp16")]


@pytest.mark.parametrize("key", FORMATS, ids=["-".join(k) for k in FORMATS])
def test_each_file_carries_its_metadata(tiny, key):
    path = tiny.paths[key]
    backend = open_backend(path)
    assert backend.name == {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert"}[path.suffix]
    meta = backend.metadata
    assert (meta.scheme, meta.crop, meta.decoder) == (tiny.meta.scheme, tiny.meta.crop, tiny.meta.decoder)
    assert dataclasses.replace(meta.input, layout="nchw") == tiny.meta.input
    assert meta.provenance.precision == key[1]
    (out,) = meta.outputs
    assert out.role == "heatmap" and out.name in backend.output_names()
    if key[0] == "onnx2tf":  # onnx2tf: NHWC input, and the file's real output layout and shape are recorded
        assert meta.input.layout == "nhwc"
        assert meta.provenance.extra["tflite_converter"].startswith("onnx2tf")
        assert out.shape in ((POINTS, SIZE // 4, SIZE // 4), (SIZE // 4, SIZE // 4, POINTS))
        assert (out.layout == "nhwc") == (out.shape[-1] == POINTS)
    else:
        assert meta.input.layout == "nchw" and out.shape == (POINTS, SIZE // 4, SIZE // 4)
    if key[0] == "litert-torch":
        assert meta.provenance.extra["tflite_converter"].startswith("litert-torch")


def test_conversion_report_and_no_partial_files(tiny):
    for r in tiny.results:
        assert r.size_bytes > 0 and r.seconds > 0 and r.fidelity.faces == 16
        row = r.as_row()
        assert {"file", "size_mb", "seconds", "max_diff_px", "mean_diff_px"} <= set(row)
    ov_fp32 = next(r for r in tiny.results if (r.format, r.precision) == ("openvino", "fp32"))
    assert ov_fp32.size_bytes > tiny.paths[("openvino", "fp32")].stat().st_size  # the .bin is counted
    assert not list(tiny.out.rglob("*.partial*"))


def _raw_nchw(path_or_backend, meta: ModelMetadata, faces: np.ndarray) -> np.ndarray:
    predictor = Predictor(path_or_backend)
    x = faces.transpose(0, 2, 3, 1).copy() if predictor.metadata.input.layout == "nhwc" else faces
    return outputs_by_role(predictor.metadata, predictor.backend.run(x))["heatmap"]


def test_backends_agree_on_raw_outputs_for_a_batch_of_real_faces(tiny):
    from converters.torch_backend import TorchBackend

    reference = _raw_nchw(TorchBackend(tiny.module, tiny.meta), tiny.meta, tiny.faces)
    span = float(np.ptp(reference))
    assert reference.shape == (6, POINTS, SIZE // 4, SIZE // 4) and span > 0
    for key in FORMATS:
        got = _raw_nchw(tiny.paths[key], tiny.meta, tiny.faces)  # batch of 6: TFLite has batch 1, so it loops
        tolerance = 1e-4 if key[1] == "fp32" else 2e-2
        assert got.shape == reference.shape, key
        assert np.abs(got - reference).max() <= tolerance * span, key


def test_static_batch_chunks_equal_single_faces(tiny):
    backend = open_backend(tiny.paths[("onnx2tf", "fp32")])
    x = tiny.faces.transpose(0, 2, 3, 1).copy()
    batched = backend.run(x)
    single = [backend.run(x[i:i + 1]) for i in range(len(x))]
    for name, value in batched.items():
        np.testing.assert_array_equal(value, np.concatenate([s[name] for s in single]))


def test_predictor_picks_backend_by_extension_or_name(tiny):
    assert backend_for_path("m.xml") == "openvino" and backend_for_path("m.tflite") == "litert"
    p = Predictor(tiny.paths[("openvino", "fp32")], backend="openvino", threads=1)
    assert p.backend.name == "openvino" and p.backend.threads == 1
    with pytest.raises(ModelLoadError):
        Predictor(tiny.paths[("openvino", "fp32")], backend="litert")  # an .xml is no flatbuffer


# --------------------------------------------------------------------------- missing / bad metadata
def _tflite_with_entry(src: Path, dst: Path, payload: bytes | None) -> Path:
    """Copy of a .tflite whose edgemark entry is removed (None) or replaced by ``payload``."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    model.metadata = [m for m in model.metadata if m.name.decode() != METADATA_KEY]
    if payload is not None:
        buf = schema.BufferT()
        buf.data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
        model.metadata.append(entry)
    flatbuffer_utils.write_model(model, str(dst))
    return dst


def _ir_with_rt_info(tiny, dst: Path, value: str | None) -> Path:
    model = ov.convert_model(str(tiny.bare))
    if value is not None:
        model.set_rt_info(value, [METADATA_KEY])
    ov.save_model(model, str(dst), compress_to_fp16=False)
    return dst


def test_missing_metadata_is_a_metadata_error(tiny, tmp_path):
    with pytest.raises(MetadataError, match="no edgemark metadata"):
        open_backend(_ir_with_rt_info(tiny, tmp_path / "none.xml", None))
    with pytest.raises(MetadataError, match="no edgemark metadata"):
        open_backend(_tflite_with_entry(tiny.paths[("onnx2tf", "fp32")], tmp_path / "none.tflite", None))
    with pytest.raises(MetadataError, match="no edgemark metadata"):
        open_backend(tiny.bare)


@pytest.mark.parametrize("payload", ["{not json", '{"schema_version": 1}', "[]"])
def test_malformed_metadata_is_a_metadata_error(tiny, tmp_path, payload):
    with pytest.raises(MetadataError):
        open_backend(_ir_with_rt_info(tiny, tmp_path / "bad.xml", payload))
    with pytest.raises(MetadataError):
        open_backend(_tflite_with_entry(tiny.paths[("onnx2tf", "fp32")], tmp_path / "bad.tflite", payload.encode()))


def test_metadata_argument_overrides_a_file_without_any(tiny, tmp_path):
    backend = open_backend(_ir_with_rt_info(tiny, tmp_path / "none.xml", None), metadata=tiny.meta)
    assert backend.metadata == tiny.meta


def test_hand_written_flatbuffer_reader_agrees_with_tensorflow(tiny):
    from tensorflow.lite.tools import flatbuffer_utils

    path = tiny.paths[("litert-torch", "fp16")]
    model = flatbuffer_utils.read_model(str(path))
    expected = {m.name.decode(): bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8)) for m in model.metadata}
    assert read_metadata_entries(path.read_bytes()) == expected
    assert ModelMetadata.from_json(expected[METADATA_KEY]).provenance.precision == "fp16"


# ------------------------------------------------------------------------------------ damaged files
def _copy_ir(tiny, tmp_path: Path, xml_bytes: bytes | None = None, bin_bytes: bytes | None = None) -> Path:
    src = tiny.paths[("openvino", "fp32")]
    xml = tmp_path / "m.xml"
    xml.write_bytes(src.read_bytes() if xml_bytes is None else xml_bytes)
    xml.with_suffix(".bin").write_bytes(src.with_suffix(".bin").read_bytes() if bin_bytes is None else bin_bytes)
    return xml


def test_damaged_openvino_files_are_model_load_errors(tiny, tmp_path):
    src = tiny.paths[("openvino", "fp32")]
    xml, weights = src.read_bytes(), src.with_suffix(".bin").read_bytes()
    cases = {"truncated xml": (xml[: len(xml) // 2], None), "truncated bin": (None, weights[: len(weights) // 2]),
             "empty bin": (None, b""), "garbage xml": (b"\x00\x01 not xml", None)}
    for case, (x, b) in cases.items():
        path = _copy_ir(tiny, tmp_path, x, b)
        with pytest.raises(ModelLoadError, match="m.xml") as info:
            open_backend(path)
        assert "truncated" in str(info.value) or "corrupt" in str(info.value), case
    path = _copy_ir(tiny, tmp_path)
    path.with_suffix(".bin").unlink()
    with pytest.raises(ModelLoadError, match=r"m\.bin"):
        open_backend(path)


@pytest.mark.parametrize("keep", [0, 7, 64, 0.5, 0.99])
def test_damaged_tflite_files_are_model_load_errors(tiny, tmp_path, keep):
    data = tiny.paths[("onnx2tf", "fp32")].read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:n])
    with pytest.raises(ModelLoadError, match="cut.tflite"):
        open_backend(path)


def test_random_bytes_behind_a_tflite_identifier_never_crash_the_reader(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(20):
        path = tmp_path / f"r{i}.tflite"
        path.write_bytes(rng.integers(0, 256, 8).astype(np.uint8).tobytes()[:4] + b"TFL3"
                         + rng.integers(0, 256, 4000).astype(np.uint8).tobytes())
        with pytest.raises(ModelLoadError):
            open_backend(path)


# --------------------------------------------------------------------------- quantised TFLite I/O
def test_quantised_tensors_are_handled_with_the_files_scale_and_zero_point():
    detail = {"name": "x", "dtype": np.int8, "quantization": (0.05, -3)}
    x = np.array([[-7.0, -0.01, 0.0, 1.234, 99.0]], dtype=np.float32)
    q = _to_input(x, detail)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [[-128, -3, -3, 22, 127]])  # rounded and clipped to int8
    np.testing.assert_allclose(_to_float(q, detail), [[-6.25, 0.0, 0.0, 1.25, 6.5]], rtol=1e-6)
    u8 = {"name": "y", "dtype": np.uint8, "quantization": (1 / 256, 0)}
    np.testing.assert_allclose(_to_float(np.array([0, 128, 255], np.uint8), u8), [0, 0.5, 255 / 256])
    assert _to_float(np.ones(2, np.float16), {"dtype": np.float16}).dtype == np.float32


# ------------------------------------------------------------------------------ onnx2tf offline
def test_network_guard_stops_onnx2tfs_own_download(tmp_path, monkeypatch):
    from onnx2tf.utils.common_functions import download_test_image_data

    monkeypatch.chdir(tmp_path)  # no sample file here, so onnx2tf would fetch one from GitHub
    originals = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)
    with network_blocked() as attempts:
        with pytest.raises(Exception):
            download_test_image_data()
        with pytest.raises(OSError):
            socket.create_connection(("example.com", 80), timeout=1)
    assert attempts
    assert (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == originals  # restored


def test_conversion_that_would_download_fails_instead(tiny, tmp_path, monkeypatch):
    # the sample file under another name: onnx2tf looks for its own name, tries GitHub, and is stopped
    monkeypatch.setattr(to_tflite, "CALIBRATION_FILE", "elsewhere.npy")
    with pytest.raises(to_tflite.TfliteConversionError, match="network"):
        to_tflite.run_onnx2tf(tiny.bare, tiny.meta, tmp_path / "work")


def test_calibration_sample_is_real_faces_in_onnx2tfs_layout(tiny):
    sample = to_tflite.calibration_sample(tiny.meta)
    assert sample.shape == (20, 128, 128, 3) and sample.dtype == np.float32
    assert sample.std() > 0.3 and len(np.unique(sample[:, 0, 0, 0])) > 1


def test_litert_torch_needs_a_torch_model(tiny, tmp_path):
    source = load_source(tiny.bare, metadata=tiny.meta)
    source.options["tflite_converter"] = "litert-torch"
    with pytest.raises(ConversionError, match="litert-torch"):
        convert(source, ["tflite"], tmp_path, verify=False)
    assert not list(tmp_path.glob("*.tflite"))


# ----------------------------------------------------------------------------- ONNX-only via the CLI
def test_cli_converts_a_bare_onnx_with_a_metadata_file(tiny, tmp_path, capsys):
    rc = main(["convert", str(tiny.bare), "--metadata", str(tiny.meta_json), "--to", "onnx", "openvino", "--fp16",
               "--out", str(tmp_path), "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["format"], r["precision"]) for r in rows] == [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "fp16")]
    for row in rows:
        assert row["size_mb"] > 0 and row["max_diff_px"] >= 0 and row["mean_diff_px"] <= row["max_diff_px"]
        meta = open_backend(row["file"]).metadata
        assert (meta.decoder, meta.crop, meta.scheme) == (tiny.meta.decoder, tiny.meta.crop, tiny.meta.scheme)
    assert rows[0]["max_diff_px"] == 0.0 and rows[1]["max_diff_px"] < 1e-3


def test_cli_refuses_a_bare_onnx_without_metadata(tiny, tmp_path, capsys):
    assert main(["convert", str(tiny.bare), "--to", "onnx", "--out", str(tmp_path)]) == 2
    assert "--metadata" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_cli_metadata_from_flags_equals_the_metadata_file(tiny, tmp_path, capsys):
    m = tiny.meta
    rc = main(["convert", str(tiny.bare), "--decoder", m.decoder.name,
               *[a for k, v in m.decoder.params.items() for a in ("--decoder-param", f"{k}={v}")],
               "--points", str(m.scheme.num_points), "--input-size", str(m.input.width),
               "--mean", *map(str, m.input.mean), "--std", *map(str, m.input.std), "--color", m.input.color,
               "--crop-preset", "h3r", "--crop-expand", str(m.crop.expand), "--crop-side-mode", m.crop.side_mode,
               "--to", "onnx", "--out", str(tmp_path), "--no-verify", "--json"])
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)
    meta = open_backend(row["file"]).metadata
    assert meta.replace(provenance=m.provenance) == m


def test_cli_flags_override_a_metadata_file(tiny, tmp_path, capsys):
    rc = main(["convert", str(tiny.bare), "--metadata", str(tiny.meta_json), "--crop-expand", "1.4",
               "--crop-origin", "pixel_corner", "--to", "onnx", "--out", str(tmp_path), "--no-verify", "--json"])
    assert rc == 0
    meta = open_backend(json.loads(capsys.readouterr().out)[0]["file"]).metadata
    assert (meta.crop.expand, meta.crop.coordinate_origin) == (1.4, "pixel_corner")
    assert meta.decoder == tiny.meta.decoder


def test_pfld_metadata_file_matches_the_shipped_onnx(shared_dir):
    from converters.metadata_options import _onnx_io

    meta = metadata_from_json(Path(__file__).resolve().parents[1] / "converters" / "metadata" / "pfld_ghostone_112.json")
    assert (meta.decoder.name, meta.scheme.num_points, meta.input.width) == ("regression", 98, 112)
    for onnx_file in sorted((shared_dir / "weights" / "pfld-ghostone").glob("*.onnx")):
        (in_name, in_dims), outputs = _onnx_io(onnx_file)
        assert (in_name, in_dims) == (meta.input.name, (1, 3, 112, 112))
        assert outputs == [(meta.outputs[0].name, (1, 2 * meta.scheme.num_points))]


def test_openvino_import_and_conversion_stay_offline(tiny, tmp_path):
    """A fresh process: importing openvino through the SDK and converting forks nothing and opens no socket."""
    script = f"""
import os, socket
forks, connects = [], []
real_fork, real_connect = os.fork, socket.socket.connect
os.fork = lambda: forks.append(1) or real_fork()
socket.socket.connect = lambda s, a: connects.append(a) or real_connect(s, a)
from converters.to_openvino import convert_onnx_to_openvino
from converters.api import metadata_from_json
from sdk.backends import open_backend
meta = metadata_from_json({str(tiny.meta_json)!r})
convert_onnx_to_openvino({str(tiny.bare)!r}, meta, {str(tmp_path / 'm.xml')!r})
open_backend({str(tmp_path / 'm.xml')!r})
import time; time.sleep(1)
print(len(forks), len(connects))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["0", "0"]


def test_sdk_runs_both_formats_without_torch_or_tensorflow(tiny):
    files = [str(tiny.paths[k]) for k in (("openvino", "fp16"), ("onnx2tf", "fp16"), ("litert-torch", "fp32"))]
    script = f"""
import sys, numpy as np
from sdk.predictor import Predictor
for f in {files!r}:
    assert Predictor(f).predict(np.zeros((90, 80, 3), np.uint8), [[5, 5, 70, 80]]).landmarks.shape == (1, {POINTS}, 2)
print(sorted(m for m in ("torch", "tensorflow", "jax", "keras") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_tflite_without_signature_gets_one_when_written(tmp_path):
    """onnx2tf wrote PFLD-GhostNet without a SignatureDef, which the INT8 quantizer needs."""
    pytest.importorskip("tensorflow")
    Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    from converters.to_tflite import restamp_tflite
    from sdk.predictor import default_model_path

    src = default_model_path("tflite")
    model_obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(src.read_bytes()))
    model_obj.signatureDefs = []
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model_obj)))
    assert Interpreter(str(bare)).get_signature_list() == {}
    restamp_tflite(bare, open_backend(src).metadata)
    sigs = Interpreter(str(bare)).get_signature_list()
    assert list(sigs) == ["serving_default"] and len(sigs["serving_default"]["inputs"]) == 1


@pytest.mark.parametrize("key", [("onnx2tf", "fp32"), ("litert-torch", "fp32"), ("litert-torch", "fp16")],
                         ids=["onnx2tf-fp32", "litert-torch-fp32", "litert-torch-fp16"])
def test_tflite_decoding_in_its_graph_predicts_the_same(tiny, key, tmp_path):
    """``decode_in_graph`` on each TFLite writer's file (NHWC maps from onnx2tf, NCHW from litert-torch)."""
    from converters.graph_decode import decode_in_graph
    from sdk.decoders import IN_GRAPH
    from sdk.predictor import Predictor

    image = (np.random.default_rng(1).integers(0, 255, (200, 240, 3))).astype(np.uint8)
    boxes = [[40, 30, 160, 170], [100, 50, 200, 180]]
    decoded, check = decode_in_graph(tiny.paths[key], tmp_path / "decoded.tflite")
    assert check["max_point_diff_px"] <= 1e-4
    before, after = Predictor(tiny.paths[key], threads=1), Predictor(decoded, threads=1)
    assert after.metadata.decoder.params[IN_GRAPH] is True
    assert [o.role for o in after.metadata.outputs] == ["points", "point_scores"]
    a, b = before.predict(image, boxes), after.predict(image, boxes)
    assert np.abs(a.landmarks - b.landmarks).max() <= 1e-3
    assert np.abs(a.face_confidence - b.face_confidence).max() <= 1e-5
