"""Shared fixtures: the real data in ../shared (skipped with a reason when absent) and tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from landmarkdata.paths import shared_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _shared_or_skip(*parts: str) -> Path:
    path = shared_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set EDGEMARK_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared_or_skip()


@pytest.fixture(scope="session")
def h3r_checkpoint() -> Path:
    return _shared_or_skip("weights", "h3r", "wflw_mobilenetv2_128", "model.pth")


@pytest.fixture(scope="session")
def aflw2000(shared_dir):
    from landmarkdata.datasets import load_aflw2000_3d

    return load_aflw2000_3d(limit=24)


@pytest.fixture(scope="session")
def h3r_onnx(tmp_path_factory, h3r_checkpoint) -> Path:
    """The official H3R-128 weights converted once per session through the public API."""
    pytest.importorskip("torch", reason="converting the official checkpoint needs the converter stack")
    from converters.api import convert, load_source

    out = tmp_path_factory.mktemp("h3r_onnx")
    source = load_source(h3r_checkpoint, arch="h3r_mobilenetv2", input_size=128)
    (result,) = convert(source, ["onnx"], out, verify=False)
    return result.path


SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "sdk" / "models"


@pytest.fixture(scope="session")
def runtime_onnx() -> Path:
    """The bundled default model (real, trained): what the runtime tests run on, with no torch needed."""
    pytest.importorskip("onnxruntime", reason="the runtime tests run the bundled ONNX model on ONNX Runtime")
    from sdk.predictor import DEFAULT_MODEL

    return SHIPPED_MODELS / DEFAULT_MODEL


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A randomly initialised 64-px H3R-style model with 98 points, exported by the converters."""
    torch = pytest.importorskip("torch", reason="tiny models are built with the converter stack")

    from converters.architectures import get_arch
    from converters.to_onnx import export_onnx

    torch.manual_seed(0)
    spec = get_arch("h3r_mobilenetv2")
    model = spec.build(98, 64)
    meta = spec.make_metadata(98, 64)
    path = tmp_path_factory.mktemp("tiny") / "tiny_h3r_64_fp32.onnx"
    export_onnx(model, meta, path)
    return path


@pytest.fixture(scope="session")
def tiny_maps_files(tmp_path_factory, tiny_onnx) -> dict[str, Path]:
    """The tiny model as an ONNX file and its OpenVINO IR, both returning heat maps (the graph-rewrite tests' input)."""
    pytest.importorskip("openvino")
    import shutil

    from converters.to_openvino import convert_onnx_to_openvino
    from sdk.backends import open_backend

    out = tmp_path_factory.mktemp("tiny_maps")
    maps_onnx = out / "maps.onnx"
    shutil.copyfile(tiny_onnx, maps_onnx)
    maps_xml = out / "maps.xml"
    convert_onnx_to_openvino(maps_onnx, open_backend(maps_onnx).metadata, maps_xml)
    return {".onnx": maps_onnx, ".xml": maps_xml}


@pytest.fixture(scope="session")
def new_tflite_graph():
    """A factory of empty TFLite models (one main graph, no tensors yet) and their ``GraphEditor``: the
    synthetic graphs the TFLite rewrite tests build."""
    pytest.importorskip("tensorflow", reason="TFLite files are edited with TensorFlow's flatbuffer utilities")
    from tensorflow.lite.python import schema_py_generated as schema

    from converters.tflite_graph import GraphEditor

    def build():
        model = schema.ModelT()
        model.version = 3
        model.buffers = [schema.BufferT()]
        model.operatorCodes = []
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = [], []
        model.subgraphs = [graph]
        return model, GraphEditor(model)

    return build


@pytest.fixture()
def face_image() -> np.ndarray:
    """A synthetic BGR image with some structure (no shared data needed)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    return img
