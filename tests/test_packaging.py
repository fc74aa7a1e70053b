"""What a Pi user installs: defaults that follow the installed runtime, and the runtime wheel's contents."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sdk.formats
from sdk import ModelLoadError
from sdk.blazeface import VARIANTS, default_detector_file
from sdk.formats import FORMATS
from sdk.predictor import DEFAULT_FORMAT_PREFERENCE, DEFAULT_MODEL_FILES, MODELS_DIR, default_model_path

ROOT = Path(__file__).resolve().parent.parent


def _only(monkeypatch, *names: str) -> None:
    monkeypatch.setattr(sdk.formats, "installed_formats", lambda: [FORMATS[n] for n in names])


@pytest.mark.parametrize("installed, expected", [
    (("tflite",), "tflite"), (("openvino",), "openvino"), (("onnx",), "onnx"),
    (("openvino", "tflite"), "openvino"), (("onnx", "openvino", "tflite"), "onnx"),
])
def test_default_model_follows_the_installed_runtime(monkeypatch, installed, expected):
    _only(monkeypatch, *installed)
    path = default_model_path()
    assert path == MODELS_DIR / DEFAULT_MODEL_FILES[expected] and path.is_file()
    assert sdk.formats.format_of(path).name == expected
    assert expected == next(f for f in DEFAULT_FORMAT_PREFERENCE if f in installed)


def test_every_bundled_default_file_is_there_with_its_companions():
    for fmt, name in DEFAULT_MODEL_FILES.items():
        assert all(p.is_file() for p in FORMATS[fmt].paths(MODELS_DIR / name)), name


def test_no_runtime_names_the_three_extras(monkeypatch):
    _only(monkeypatch)
    for call in (default_model_path, lambda: default_detector_file(VARIANTS["short"])):
        with pytest.raises(ModelLoadError) as info:
            call()
        for extra in ("onnx", "openvino", "tflite"):
            assert f"pip install 'edgemark[{extra}]'" in str(info.value)


@pytest.mark.parametrize("installed, expected", [(("onnx",), "onnx"), (("openvino",), "openvino"),
                                                 (("tflite",), "tflite"), (("onnx", "tflite"), "tflite")])
def test_default_detector_follows_the_installed_runtime(monkeypatch, installed, expected):
    _only(monkeypatch, *installed)
    for variant in VARIANTS.values():
        path = default_detector_file(variant)
        assert path.is_file() and sdk.formats.format_of(path).name == expected


def test_forced_backend_picks_that_format_of_the_default(monkeypatch):
    pytest.importorskip("onnxruntime")
    from sdk import Predictor

    assert Predictor(backend="onnxruntime").model_path.name == DEFAULT_MODEL_FILES["onnx"]


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {run.stderr.strip().splitlines()[-1:]}")
    (wheel,) = out.glob("edgemark-*.whl")
    return zipfile.ZipFile(wheel)


def test_runtime_wheel_holds_the_runtime_and_nothing_else(runtime_wheel):
    names = runtime_wheel.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"sdk", "edgemark_cli"}
    for fmt, name in DEFAULT_MODEL_FILES.items():
        for p in FORMATS[fmt].paths(MODELS_DIR / name):
            assert f"sdk/models/{p.name}" in names
    for variant in VARIANTS.values():
        for fmt in FORMATS.values():
            assert f"sdk/data/blazeface/{variant.file_stem}{fmt.extension}" in names
    assert {"sdk/data/blazeface/LICENSE", "sdk/data/blazeface/PROVENANCE.json", "sdk/data/sample.jpg"} <= set(names)
    models = [n for n in names if n.startswith("sdk/models/")]
    stem = DEFAULT_MODEL_FILES["onnx"].split("_fp32")[0]
    assert all(Path(n).name.startswith(stem) for n in models), models  # the default's files and card only
    assert not [n for n in names if n.endswith((".yaml", ".pth", ".pt"))]
    meta = runtime_wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert not [r for r in requires if any(w in r for w in ("torch", "tensorflow", "onnx ", "nncf"))], requires
