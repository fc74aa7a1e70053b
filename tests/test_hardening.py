"""Bad and odd inputs (the table in docs/hardening.md), property tests over boxes, image sizes,
dtypes and every decoder, and flat memory over many predictions."""
from __future__ import annotations

import dataclasses
import os

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk import EdgemarkError, InputError, MetadataError, ModelLoadError, Predictor
from sdk.decoders import point_confidence
from sdk.decoders import decode, pipnet_neighbour_tables
from sdk.metadata import CropRule, InputSpec
from sdk.formats import FORMATS
from sdk.preprocess import prepare_batch

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"

PROPS = settings(derandomize=True, max_examples=40, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(PROPS, max_examples=12)

SPEC = InputSpec(name="input", width=32, height=32)
RULE = CropRule(expand=1.25, side_mode="max_wh_plus1")

coords = st.one_of(st.floats(min_value=-300, max_value=300, width=32),
                   st.sampled_from([float("nan"), float("inf"), float("-inf")]))


# --- preprocessing: any image, any box → a finite tensor or an InputError --------------------------
@PROPS
@given(h=st.integers(0, 40), w=st.integers(0, 40),
       dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.float32, np.float64, np.bool_]),
       channels=st.sampled_from([None, 1, 3, 4]), box=st.lists(coords, min_size=4, max_size=4),
       transposed=st.booleans())
def test_prepare_batch_never_crashes(h, w, dtype, channels, box, transposed):
    shape = (h, w) if channels is None else (h, w, channels)
    image = np.zeros(shape, dtype=dtype)
    if transposed and image.ndim == 3:
        image = image.transpose(1, 0, 2)  # non-contiguous view
    try:
        tensor, m = prepare_batch(image, [box], SPEC, RULE)
    except InputError:
        return
    assert dtype == np.uint8 and channels == 3
    assert tensor.shape == (1, 3, 32, 32) and np.isfinite(tensor).all() and np.isfinite(m).all()


@PROPS
@given(h=st.integers(2, 60), w=st.integers(2, 60),
       box=st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.01, 5000), st.floats(0.01, 5000)))
def test_any_valid_box_gives_a_finite_tensor(h, w, box):
    x1, y1, bw, bh = box
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = [[x1, y1, x1 + bw, y1 + bh]]
    if x1 + bw < 0 or y1 + bh < 0 or x1 > w - 1 or y1 > h - 1:
        with pytest.raises(InputError, match="outside"):
            prepare_batch(image, boxes, SPEC, RULE)
        return
    tensor, m = prepare_batch(image, boxes, SPEC, RULE)
    assert np.isfinite(tensor).all() and np.isfinite(m).all()


def test_non_contiguous_images_give_the_same_landmarks(runtime_onnx, face_image):
    p = Predictor(runtime_onnx)
    box = [[20, 20, 140, 150]]
    flipped_view = face_image[:, ::-1]
    assert not flipped_view.flags.c_contiguous
    a = p.predict(flipped_view, box).landmarks
    b = p.predict(np.ascontiguousarray(flipped_view), box).landmarks
    np.testing.assert_array_equal(a, b)
    strided = np.zeros((400, 480, 3), np.uint8)[::2, ::2]
    strided[:] = face_image
    np.testing.assert_array_equal(p.predict(strided, box).landmarks, p.predict(face_image, box).landmarks)


@pytest.mark.parametrize("box", [[0, 0, 1e6, 1e6], [-1e5, -1e5, 1e5, 1e5], [50, 50, 50.01, 50.01], [10, 10, 11, 11]])
def test_huge_and_tiny_boxes_give_finite_landmarks(runtime_onnx, face_image, box):
    r = Predictor(runtime_onnx).predict(face_image, [box])
    assert np.isfinite(r.landmarks).all()
    assert ((0 <= r.point_confidence) & (r.point_confidence <= 1)).all()


@pytest.mark.parametrize("boxes, message", [
    ([[np.inf, 0, 10, 10]], "NaN or infinite"),
    ([[0, 0, 1e39, 1e39]], "beyond"),  # finite in float64, inf in float32: refused by name
    ([["a", 0, 10, 10]], "must be numbers"),
    ([[0, 0, 10], [0, 0, 10, 10]], "must be numbers"),
    (object(), "must be numbers"),
])
def test_more_bad_boxes(runtime_onnx, face_image, boxes, message):
    with pytest.raises(InputError, match=message):
        Predictor(runtime_onnx).predict(face_image, boxes)


@pytest.mark.parametrize("image, message", [
    (np.zeros((0, 0, 3), np.uint8), "too small"),
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (np.zeros((40, 40, 3), np.float64), "uint8"),
    (np.zeros((40, 40, 1), np.uint8), "HxWx3"),
    (None, "numpy array"),
])
def test_more_bad_images_with_and_without_boxes(runtime_onnx, image, message):
    p = Predictor(runtime_onnx)
    with pytest.raises(InputError, match=message):
        p.predict(image, [[0, 0, 10, 10]])
    with pytest.raises(InputError, match=message):
        p.predict(image)  # detection path validates first too


# --- every decoder: random maps → finite landmarks inside the map ------------------------------------
maps_shape = st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9))


def _maps(shape, seed, scale):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@PROPS
@given(shape=maps_shape, seed=st.integers(0, 10_000), scale=st.floats(0.01, 40),
       name=st.sampled_from(["h3r_topk", "shr_local_softargmax", "argmax", "argmax_quarter"]),
       stride=st.sampled_from([1.0, 4.0]))
def test_heatmap_decoders_stay_inside_the_map(shape, seed, scale, name, stride):
    n, l, h, w = shape
    maps = _maps(shape, seed, scale)
    params = {"stride": stride, **({"topk": 9} if name == "h3r_topk" else {}),
              **({"window": 5, "temperature": 0.09} if name == "shr_local_softargmax" else {})}
    pts, scores = decode(name, {"heatmap": maps}, params)
    assert pts.shape == (n, l, 2) and scores.shape == (n, l)
    assert np.isfinite(pts).all() and np.isfinite(scores).all()
    # inside the area the map covers: cell centres 0..W-1, cell edges ±0.5
    assert (pts[..., 0] >= -0.5 * stride).all() and (pts[..., 0] <= (w - 0.5) * stride).all()
    assert (pts[..., 1] >= -0.5 * stride).all() and (pts[..., 1] <= (h - 0.5) * stride).all()
    conf = point_confidence(name, scores)
    assert conf.shape == (n, l) and ((conf >= 0) & (conf <= 1)).all()


@PROPS
@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 10_000),
       nb=st.integers(1, 4), wild=st.booleans())
def test_pipnet_decoder_stays_inside_the_map(n, h, w, seed, nb, wild):
    rng = np.random.default_rng(seed)
    l = nb + 2
    meanface = rng.uniform(0, 1, (l, 2))
    _, rev1, rev2 = pipnet_neighbour_tables(meanface, nb)
    cls = rng.standard_normal((n, l, h, w)).astype(np.float32)
    if wild:  # untrained heads: any offsets → still finite
        off = lambda c: (rng.standard_normal((n, c, h, w)) * 20).astype(np.float32)  # noqa: E731
        ox, oy, nbx, nby = off(l), off(l), off(l * nb), off(l * nb)
    else:  # offsets in their trained ranges: each guess lands inside the map
        ox, oy = (rng.uniform(0, 1, (n, l, h, w)).astype(np.float32) for _ in range(2))
        cols = np.arange(w)[None, None, None, :]
        rows = np.arange(h)[None, None, :, None]
        nbx = (rng.uniform(0, w, (n, l * nb, h, w)) - cols).astype(np.float32)
        nby = (rng.uniform(0, h, (n, l * nb, h, w)) - rows).astype(np.float32)
    out = {"cls": cls, "offset_x": ox, "offset_y": oy, "nb_x": nbx, "nb_y": nby}
    params = {"stride": 8.0, "num_neighbours": nb, "reverse_index1": rev1, "reverse_index2": rev2}
    pts, scores = decode("pipnet", out, params)
    assert np.isfinite(pts).all() and np.isfinite(scores).all()
    if not wild:
        assert (pts >= 0).all() and (pts[..., 0] <= w * 8).all() and (pts[..., 1] <= h * 8).all()
    conf = point_confidence("pipnet", scores)
    assert ((conf >= 0) & (conf <= 1)).all()


@PROPS
@given(n=st.integers(1, 3), l=st.integers(1, 20), seed=st.integers(0, 10_000), centered=st.booleans(),
       layout=st.sampled_from(["flat", "pairs", "nchw11"]))
def test_regression_decoder_stays_inside_the_input(n, l, seed, centered, layout):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1 if centered else 0, 1, (n, l, 2)).astype(np.float32)
    raw = {"flat": v.reshape(n, 2 * l), "pairs": v, "nchw11": v.reshape(n, 2 * l, 1, 1)}[layout]
    pts, scores = decode("regression", {"landmarks": raw},
                         {"input_width": 112, "input_height": 96, "normalized": True, "centered": centered})
    assert pts.shape == (n, l, 2) and np.isfinite(pts).all()
    assert (pts >= -1e-4).all() and (pts[..., 0] <= 112 + 1e-3).all() and (pts[..., 1] <= 96 + 1e-3).all()
    assert np.array_equal(point_confidence("regression", scores), np.ones((n, l), np.float32))


def test_nan_maps_give_zero_confidence():
    maps = np.full((1, 2, 4, 4), np.nan, np.float32)
    for name in ("h3r_topk", "argmax"):
        _, scores = decode(name, {"heatmap": maps}, {"stride": 4.0})
        assert (point_confidence(name, scores) == 0).all()


# --- the Predictor never returns NaN landmarks silently ------------------------------------------
@FEW
@given(box=st.tuples(st.floats(-80, 200), st.floats(-80, 180), st.floats(1, 400), st.floats(1, 400)),
       flip=st.booleans())
def test_predictor_outputs_are_finite_and_confidences_bounded(tiny_predictor, face_image_fixed, box, flip):
    x1, y1, w, h = box
    try:
        r = tiny_predictor.predict(face_image_fixed, [[x1, y1, x1 + w, y1 + h]], flip_test=flip)
    except InputError as exc:
        assert "outside" in str(exc)
        return
    assert np.isfinite(r.landmarks).all() and np.isfinite(r.scores).all()
    assert ((r.point_confidence >= 0) & (r.point_confidence <= 1)).all()
    assert 0 <= r.face_confidence[0] <= 1


@pytest.fixture(scope="module")
def tiny_predictor(runtime_onnx):
    return Predictor(runtime_onnx, threads=1)


@pytest.fixture(scope="module")
def face_image_fixed():
    return np.random.default_rng(0).integers(0, 255, size=(200, 240, 3), dtype=np.uint8)


def test_nan_model_outputs_raise_instead_of_returning_nan(runtime_onnx, face_image):
    from sdk.backends import open_backend

    inner = open_backend(runtime_onnx)

    class NaNBackend(type(inner)):
        def run(self, tensor, to_image=None):
            return {k: np.full_like(v, np.nan) for k, v in super().run(tensor, to_image).items()}

    nan_backend = NaNBackend(runtime_onnx)
    with pytest.raises(EdgemarkError, match="non-finite landmarks"):
        Predictor(nan_backend).predict(face_image, [[10, 10, 100, 100]])


# --- model files ---------------------------------------------------------------------------------
def test_corrupt_empty_and_directory_model_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(ModelLoadError, match="truncated, corrupt or not ONNX"):
        Predictor(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError):
        Predictor(empty)
    folder = tmp_path / "dir.onnx"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="is a folder, not a model file"):
        Predictor(folder)


def test_malformed_metadata_json(runtime_onnx, tmp_path):
    onnx = pytest.importorskip("onnx", reason="editing an ONNX file needs the onnx package (workstation stack)")

    model = onnx.load(str(runtime_onnx))
    for prop in model.metadata_props:
        if prop.key == "edgemark":
            prop.value = "{not json"
    bad = tmp_path / "badmeta.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(MetadataError, match="not valid JSON"):
        Predictor(bad)


# --- CLI -----------------------------------------------------------------------------------------
def test_cli_corrupt_image(runtime_onnx, tmp_path, capsys):
    from edgemark_cli import main

    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    assert main(["predict", str(bad), "--model", str(runtime_onnx)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgemark predict: cannot read image") and len(err.strip().splitlines()) == 1


def test_cli_unknown_architecture(tmp_path, capsys):
    pytest.importorskip("torch", reason="edgemark convert needs the converter stack")
    from edgemark_cli import main

    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"not a checkpoint")
    try:
        rc = main(["convert", str(ckpt), "--arch", "no_such_arch", "--out", str(tmp_path)])
    except SystemExit as exc:  # argparse-level or handler-level exit
        rc = exc.code
    err = capsys.readouterr().err
    assert rc not in (0, None) and "no_such_arch" in err


# --- memory stays flat ---------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux) to read RSS")
def test_memory_is_flat_over_many_predictions(runtime_onnx):
    p = Predictor(runtime_onnx, threads=1)
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 90, 100], [60, 20, 150, 110]], np.float32)
    for _ in range(200):  # warm-up: allocator arenas and caches settle
        p.predict(image, boxes)
    before = _rss_mb()
    for i in range(2000):
        p.predict(image, boxes + (i % 7), flip_test=(i % 5 == 0))
    growth = _rss_mb() - before
    assert growth < 20, f"RSS grew {growth:.1f} MB over 2,000 predictions"


# --- metadata checked against the graph at load ---------------------------------------------------
def _contradicting(meta, case):
    import dataclasses

    from sdk.metadata import DecoderSpec, LandmarkScheme

    if case == "points":
        return meta.replace(scheme=LandmarkScheme("ibug68", 68))
    if case == "stride":
        return meta.replace(decoder=DecoderSpec(meta.decoder.name, {**meta.decoder.params, "stride": 2}))
    if case == "size":
        return meta.replace(input=dataclasses.replace(meta.input, width=160, height=160))
    if case == "layout":  # the other layout than the file's
        return meta.replace(input=dataclasses.replace(meta.input, layout="nchw" if meta.input.layout == "nhwc" else "nhwc"))
    raise ValueError(case)


@pytest.mark.parametrize("case, message", [
    ("points", "98 channels but the metadata implies 68|holds 98 points but the scheme ibug68 has 68"),
    ("stride", "stride 2 it covers 64x64 px, not the 128x128 input"),
    ("size", "160x160"),
    ("layout", "NHWC|NCHW"),
])
@pytest.mark.parametrize("suffix", [".onnx", ".xml", ".tflite"])
def test_metadata_that_contradicts_the_graph_fails_at_load(case, message, suffix):
    from sdk.formats import format_of
    from sdk.predictor import DEFAULT_MODEL_FILES, MODELS_DIR

    fmt = format_of(f"x{suffix}")
    if not fmt.is_installed():
        pytest.skip(f"{fmt.runtime} is not installed")
    path = MODELS_DIR / DEFAULT_MODEL_FILES[fmt.name]
    meta = Predictor(path).metadata
    if case == "stride" and meta.decoder.params.get("in_graph"):
        pytest.skip("this file decodes in its graph: the graph's own stride is used, the metadata's is not read")
    with pytest.raises(MetadataError, match=message):
        Predictor(path, metadata=_contradicting(meta, case))


def test_typed_errors_for_wrong_arguments(runtime_onnx, face_image, tmp_path):
    import json

    from sdk.metadata import ModelMetadata

    with pytest.raises(InputError, match="model must be a file path"):
        Predictor(123)
    meta = Predictor(runtime_onnx).metadata
    assert Predictor(runtime_onnx, metadata=meta.to_dict()).metadata == meta  # a dict is validated and used
    with pytest.raises(InputError, match="metadata must be"):
        Predictor(runtime_onnx, metadata="{}")
    with pytest.raises(ModelLoadError, match="backend 'openvino' runs .xml files"):
        Predictor(runtime_onnx, backend="openvino")
    for path, value, message in ((("crop", "expand"), "1.2", "crop.expand must be numbers"),
                                 (("input", "std"), [0.2, "x", 0.2], "input.std must be numbers"),
                                 (("scheme", "flip_pairs"), [[0.5, 1]], "integer point indices")):
        data = json.loads(json.dumps(meta.to_dict()))
        data[path[0]][path[1]] = value
        with pytest.raises(MetadataError, match=message):
            ModelMetadata.from_dict(data)


def test_detector_rows_with_a_score_column(runtime_onnx):
    import cv2

    image = cv2.imread(str(SAMPLE_PATH))

    class Rows:
        def detect(self, img):
            return np.array([[180, 80, 270, 175, 0.9]], np.float32), None

    class Bad:
        def detect(self, img):
            return np.array([[180, 80, 270]], np.float32), np.array([0.9], np.float32)

    result = Predictor(runtime_onnx, detector=Rows()).predict(image)
    assert len(result) == 1 and result.extra["detector_scores"].tolist() == [pytest.approx(0.9)]
    with pytest.raises(InputError, match=r"\(F, 4\)"):
        Predictor(runtime_onnx, detector=Bad()).predict(image)


def test_partial_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    """A SIGKILLed writer leaves its temporary file; the next write beside the same target removes it."""
    import signal
    import subprocess
    import sys

    target = tmp_path / "model.onnx"
    code = ("import sys, time\nfrom sdk.atomic import atomic_paths\n"
            f"with atomic_paths({str(target)!r}) as (tmp,):\n"
            "    tmp.write_bytes(b'half'); print(tmp, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    partial = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.is_file() and not target.exists()  # the kill left a partial file, never the final name
    from sdk.atomic import atomic_paths

    with atomic_paths(target) as (tmp,):
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and not partial.exists()
    assert not list(tmp_path.glob(".model.*.partial.onnx"))


# Where the converter is SIGKILLed while it replaces a working model, per format: (call, n-th) and
# whether the old model is what must load afterwards. OpenVINO's os.replace calls: 1 save_model's
# .bin moved to its temporary name, 2 the journal committed, 3 the .bin, 4 the .xml; then the
# journal is unlinked. ONNX: 1 the one rename.
CONVERTER_KILL_POINTS = {
    ("openvino", "while writing the temporary files"): ("fsync", 1, "old"),
    ("openvino", "files complete, before the journal"): ("replace", 2, "old"),
    ("openvino", "journal written, nothing renamed"): ("replace", 3, "new"),
    ("openvino", "new .bin in place, old .xml"): ("replace", 4, "new"),
    ("openvino", "both renamed, journal not yet removed"): ("unlink", 1, "new"),
    ("onnx", "while writing the temporary file"): ("fsync", 1, "old"),
    ("onnx", "file complete, before the rename"): ("replace", 1, "old"),
}
KILLER = """
import os, signal, sys
from pathlib import Path
from sdk import atomic
what, at = sys.argv[3], int(sys.argv[4])
calls = {"replace": 0, "fsync": 0, "unlink": 0}
def counting(name, real):
    def f(*a, **k):
        calls[name] += 1
        if name == what and calls[name] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    return f
os.replace = counting("replace", os.replace)
atomic._fsync = counting("fsync", atomic._fsync)
real_unlink = Path.unlink
def unlink(self, *a, **k):
    if self.name.endswith(".swap"):
        calls["unlink"] += 1
        if what == "unlink" and calls["unlink"] == at:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_unlink(self, *a, **k)
Path.unlink = unlink
from converters.api import convert, load_source
convert(load_source(sys.argv[1]), [sys.argv[5]], sys.argv[2], verify=False)
"""


def _new_version_of(onnx_path, out_dir):
    """The same network with other metadata (crop expand 1.3): tells the old file from the new one."""
    import onnx

    from converters.onnx_io import embed_metadata, read_metadata, save_onnx

    proto = onnx.load(str(onnx_path))
    meta = read_metadata(proto)
    new_meta = meta.replace(crop=dataclasses.replace(meta.crop, expand=1.3))
    out_dir.mkdir()
    path = out_dir / onnx_path.name
    save_onnx(embed_metadata(proto, new_meta), path)
    return path


@pytest.mark.parametrize("fmt,point", sorted(CONVERTER_KILL_POINTS))
def test_a_killed_conversion_never_destroys_the_working_model(tiny_onnx, tmp_path, fmt, point):
    """SIGKILL the converter at each point while it replaces a working model: the target always loads,
    as the old or the new model (never a mix); the next conversion leaves only the final files."""
    import subprocess
    import sys

    pytest.importorskip("openvino" if fmt == "openvino" else "onnxruntime")
    from converters.api import convert, load_source
    from sdk.backends import open_backend

    what, at, survivor = CONVERTER_KILL_POINTS[(fmt, point)]
    out = tmp_path / "models"
    (old,) = convert(load_source(tiny_onnx), [fmt], out, verify=False)
    new_source = _new_version_of(tiny_onnx, tmp_path / "new")
    proc = subprocess.run([sys.executable, "-c", KILLER, str(new_source), str(out), what, str(at), fmt],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    expand = open_backend(old.path).metadata.crop.expand  # loads: a whole model, old or new
    left = sorted(p.name for p in out.iterdir())
    print(f"{fmt}, killed {point}: left {left}; loads the {survivor} model")
    assert expand == {"old": 1.25, "new": 1.3}[survivor], (point, left)
    (again,) = convert(load_source(new_source), [fmt], out, verify=False)
    assert open_backend(again.path).metadata.crop.expand == 1.3
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in FORMATS[fmt].paths(again.path))
