"""The bad-input matrix: every case a user can hand edgemark, the error type and what it must name.

Each case is (kind, what was tried, call, expected). ``expected`` is an exception class and a
regex its message must match, or ``OK`` and a check of the result, or ``CLI`` and the regex of
the single stderr line (exit 2, no traceback). ``python tests/test_bad_input_matrix.py`` prints
the table in docs/hardening.md from the same cases (first line of what the user sees).
Runs on the bundled ONNX model: no torch, no shared data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdk import EdgemarkError, InputError, MetadataError, ModelLoadError, Predictor  # noqa: E402
from sdk.predictor import PredictorOptions, default_model_path  # noqa: E402

OK, CLI = "ok", "cli"
SAMPLE = ROOT / "sdk" / "data" / "sample.jpg"
BOX = [[150.0, 100.0, 330.0, 320.0]]


@lru_cache(maxsize=None)
def model() -> Path:
    return default_model_path("onnx")


@lru_cache(maxsize=None)
def predictor() -> Predictor:
    return Predictor(model())


@lru_cache(maxsize=None)
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgemark-matrix-"))


def image(h: int = 400, w: int = 480) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def sample() -> np.ndarray:
    import cv2

    return cv2.imread(str(SAMPLE))


def predict(img: Any = None, boxes: Any = BOX, **kw: Any):
    return predictor().predict(image() if img is None else img, boxes, **kw)


def faces(n: int) -> Callable[[Any], bool]:
    return lambda r: len(r) == n and np.isfinite(r.landmarks).all()


# ------------------------------------------------------------------------------ model files
def file_with(name: str, data: bytes) -> Path:
    path = workdir() / name
    path.write_bytes(data)
    return path


def onnx_with_metadata(name: str, change: Callable[[dict], None] | None = None, raw: str | None = None) -> Path:
    import onnx

    from sdk.metadata import METADATA_KEY

    proto = onnx.load(str(model()))
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            if raw is not None:
                prop.value = raw
            else:
                d = json.loads(prop.value)
                change(d)
                prop.value = json.dumps(d)
    path = workdir() / name
    onnx.save(proto, str(path))
    return path


def no_metadata_onnx() -> Path:
    import onnx

    proto = onnx.load(str(model()))
    del proto.metadata_props[:]
    path = workdir() / "plain.onnx"
    onnx.save(proto, str(path))
    return path


def set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k] if not k.isdigit() else d[int(k)]
    d[keys[-1]] = value


def tflite_with_stride(stride: int) -> Path:
    """The bundled TFLite file returning its heat maps (the in-graph decoder's outputs dropped: the maps are
    still a tensor of its graph) with another decoder stride in its metadata."""
    from converters.tflite_graph import GraphEditor
    from converters.to_tflite import rewrite_tflite
    from sdk.decoders import IN_GRAPH
    from sdk.metadata import OutputSpec

    path = workdir() / f"stride{stride}.tflite"
    meta = Predictor(default_model_path("tflite")).metadata
    params = {k: v for k, v in meta.decoder.params.items() if k != IN_GRAPH}
    maps_meta = meta.replace(outputs=(OutputSpec("heatmap", "heatmap", (meta.scheme.num_points, 32, 32), "nchw"),),
                             decoder=type(meta.decoder)(meta.decoder.name, {**params, "stride": stride}))

    def maps_out(model_obj) -> None:
        g = GraphEditor(model_obj)
        g.set_outputs([g.tensor_index("heatmap")])

    rewrite_tflite(default_model_path("tflite").read_bytes(), path, maps_out, maps_meta)
    return path


def meta_case(dotted: str, value: Any) -> Callable[[], Any]:
    return lambda: Predictor(onnx_with_metadata(f"m_{dotted.replace('.', '_')}.onnx",
                                                lambda d: set_path(d, dotted, value)))


def openvino_pair(name: str, bin_bytes: bytes | None) -> Path:
    import shutil

    src = default_model_path("openvino")
    xml = workdir() / f"{name}.xml"
    shutil.copyfile(src, xml)
    if bin_bytes is not None:
        (workdir() / f"{name}.bin").write_bytes(bin_bytes)
    return xml


def truncated(path: Path, name: str) -> Path:
    return file_with(name, path.read_bytes()[: len(path.read_bytes()) // 3])


# ------------------------------------------------------------------------------ detectors
class Rows:
    def __init__(self, boxes: Any, scores: Any = None):
        self.boxes, self.scores = boxes, scores

    def detect(self, img):
        return np.asarray(self.boxes, np.float32), self.scores


class Raises:
    def detect(self, img):
        raise RuntimeError("camera unplugged")


def with_detector(det: Any, img: Any = None):
    return Predictor(model(), detector=det, options=PredictorOptions(min_face_confidence=0.0)).predict(
        sample() if img is None else img)


# ------------------------------------------------------------------------------ tracker
def tracker_steps(*stamps: Any, frames: list | None = None):
    from sdk.tracking import LandmarkTracker

    t = LandmarkTracker(predictor())
    frames = frames or [sample()] * len(stamps)
    out = None
    for frame, stamp in zip(frames, stamps):
        out = t.update(frame, timestamp=stamp)
    return out


# ------------------------------------------------------------------------------ CLI
def cli(*args: str) -> tuple[int, str]:
    from edgemark_cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse refusals
            rc = exc.code
    return rc, err.getvalue()


def corrupt_image() -> str:
    return str(file_with("photo.jpg", b"\xff\xd8\xff not a jpeg"))


class NaNBackend:
    """A backend whose network returns NaN (corrupt weights)."""

    def __new__(cls):
        from sdk.backends import open_backend

        backend = open_backend(model())
        real = backend.run
        backend.run = lambda *args: {k: np.full_like(v, np.nan) for k, v in real(*args).items()}
        return backend


CASES: list[tuple[str, str, Callable[[], Any], Any, Any]] = [
    # images
    ("image", "float32 image (0..1)", lambda: predict(image().astype(np.float32) / 255), InputError, r"uint8.*float32"),
    ("image", "float64 image", lambda: predict(image().astype(np.float64)), InputError, r"uint8.*float64"),
    ("image", "uint16 image", lambda: predict(image().astype(np.uint16)), InputError, r"uint8.*uint16"),
    ("image", "int8 image", lambda: predict(image().astype(np.int8)), InputError, r"uint8.*int8"),
    ("image", "bool image", lambda: predict(image() > 128), InputError, r"uint8.*bool"),
    ("image", "grayscale HxW", lambda: predict(image()[..., 0]), InputError, r"HxWx3.*\(400, 480\)"),
    ("image", "HxWx1", lambda: predict(image()[..., :1]), InputError, r"HxWx3.*\(400, 480, 1\)"),
    ("image", "HxWx2", lambda: predict(image()[..., :2]), InputError, r"HxWx3.*\(400, 480, 2\)"),
    ("image", "RGBA HxWx4", lambda: predict(np.dstack([image(), image()[..., :1]])), InputError, r"HxWx3.*4\)"),
    ("image", "a batch (1, H, W, 3)", lambda: predict(image()[None]), InputError, r"HxWx3.*\(1, 400, 480, 3\)"),
    ("image", "0x0x3 image", lambda: predict(np.zeros((0, 0, 3), np.uint8)), InputError, r"too small: 0x0"),
    ("image", "1x1x3 image", lambda: predict(np.zeros((1, 1, 3), np.uint8)), InputError, r"too small: 1x1"),
    ("image", "1x100x3 image", lambda: predict(np.zeros((1, 100, 3), np.uint8)), InputError, r"too small: 100x1"),
    ("image", "list instead of an array", lambda: predict(image().tolist()), InputError, r"numpy array, got list"),
    ("image", "None", lambda: predictor().predict(None, BOX), InputError, r"numpy array, got NoneType"),
    ("image", "a file name instead of pixels", lambda: predictor().predict(str(SAMPLE), BOX), InputError,
     r"numpy array, got str"),
    ("image", "non-contiguous view img[:, ::-1]", lambda: predict(image()[:, ::-1]), OK, faces(1)),
    ("image", "strided view img[::2, ::2]", lambda: predict(image(800, 960)[::2, ::2]), OK, faces(1)),
    ("image", "Fortran-ordered array", lambda: predict(np.asfortranarray(image())), OK, faces(1)),
    ("image", "read-only array", lambda: predict(np.lib.stride_tricks.as_strided(image(), writeable=False)), OK,
     faces(1)),
    ("image", "color='hsv'", lambda: predict(color="hsv"), InputError, r"color must be 'bgr' or 'rgb', got 'hsv'"),
    ("image", "color=None", lambda: predict(color=None), InputError, r"color must be 'bgr' or 'rgb', got None"),
    ("image", "color='rgb' on an RGB image", lambda: predict(image()[..., ::-1].copy(), color="rgb"), OK, faces(1)),
    # boxes
    ("boxes", "box with NaN", lambda: predict(boxes=[[np.nan, 1, 50, 50]]), InputError, r"NaN or infinite"),
    ("boxes", "box with inf", lambda: predict(boxes=[[0, 1, np.inf, 50]]), InputError, r"NaN or infinite"),
    ("boxes", "box with -inf", lambda: predict(boxes=[[-np.inf, 1, 50, 50]]), InputError, r"NaN or infinite"),
    ("boxes", "inverted box (x2 < x1)", lambda: predict(boxes=[[100, 10, 20, 90]]), InputError,
     r"box 0 is empty or inverted.*x2 > x1"),
    ("boxes", "inverted box (y2 < y1)", lambda: predict(boxes=[[10, 90, 100, 20]]), InputError,
     r"box 0 is empty or inverted"),
    ("boxes", "zero-width box", lambda: predict(boxes=[[10, 10, 10, 90]]), InputError, r"empty or inverted"),
    ("boxes", "zero-height box", lambda: predict(boxes=[[10, 10, 90, 10]]), InputError, r"empty or inverted"),
    ("boxes", "second of two boxes inverted", lambda: predict(boxes=[BOX[0], [9, 9, 1, 1]]), InputError,
     r"box 1 is empty or inverted"),
    ("boxes", "box with 3 numbers", lambda: predict(boxes=[[1, 2, 3]]), InputError, r"\(faces, 4\).*\(1, 3\)"),
    ("boxes", "box with 5 numbers", lambda: predict(boxes=[[1, 2, 30, 40, 0.9]]), InputError,
     r"\(faces, 4\).*\(1, 5\)"),
    ("boxes", "boxes shaped (1, 1, 4)", lambda: predict(boxes=[[[1, 2, 30, 40]]]), InputError,
     r"\(faces, 4\).*\(1, 1, 4\)"),
    ("boxes", "ragged boxes", lambda: predict(boxes=[[1, 2, 3, 4], [1, 2]]), InputError, r"numbers shaped"),
    ("boxes", "box of strings", lambda: predict(boxes=[["a", "b", "c", "d"]]), InputError, r"numbers shaped.*'a'"),
    ("boxes", "None inside a box", lambda: predict(boxes=[[None, 1, 2, 3]]), InputError, r"NaN or infinite"),
    ("boxes", "a dict as boxes", lambda: predict(boxes={"x1": 1}), InputError, r"numbers shaped|\(faces, 4\)"),
    ("boxes", "box entirely right of the image", lambda: predict(boxes=[[500, 10, 600, 100]]), InputError,
     r"lies entirely outside the 480x400 image"),
    ("boxes", "box entirely left of the image", lambda: predict(boxes=[[-200, 10, -100, 100]]), InputError,
     r"lies entirely outside"),
    ("boxes", "box entirely above the image", lambda: predict(boxes=[[10, -200, 100, -100]]), InputError,
     r"lies entirely outside"),
    ("boxes", "box entirely below the image", lambda: predict(boxes=[[10, 450, 100, 500]]), InputError,
     r"lies entirely outside"),
    ("boxes", "box of 1e39 px", lambda: predict(boxes=[[0, 0, 1e39, 1e39]]), InputError, r"beyond ±1e\+07 px"),
    ("boxes", "box of 1e8 px", lambda: predict(boxes=[[0, 0, 1e8, 1e8]]), InputError, r"not a box in an image"),
    ("boxes", "boxes=[]", lambda: predict(boxes=[]), OK, faces(0)),
    ("boxes", "np.zeros((0, 4))", lambda: predict(boxes=np.zeros((0, 4))), OK, faces(0)),
    ("boxes", "one box as a flat list", lambda: predict(boxes=BOX[0]), OK, faces(1)),
    ("boxes", "list of tuples", lambda: predict(boxes=[tuple(BOX[0])]), OK, faces(1)),
    ("boxes", "integer boxes", lambda: predict(boxes=np.array(BOX, dtype=np.int32)), OK, faces(1)),
    ("boxes", "float16 boxes", lambda: predict(boxes=np.array(BOX, dtype=np.float16)), OK, faces(1)),
    ("boxes", "box partly off the image", lambda: predict(boxes=[[-50, -50, 100, 100]]), OK, faces(1)),
    ("boxes", "huge box (1e6 px) touching the image", lambda: predict(boxes=[[0, 0, 1e6, 1e6]]), OK, faces(1)),
    ("boxes", "tiny box (0.01 px)", lambda: predict(boxes=[[10, 10, 10.01, 10.01]]), OK, faces(1)),
    ("boxes", "50 boxes in one call", lambda: predict(boxes=BOX * 50), OK, faces(50)),
    # options
    ("options", "threads=0", lambda: Predictor(model(), threads=0), InputError, r"threads must be a positive"),
    ("options", "threads=-1", lambda: Predictor(model(), threads=-1), InputError, r"threads must be a positive"),
    ("options", "threads='2'", lambda: Predictor(model(), threads="2"), InputError, r"threads must be a positive"),
    ("options", "backend='caffe'", lambda: Predictor(model(), backend="caffe"), ModelLoadError,
     r"unknown backend 'caffe'"),
    ("options", "backend='openvino' on an .onnx file", lambda: Predictor(model(), backend="openvino"), ModelLoadError,
     r"openvino.*\.onnx|\.onnx.*openvino"),
    ("options", "max_batch=0", lambda: Predictor(model(), options=PredictorOptions(max_batch=0)), InputError,
     r"max_batch"),
    ("options", "refine=-1", lambda: Predictor(model(), options=PredictorOptions(refine=-1)), InputError, r"refine"),
    ("options", "min_face_confidence=2", lambda: Predictor(model(), options=PredictorOptions(min_face_confidence=2)),
     InputError, r"min_face_confidence"),
    ("options", "flip_test on a model with flip pairs", lambda: predict(flip_test=True), OK, faces(1)),
    # model files
    ("model file", "missing file", lambda: Predictor(workdir() / "nope.onnx"), ModelLoadError, r"not found.*nope\.onnx"),
    ("model file", "a folder named x.onnx", lambda: Predictor((workdir() / "x.onnx").mkdir(exist_ok=True)
                                                              or workdir() / "x.onnx"), ModelLoadError, r"folder|directory"),
    ("model file", "empty .onnx", lambda: Predictor(file_with("empty.onnx", b"")), ModelLoadError,
     r"cannot load ONNX model .*empty\.onnx"),
    ("model file", "truncated .onnx", lambda: Predictor(truncated(model(), "trunc.onnx")), ModelLoadError,
     r"truncated, corrupt or not ONNX"),
    ("model file", "random bytes .onnx", lambda: Predictor(file_with("junk.onnx", bytes(range(256)) * 40)),
     ModelLoadError, r"truncated, corrupt or not ONNX"),
    ("model file", "unknown extension .caffemodel", lambda: Predictor(file_with("m.caffemodel", b"x")), ModelLoadError,
     r"unknown extension '\.caffemodel'"),
    ("model file", "Predictor(123)", lambda: Predictor(123), InputError, r"model must be a file path .* got int"),
    ("model file", "ONNX without edgemark metadata", lambda: Predictor(no_metadata_onnx()), MetadataError,
     r"no edgemark metadata"),
    ("model file", "metadata not JSON", lambda: Predictor(onnx_with_metadata("nojson.onnx", raw="{oops")), MetadataError,
     r"not valid JSON"),
    ("model file", "metadata schema version 99", meta_case("schema_version", 99), MetadataError,
     r"schema version 99 is not supported"),
    ("model file", "crop.expand as a string", meta_case("crop.expand", "1.25"), MetadataError,
     r"crop.expand must be numbers"),
    ("model file", "a string inside input.std", meta_case("input.std", [0.2, "x", 0.2]), MetadataError,
     r"input.std must be numbers"),
    ("model file", "non-integer flip pairs", meta_case("scheme.flip_pairs", [[0.5, 1]]), MetadataError,
     r"flip_pairs entry"),
    ("model file", "crop.rounding 'ceil'", meta_case("crop.rounding", "ceil"), MetadataError, r"crop.rounding"),
    ("model file", "crop.resize 'lanczos'", meta_case("crop.resize", "lanczos"), MetadataError, r"crop.resize"),
    ("model file", "face_confidence.threshold 2", meta_case("face_confidence.threshold", 2), MetadataError,
     r"threshold must be in \[0, 1\]"),
    ("model file", "unknown decoder", meta_case("decoder.name", "magic"), MetadataError, r"decoder 'magic' is unknown"),
    ("model file", "unknown metadata field", meta_case("crop.zoom", 2), MetadataError, r"unknown fields.*zoom"),
    ("model file", "metadata says 68 points, network emits 98 maps",
     lambda: Predictor(onnx_with_metadata("p68.onnx", lambda d: d.update(
         scheme={"name": "ibug68", "num_points": 68, "flip_pairs": [], "to68": list(range(68))}))),
     MetadataError, r"(98 channels but the metadata implies 68|holds 98 points but the scheme ibug68 has 68)"),
    ("model file", "decoder stride 2 on a stride-4 network", lambda: Predictor(tflite_with_stride(2)), MetadataError,
     r"stride 2 it covers 64x64 px, not the 128x128"),
    ("model file", "metadata claims a 160x160 input", lambda: Predictor(onnx_with_metadata(
        "in160.onnx", lambda d: d["input"].update(width=160, height=160))), MetadataError,
     r"160x160.*graph's input is \((3, 128, 128|128, 128, 3)\)"),
    ("model file", "metadata claims the other layout than the graph's",
     lambda: Predictor(onnx_with_metadata("layout.onnx", lambda d: d["input"].update(
         layout="nchw" if d["input"]["layout"] == "nhwc" else "nhwc"))), MetadataError,
     r"(NHWC|NCHW).*graph's input is \((3, 128, 128|128, 128, 3)\)"),
    ("model file", "Predictor(metadata=<dict>) on a plain ONNX",
     lambda: Predictor(no_metadata_onnx(), metadata=predictor().metadata.to_dict()).predict(image(), BOX), OK,
     faces(1)),
    ("model file", "Predictor(metadata=<bad dict>)",
     lambda: Predictor(no_metadata_onnx(), metadata={"scheme": {}}), MetadataError, r"LandmarkScheme is missing the field\(s\) \['name', 'num_points'\]"),
    ("model file", "OpenVINO .xml without its .bin", lambda: Predictor(openvino_pair("nobin", None)), ModelLoadError,
     r"weights file not found.*nobin\.bin"),
    ("model file", "OpenVINO .bin truncated", lambda: Predictor(openvino_pair("shortbin", b"\0" * 100)),
     ModelLoadError, r"truncated, corrupt or not an IR"),
    ("model file", "truncated .tflite", lambda: Predictor(truncated(default_model_path("tflite"), "t.tflite")),
     ModelLoadError, r"t\.tflite"),
    ("model file", "random bytes .tflite", lambda: Predictor(file_with("junk.tflite", b"\x01" * 5000)),
     ModelLoadError, r"junk\.tflite"),
    # numerics
    ("numerics", "network returns NaN", lambda: Predictor(NaNBackend()).predict(image(), BOX), EdgemarkError,
     r"non-finite landmarks for face\(s\) \[0\]"),
    # detectors
    ("detector", "custom detector returns [x1, y1, x2, y2, score] rows", lambda: with_detector(
        Rows([[150, 100, 330, 320, 0.9]])), OK, faces(1)),
    ("detector", "custom detector returns (N, 3) rows", lambda: with_detector(Rows([[1, 2, 3]], [0.9])), InputError,
     r"\(F, 4\)"),
    ("detector", "custom detector returns NaN and inverted rows", lambda: with_detector(
        Rows([[np.nan, 1, 2, 3], [9, 9, 1, 1], [150, 100, 330, 320]], [0.9, 0.9, 0.9])), OK, faces(1)),
    ("detector", "custom detector returns no rows", lambda: with_detector(Rows(np.zeros((0, 4)), np.zeros(0))), OK,
     faces(0)),
    ("detector", "custom detector raises", lambda: with_detector(Raises()), RuntimeError, r"camera unplugged"),
    ("detector", "built-in detector, no face (black image)", lambda: predictor().predict(np.zeros((240, 320, 3),
                                                                                                 np.uint8)), OK, faces(0)),
    ("detector", "built-in detector on the sample photo", lambda: predictor().predict(sample()), OK, faces(1)),
    # tracker
    ("tracker", "timestamp NaN", lambda: tracker_steps(0.0, math.nan), InputError, r"timestamp must be finite, got nan"),
    ("tracker", "timestamp inf", lambda: tracker_steps(0.0, math.inf), InputError, r"timestamp must be finite"),
    ("tracker", "timestamp going back", lambda: tracker_steps(1.0, 0.5), InputError, r"timestamps must increase"),
    ("tracker", "timestamp repeated", lambda: tracker_steps(1.0, 1.0), InputError, r"timestamps must increase"),
    ("tracker", "timestamp as a string", lambda: tracker_steps("noon"), InputError, r"timestamp must be a number"),
    ("tracker", "frame None", lambda: tracker_steps(0.0, frames=[None]), InputError, r"numpy array, got NoneType"),
    ("tracker", "gray frame", lambda: tracker_steps(0.0, frames=[sample()[..., 0]]), InputError, r"HxWx3"),
    ("tracker", "frame size changes", lambda: tracker_steps(0.0, 0.04, frames=[sample(), sample()[:300, :400].copy()]),
     OK, lambda r: len(r) == 1),
]

CLI_CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("predict: missing image", ("predict", "none.png"), r"cannot read image none\.png"),
    ("predict: corrupt image", ("predict", "@corrupt"), r"cannot read image .*photo\.jpg"),
    ("predict: --threads 0", ("predict", str(SAMPLE), "--threads", "0"), r"--threads.*positive|must be >= 1"),
    ("predict: --threads -1", ("predict", str(SAMPLE), "--threads", "-1"), r"--threads"),
    ("predict: --threads two", ("predict", str(SAMPLE), "--threads", "two"), r"--threads"),
    ("predict: unknown --out extension", ("predict", str(SAMPLE), "--out", "@dir/x.xyz"), r"\.xyz"),
    ("predict: --out where no folder can be made", ("predict", str(SAMPLE), "--out", "/proc/edgemark/x.jpg"),
     r"/proc/edgemark"),
    ("predict: --model missing", ("predict", str(SAMPLE), "--model", "missing.onnx"), r"not found.*missing\.onnx"),
    ("predict: --model of unknown type", ("predict", str(SAMPLE), "--model", "@caffe"), r"unknown extension"),
    ("predict: --box with 3 numbers", ("predict", str(SAMPLE), "--box", "1", "2", "3"), r"--box"),
    ("predict: --box inverted", ("predict", str(SAMPLE), "--box", "100", "100", "10", "10"), r"empty or inverted"),
    ("predict: missing folder", ("predict", "/nonexistent/folder/"), r"/nonexistent/folder"),
    ("predict: camera that does not exist", ("predict", "7", "--max-frames", "1"), r"camera 7"),
    ("eval: unknown dataset", ("eval", "--dataset", "imagenet"), r"imagenet"),
    ("eval: --limit -1", ("eval", "--limit", "-1"), r"--limit"),
    ("eval: --labels bogus", ("eval", "--labels", "bogus"), r"--labels"),
    ("convert: missing source", ("convert", "missing.pth", "--arch", "h3r_mobilenetv2"), r"missing\.pth"),
    ("convert: unknown architecture", ("convert", "@ckpt", "--arch", "resnet9000"), r"unknown architecture 'resnet9000'"),
    ("convert: corrupt checkpoint", ("convert", "@ckpt", "--arch", "h3r_mobilenetv2"), r"cannot read checkpoint"),
    ("convert: --input-size 0", ("convert", "@ckpt", "--input-size", "0"), r"--input-size"),
    ("convert: --max-nme-increase abc", ("convert", str(ROOT / "training/models/edgemark_h3r_mnv2_128_fp32.onnx"),
                                         "--int8", "--max-nme-increase", "abc", "--out", "@dir"),
     r"relative increase in %"),
    ("convert: --max-nme-increase -1", ("convert", str(ROOT / "training/models/edgemark_h3r_mnv2_128_fp32.onnx"),
                                        "--int8", "--max-nme-increase", "-1", "--out", "@dir"), r">= 0"),
    ("convert: --crop-preset bogus", ("convert", "x.onnx", "--crop-preset", "bogus"), r"--crop-preset"),
    ("convert: calibrating on the test set", ("convert", str(ROOT / "training/models/edgemark_h3r_mnv2_128_fp32.onnx"),
                                              "--int8", "--calib", "aflw2000-3d", "--out", "@dir"), r"test set"),
    ("convert: --upgrade on a missing file", ("convert", "missing.onnx", "--upgrade"), r"missing\.onnx"),
    ("unknown command", ("frobnicate",), r"frobnicate|invalid choice"),
]


def _resolve(arg: str) -> str:
    if arg == "@corrupt":
        return corrupt_image()
    if arg == "@caffe":
        return str(file_with("m.caffemodel", b"x"))
    if arg == "@ckpt":
        return str(file_with("m.pth", b"PK\x03\x04 broken"))
    if arg.startswith("@dir"):
        return str(workdir() / "out") + arg[len("@dir"):]
    return arg


def run_case(call: Callable[[], Any], expected: Any, check: Any) -> str:
    """What the user gets, as one line; raises AssertionError when it is not what the case expects."""
    if expected is OK:
        result = call()
        assert check(result), f"unexpected result {result!r}"
        return f"works: {len(result)} face(s)" if hasattr(result, "landmarks") else "works"
    with pytest.raises(expected) as info:
        call()
    message = str(info.value).splitlines()[0] if str(info.value) else ""
    assert info.type is expected or issubclass(info.type, expected)
    import re

    assert re.search(check, message), f"{message!r} does not match {check!r}"
    return f"`{info.type.__name__}`: {message}"


def run_cli_case(args: tuple[str, ...], pattern: str) -> str:
    import re

    rc, err = cli(*map(_resolve, args))
    lines = [line.split("\r")[-1] for line in err.split("\n")]  # a progress bar redraws with \r
    lines = [line for line in lines if line.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"
    return f"exit 2: {lines[0]}"


@pytest.fixture(autouse=True)
def _runtime():
    pytest.importorskip("onnxruntime", reason="the matrix runs the bundled ONNX model")


def _needs(kind: str, what: str) -> None:
    if "OpenVINO" in what:
        pytest.importorskip("openvino")
    if "tflite" in what:
        pytest.importorskip("ai_edge_litert")
    if "ONNX" in what or "metadata" in what or "network" in what:
        pytest.importorskip("onnx")


@pytest.mark.parametrize("kind,what,call,expected,check", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input(kind, what, call, expected, check):
    _needs(kind, what)
    run_case(call, expected, check)


@pytest.mark.parametrize("what,args,pattern", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(what, args, pattern):
    if args[0] in ("convert", "eval"):
        pytest.importorskip("converters.commands" if args[0] == "convert" else "landmarkdata")
    run_cli_case(args, pattern)


def test_the_matrix_has_at_least_100_cases():
    assert len(CASES) + len(CLI_CASES) >= 100


def markdown() -> str:
    rows = ["| kind | input tried | what the user gets |", "|---|---|---|"]
    for kind, what, call, expected, check in CASES:
        try:
            got = run_case(call, expected, check)
        except BaseException as exc:  # noqa: BLE001 - the table shows a failing case as such
            got = f"**not as expected**: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        rows.append(f"| {kind} | {what} | {got.replace('|', '/')[:220]} |")
    for what, args, pattern in CLI_CASES:
        try:
            got = run_cli_case(args, pattern)
        except BaseException as exc:  # noqa: BLE001
            got = f"**not as expected**: {str(exc).splitlines()[0][:160]}"
        rows.append(f"| CLI | {what} | {got.replace('|', '/').replace(str(workdir()), '…')[:220]} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown())
