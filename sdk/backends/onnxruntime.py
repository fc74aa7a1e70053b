"""ONNX Runtime adapter (CPU)."""
from __future__ import annotations

import numpy as np

from ..decoders import TO_IMAGE_INPUT
from ..errors import ModelLoadError
from ..metadata import METADATA_KEY, MetadataError, ModelMetadata
from ..formats import RUNTIMES
from .base import Backend


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RUNTIMES[self.name].missing_runtime() from exc
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad protobufs
            raise ModelLoadError(f"cannot load ONNX model {self.path}: the file is truncated, corrupt or not ONNX "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        self._output_names = [o.name for o in self.session.get_outputs()]  # asked once: the query builds objects
        inputs = self.session.get_inputs()
        pixels = [i for i in inputs if i.name != TO_IMAGE_INPUT]
        if len(pixels) != 1 or len(inputs) > 2:
            raise ModelLoadError(f"{self.path} has inputs {[i.name for i in inputs]}; a landmark model takes one image "
                                 f"tensor (and, when its graph maps points back, {TO_IMAGE_INPUT!r})")
        self._pixels = pixels[0]
        self.map_input = TO_IMAGE_INPUT if len(inputs) == 2 else None
        self._input_name = self._pixels.name
        self._input_type = self._pixels.type
        batch = self._pixels.shape[0]
        # A static batch (an ONNX exported for one face, e.g. PFLD) is run in chunks of that size.
        self._static_batch = batch if isinstance(batch, int) and batch > 0 else None

    def _read_metadata(self) -> ModelMetadata:
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise MetadataError(f"{self.path} has no edgemark metadata (key {METADATA_KEY!r} absent from "
                                "metadata_props): convert it with `edgemark convert MODEL.onnx ...` or pass metadata=")
        return ModelMetadata.from_json(props[METADATA_KEY])

    def run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if self._input_type == "tensor(float16)":
            tensor = tensor.astype(np.float16)
        elif self._input_type == "tensor(uint8)":
            tensor = self.as_pixels(tensor)
        names = self._output_names
        step = self._static_batch
        maps = self.image_map(len(tensor), to_image) if self.map_input is not None or to_image is not None else None

        def run(part: np.ndarray, part_maps: np.ndarray | None = None) -> list[np.ndarray]:
            feed = {self._input_name: part} if part_maps is None else {self._input_name: part, TO_IMAGE_INPUT: part_maps}
            return self.session.run(names, feed)

        if step is None or len(tensor) == step:  # one call: no chunking or concatenation
            return {n: np.asarray(v, dtype=np.float32) for n, v in zip(names, run(tensor, maps))}
        return dict(zip(names, self.run_in_chunks(tensor, step, run, maps)))

    def output_names(self) -> list[str]:
        return list(self._output_names)

    def input_shape(self) -> tuple[int | None, ...] | None:
        return _static(self._pixels.shape[1:])

    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {o.name: _static(o.shape[1:]) for o in self.session.get_outputs()}


def _static(dims) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
