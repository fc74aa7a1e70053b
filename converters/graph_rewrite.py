"""Rewriting a written ONNX / OpenVINO / TFLite file's graph safely: real face crops to check a rewrite on, and
one staged, checked, atomic replacement (``converters.graph_decode``, ``converters.graph_input``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdk.formats import format_of
from sdk.metadata import ModelMetadata

from .source import ConversionError


def sample_face() -> tuple[np.ndarray, np.ndarray]:
    """The bundled sample photo (BGR) and its (1, 4) face box, found by the built-in detector."""
    import cv2

    from sdk.blazeface import BlazeFaceDetector
    from sdk.predictor import MODELS_DIR

    image = cv2.imread(str(MODELS_DIR.parent / "data" / "sample.jpg"))
    boxes, _ = BlazeFaceDetector().detect(image)
    if len(boxes) == 0:
        raise ConversionError("the sample photo's face was not found: no reference crops to check against")
    return image, np.asarray(boxes[:1], np.float32)


def reference_crops(meta: ModelMetadata, count: int = 16, seed: int = 0) -> np.ndarray:
    """(count, H, W, 3) uint8 BGR crops of a real face (the bundled sample photo, jittered boxes), as
    the model's crop rule samples them."""
    from sdk.preprocess import clip_regions, crop_regions, sample_faces

    image, boxes = sample_face()
    rng = np.random.default_rng(seed)
    base = np.repeat(boxes[:1].astype(np.float64), count, axis=0)
    size = (base[:, 2:] - base[:, :2]).max(axis=1, keepdims=True)
    regions = crop_regions(base + rng.uniform(-0.15, 0.15, (count, 4)) * size, meta.crop)
    if meta.crop.clip:
        regions = clip_regions(regions, image.shape)
    return sample_faces(image, regions, meta.crop, meta.input.width, meta.input.height)


def reference_tensors(meta: ModelMetadata, count: int = 16, seed: int = 0) -> np.ndarray:
    """``reference_crops`` as the model's input tensors (``sdk.preprocess.normalise``)."""
    from sdk.preprocess import normalise

    return normalise(reference_crops(meta, count, seed), meta.input)


def onnx_constant(graph, name: str, value, dtype) -> str:
    """Add ``value`` as an initializer named ``name`` to an ONNX graph; returns the name (for node inputs)."""
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    return name


def rewrite_model(path: Path, out_path: str | Path | None, new_meta: ModelMetadata, transform: Callable,
                  meta: ModelMetadata, check: Callable[[Path], Any]) -> tuple[Path, Any]:
    """Stage ``transform(model, meta)`` of an ONNX / OpenVINO / TFLite file with ``new_meta``, ``check`` the staged
    file, then replace ``out_path`` (default ``path``) with it atomically (all of its files or none)."""
    import shutil
    import tempfile

    from sdk.atomic import atomic_paths
    from sdk.formats import FORMATS

    target = Path(out_path) if out_path is not None else path
    fmt = format_of(path).name
    with tempfile.TemporaryDirectory(prefix="edgemark-graph-") as tmp:
        staged = Path(tmp) / path.name
        if fmt == "onnx":
            import onnx

            from .onnx_io import embed_metadata, save_onnx

            save_onnx(embed_metadata(transform(onnx.load(str(path)), meta), new_meta), staged)
        elif fmt == "openvino":
            from sdk.backends.openvino import import_openvino

            from .to_openvino import save_ir, stamp_ir

            model = transform(import_openvino().Core().read_model(str(path)), meta)
            stamp_ir(model, new_meta)
            save_ir(model, staged)
        elif fmt == "tflite":
            from .to_tflite import rewrite_tflite

            rewrite_tflite(path.read_bytes(), staged, lambda model_obj: transform(model_obj, meta), new_meta)
        else:
            raise ConversionError(f"graph rewriting is built for ONNX, OpenVINO and TFLite files, not {fmt}")
        result = check(staged)
        with atomic_paths(*FORMATS[fmt].paths(target)) as temps:
            for src, tmp_path in zip(FORMATS[fmt].paths(staged), temps):
                shutil.copyfile(src, tmp_path)
    return target, result
