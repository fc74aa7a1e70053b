"""LiteRT (TFLite) adapter: ``ai_edge_litert`` first, ``tflite_runtime`` as a fallback, never TensorFlow.

Quantised inputs and outputs are handled here with the scale and zero point the
file itself stores, so callers always pass and receive float32. A model with a
static batch (onnx2tf writes batch 1) is run in chunks of that batch; a model
with a dynamic batch is resized to the whole batch.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelLoadError
from ..metadata import METADATA_KEY, MetadataError, ModelMetadata
from ..formats import RUNTIMES
from .base import Backend
from .tflite_flatbuffer import FlatbufferError, read_metadata_entries


def interpreter_class():
    """LiteRT's Interpreter class: ``ai_edge_litert`` first, ``tflite_runtime`` as the fallback."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RUNTIMES["litert"].missing_runtime() from exc
    return Interpreter


class LiteRtBackend(Backend):
    name = "litert"

    def _load(self) -> None:
        data = self.path.read_bytes()
        try:
            self._entries = read_metadata_entries(data)
        except FlatbufferError as exc:
            raise ModelLoadError(f"cannot load TFLite model {self.path}: the file is truncated, corrupt or not "
                                 f"TFLite ({exc})") from None
        Interpreter = interpreter_class()
        try:
            self.interpreter = Interpreter(model_content=data, num_threads=self.threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the runtime's verifier raises ValueError/RuntimeError on bad flatbuffers
            text = str(exc).strip().splitlines()
            raise ModelLoadError(f"cannot load TFLite model {self.path}: the file is truncated, corrupt or not "
                                 f"TFLite ({type(exc).__name__}: {(text[0] if text else '')[:200]})") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelLoadError(f"{self.path} has {len(inputs)} inputs; landmark models take one image tensor")
        self._input = inputs[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._static_batch = None if int(signature[0]) < 0 else int(signature[0])
        self._batch = int(self._input["shape"][0])
        # uint8 with scale 1 and zero point 0: the crop's pixels are the input's values as they are
        self._pixels = np.dtype(self._input["dtype"]) == np.uint8 and _quant(self._input) in ((1.0, 0), (0.0, 0))
        self._outputs = self.interpreter.get_output_details()

    def _read_metadata(self) -> ModelMetadata:
        if METADATA_KEY not in self._entries:
            raise MetadataError(f"{self.path} has no edgemark metadata (no {METADATA_KEY!r} entry in the flatbuffer's "
                                "metadata list): convert it with `edgemark convert ... --to tflite` or pass metadata=")
        return ModelMetadata.from_json(self._entries[METADATA_KEY])

    def output_names(self) -> list[str]:
        return [d["name"] for d in self._outputs]

    def input_shape(self) -> tuple[int | None, ...] | None:
        return _signature(self._input)[1:]

    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {d["name"]: _signature(d)[1:] for d in self._outputs}

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = [batch, *[int(d) for d in self._input["shape"][1:]]]
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = batch
            self._outputs = self.interpreter.get_output_details()

    def run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if to_image is not None:  # no TFLite file maps back
            self.image_map(len(tensor), to_image)  # raises, naming the file
        if self._pixels:  # uint8 pixels in (its graph normalises, converters.graph_input): no float round trip
            tensor = self.as_pixels(tensor)
        else:
            tensor = np.asarray(tensor, dtype=np.float32)
        if len(tensor) == 0:
            return {d["name"]: np.zeros((0, *d["shape"][1:]), dtype=np.float32) for d in self._outputs}
        step = self._static_batch or len(tensor)
        if self._static_batch is None:
            self._resize(len(tensor))
        def infer(part: np.ndarray) -> list[np.ndarray]:
            self.interpreter.set_tensor(self._input["index"],
                                        np.ascontiguousarray(part) if self._pixels else _to_input(part, self._input))
            self.interpreter.invoke()
            return [_to_float(self.interpreter.get_tensor(d["index"]), d) for d in self._outputs]

        values = self.run_in_chunks(tensor, step, infer)
        return {d["name"]: v for d, v in zip(self._outputs, values)}


def _signature(detail: dict) -> tuple[int | None, ...]:
    sig = detail.get("shape_signature", detail["shape"])
    return tuple(int(d) if int(d) > 0 else None for d in sig)


def _quant(detail: dict) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float batch → the input tensor's dtype (quantised with the file's scale/zero point)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    scale, zero = _quant(detail)
    if scale == 0.0:
        raise ModelLoadError(f"input {detail['name']!r} is {dtype} without a quantization scale")
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero)
    return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(dtype))


def _to_float(y: np.ndarray, detail: dict) -> np.ndarray:
    """Output tensor → float32, dequantised when the file quantises it."""
    if np.dtype(detail["dtype"]).kind == "f":  # get_tensor returns a copy already: no second one
        return np.asarray(y, dtype=np.float32)
    scale, zero = _quant(detail)
    if scale == 0.0:
        return np.array(y, dtype=np.float32)  # an integer output that is not quantised (e.g. indices)
    return ((y.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(np.float32)
