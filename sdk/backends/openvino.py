"""OpenVINO adapter (CPU): compiled once, one reused infer request, FP32 compute.

The CPU plugin's default inference precision is bf16 on CPUs that have it
(AVX512-BF16 / AMX), which silently costs sub-pixel accuracy; the adapter asks
for f32 so an FP32 or FP16 IR gives the same landmarks on every CPU.
"""
from __future__ import annotations

import sys

import numpy as np

from ..atomic import pending_sources
from ..decoders import TO_IMAGE_INPUT
from ..errors import ModelLoadError
from ..metadata import METADATA_KEY, MetadataError, ModelMetadata
from ..formats import RUNTIMES
from .base import Backend


def import_openvino():
    """``import openvino`` without its usage telemetry.

    Importing openvino (it imports its converter, ovc) sends an "import" event to Google
    Analytics from a forked process unless the user opted out; ``ov.convert_model`` sends
    more. A landmark SDK must not phone home, and a fork beside TensorFlow/JAX threads can
    deadlock. OpenVINO falls back to its own no-op stub when ``openvino_telemetry`` cannot
    be imported, so that import is made to fail — only if openvino is not imported yet and
    the telemetry package was not loaded on purpose.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


class OpenVinoBackend(Backend):
    name = "openvino"

    def _load(self) -> None:
        try:
            ov = import_openvino()
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RUNTIMES[self.name].missing_runtime() from exc
        # A converter killed between the renames of an .xml + .bin replacement leaves a journal:
        # read the newer, complete pair from where it is (sdk.atomic), never a mixed one.
        descriptor, weights = pending_sources(self.path, self.path.with_suffix(".bin"))
        if not weights.is_file():
            raise ModelLoadError(f"OpenVINO weights file not found: {weights} (it must sit beside {self.path.name})")
        core = ov.Core()
        try:
            self.model = core.read_model(str(descriptor), str(weights))
        except Exception as exc:  # OpenVINO raises RuntimeError/GeneralFailure for bad XML or short .bin
            raise ModelLoadError(f"cannot load OpenVINO model {self.path} (+ {weights.name}): the file is truncated, "
                                 f"corrupt or not an IR ({_first_line(exc)})") from None
        names = [port.get_any_name() for port in self.model.inputs]
        if len(names) > 2 or (len(names) == 2 and names[1] != TO_IMAGE_INPUT):
            raise ModelLoadError(f"{self.path} has inputs {names}; a landmark model takes one image tensor (and, "
                                 f"when its graph maps points back, {TO_IMAGE_INPUT!r} after it)")
        self.map_input = TO_IMAGE_INPUT if len(names) == 2 else None
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            self.compiled = core.compile_model(self.model, "CPU", config)
        except Exception as exc:
            raise ModelLoadError(f"cannot compile OpenVINO model {self.path}: {_first_line(exc)}") from None
        self.request = self.compiled.create_infer_request()
        port = self.compiled.input(0)
        batch = port.get_partial_shape()[0]
        # A static batch (an ONNX exported for one face) is run in chunks of that size.
        self._static_batch = batch.get_length() if batch.is_static else None
        self._input_type = {"f16": np.float16, "u8": np.uint8}.get(port.get_element_type().get_type_name(), np.float32)
        self._ports = list(self.compiled.outputs)
        self._names: list[str] | None = None

    def _read_metadata(self) -> ModelMetadata:
        if not self.model.has_rt_info([METADATA_KEY]):
            raise MetadataError(f"{self.path} has no edgemark metadata (rt_info key {METADATA_KEY!r} absent): "
                                "convert it with `edgemark convert ... --to openvino` or pass metadata=")
        try:
            text = self.model.get_rt_info([METADATA_KEY]).astype(str)
        except Exception as exc:
            raise MetadataError(f"{self.path}: rt_info {METADATA_KEY!r} is not a string ({_first_line(exc)})") from None
        return ModelMetadata.from_json(text)

    def output_names(self) -> list[str]:
        if self._names is None:
            meta = getattr(self, "metadata", None)
            wanted = {o.name for o in meta.outputs} if meta is not None else set()
            self._names = [next((n for n in sorted(p.get_names()) if n in wanted), None) or p.get_any_name()
                           for p in self._ports]
        return self._names

    def input_shape(self) -> tuple[int | None, ...] | None:
        return _static(self.model.inputs[0].get_partial_shape())[1:]

    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {name: _static(p.get_partial_shape())[1:] for name, p in zip(self.output_names(), self._ports)}

    def run(self, tensor: np.ndarray, to_image: np.ndarray | None = None) -> dict[str, np.ndarray]:
        tensor = np.ascontiguousarray(self.as_pixels(tensor) if self._input_type is np.uint8 else tensor,
                                      dtype=self._input_type)
        maps = self.image_map(len(tensor), to_image) if self.map_input is not None or to_image is not None else None
        if len(tensor) == 0:
            return {name: np.zeros((0, *[d.get_length() if d.is_static else 0 for d in p.get_partial_shape()[1:]]),
                                   dtype=np.float32) for name, p in zip(self.output_names(), self._ports)}
        step = self._static_batch or len(tensor)
        def infer(part: np.ndarray, part_maps: np.ndarray | None = None) -> list[np.ndarray]:
            self.request.infer({0: part} if part_maps is None else {0: part, 1: part_maps})
            # copies: the request's output buffers are reused by the next call
            return [np.array(self.request.get_output_tensor(i).data, dtype=np.float32) for i in range(len(self._ports))]

        if step == len(tensor):  # one call: no chunking or concatenation
            return dict(zip(self.output_names(), infer(tensor, maps)))
        return dict(zip(self.output_names(), self.run_in_chunks(tensor, step, infer, maps)))


def _static(shape) -> tuple[int | None, ...]:
    if shape.rank.is_dynamic:
        return ()
    return tuple(d.get_length() if d.is_static else None for d in shape)


def _first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines only say where it was raised)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    return f"{type(exc).__name__}: {((useful or lines or [''])[-1])[:200]}"
