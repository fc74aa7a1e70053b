"""One calibration set, fed to each quantization toolchain in the form it wants.

All adapters take the float32 network-input tensors of a :class:`~calibration.sets.CalibrationSet`
(already preprocessed exactly as the Predictor does) and hand them over one face at a
time — batch 1, the shape every exported model accepts — in the layout the target
graph expects (TFLite graphs from onnx2tf are NHWC).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from sdk.preprocess import to_layout

# onnx2tf looks for exactly this file in its working directory and downloads sample
# images from the internet when it is absent; the name is fixed whatever the data's shape.
ONNX2TF_CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# Our tensors are already normalised: tell onnx2tf not to normalise again.
ONNX2TF_IDENTITY_NORM = {"quant_norm_mean": "[[[[0.0, 0.0, 0.0]]]]", "quant_norm_std": "[[[[1.0, 1.0, 1.0]]]]"}


def _to_layout(tensors: np.ndarray, source_layout: str, layout: str) -> np.ndarray:
    return np.ascontiguousarray(to_layout(np.asarray(tensors, dtype=np.float32), source_layout, layout))


def ort_reader(tensors: np.ndarray, input_name: str, *, source_layout: str = "nchw", layout: str = "nchw") -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over ``tensors`` (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    data = _to_layout(tensors, source_layout, layout)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= len(data):
                return None
            self._i += 1
            return {input_name: data[self._i - 1:self._i]}

        def rewind(self) -> None:
            self._i = 0

        def __len__(self) -> int:
            return len(data)

    return _Reader()


def nncf_dataset(tensors: np.ndarray, *, source_layout: str = "nchw", layout: str = "nchw") -> Any:
    """An ``nncf.Dataset`` yielding one (1, …) float32 array per face (works for OpenVINO and ONNX models)."""
    from sdk.backends.openvino import import_openvino

    import_openvino()  # before nncf: without the telemetry package NNCF sends nothing
    import nncf

    data = _to_layout(tensors, source_layout, layout)
    return nncf.Dataset([data[i:i + 1] for i in range(len(data))])


def tflite_representative_dataset(tensors: np.ndarray, *, source_layout: str = "nchw", layout: str = "nhwc"
                                  ) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A ``TFLiteConverter.representative_dataset`` generator function (NHWC by default)."""
    data = _to_layout(tensors, source_layout, layout)

    def generator() -> Iterator[list[np.ndarray]]:
        for i in range(len(data)):
            yield [data[i:i + 1]]

    return generator


def write_onnx2tf_calibration(tensors: np.ndarray, workdir: str | Path, *, source_layout: str = "nchw") -> Path:
    """Write the NHWC float32 array onnx2tf calibrates its INT8 output on, into its working directory.

    Call onnx2tf from ``workdir`` with ``**ONNX2TF_IDENTITY_NORM`` (the data is already
    normalised). With the file present onnx2tf never reaches for the network.
    """
    path = Path(workdir) / ONNX2TF_CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, _to_layout(tensors, source_layout, "nhwc"))
    return path


__all__ = ["ONNX2TF_CALIBRATION_FILE", "ONNX2TF_IDENTITY_NORM", "nncf_dataset", "ort_reader",
           "tflite_representative_dataset", "write_onnx2tf_calibration"]
