"""An INT8 recipe: the few choices that decide whether quantization keeps sub-pixel accuracy.

A recipe is plain data so it can be written into the model's metadata
(``provenance.extra["int8_recipe"]``) and reproduced later.

* ``calibration`` — how activation ranges are estimated from the calibration crops:
  ``minmax`` (the extreme values seen), ``percentile`` (clip the rare extremes so the
  common values get finer steps), ``entropy`` / ``mse`` (ranges that minimise the
  information loss / squared error of the quantized histogram). Which ones exist depends
  on the toolchain (ONNX Runtime: minmax, percentile, entropy, distribution; NNCF: minmax,
  mean_minmax, mean_percentile (its "quantile"); TFLite / AI Edge Quantizer: minmax, mse).
* ``float_level`` — how much of the network's end stays in float (see ``scope``): 0 =
  everything INT8 including the output tensor; 1 = the output layer; 2 = the head …
* ``float_head`` — how many compute levels at the network's start stay in float (``scope``:
  the stem, where a high-resolution model's INT8 loss was measured to come from); 0 = none.
* ``quantize_outputs`` — whether the model's output tensors themselves are rounded to an
  INT8 grid (the naive default of most exporters). Only OpenVINO can run the output layer
  in INT8 and still return its full-precision float result; in ONNX Runtime QDQ and TFLite
  an INT8 output layer always rounds its output, so there ``float_level`` ≥ 1 is the way
  to keep the output exact.
* ``per_channel`` — one weight scale per output channel (keeps small-weight channels precise).
* ``io`` — ``float`` (the model takes and returns float; quantization is internal) or
  ``int8`` (TFLite only: quantized input/output tensors, dequantized by the SDK adapter).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

CALIBRATION_METHODS = ("minmax", "percentile", "entropy", "distribution", "mean_minmax", "mean_percentile", "mse")


@dataclass(frozen=True)
class Int8Recipe:
    runtime: str  # the runtime that runs the file, as the format table names it (sdk.formats)
    calibration: str = "minmax"
    float_level: int = 1
    float_head: int = 0
    per_channel: bool = True
    quantize_outputs: bool = False
    activation_type: str = "uint8"  # ORT only: "uint8" (asymmetric, default) or "int8"
    io: str = "float"
    percentile: float = 99.999  # used by percentile-type calibration
    label: str = ""

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method {self.calibration!r} is not one of {CALIBRATION_METHODS}")
        if self.float_level < 0 or self.float_head < 0:
            raise ValueError(f"float_level and float_head must be >= 0, got {self.float_level}, {self.float_head}")
        if self.io not in ("float", "int8"):
            raise ValueError(f"io must be 'float' or 'int8', got {self.io!r}")
        if self.activation_type not in ("uint8", "int8"):
            raise ValueError(f"activation_type must be 'uint8' or 'int8', got {self.activation_type!r}")

    def with_(self, **changes: Any) -> "Int8Recipe":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        cal = f"percentile{self.percentile:g}" if "percentile" in self.calibration else self.calibration
        head = f"+head{self.float_head}" if self.float_head else ""
        return f"{cal}/float{self.float_level}{head}/{'pc' if self.per_channel else 'pt'}/{self.io}-io"


def naive_recipe(runtime: str, io: str = "float") -> Int8Recipe:
    """What a quick INT8 export does: min-max ranges, everything quantized, the output included."""
    return Int8Recipe(runtime=runtime, calibration="minmax", float_level=0, per_channel=True, quantize_outputs=True,
                      io=io, label="naive")


# Range estimation per runtime, chosen by measurement on H3R-128 (agreement NME vs FP32 on 100 held-out
# aflw-faces crops / GT NME on 600 AFLW2000-3D faces; README, INT8 section):
# * ONNX Runtime: percentile and entropy gave the same GT NME as min-max (within 0.001) and calibrate ~6x
#   slower; "distribution" targets float8 and breaks INT8 (+60 NME points vs FP32).
# * NNCF: MINMAX 0.30, MEAN_MINMAX 0.76, MEAN_QUANTILE 0.78 (agreement NME): averaging per-sample ranges
#   clips the heat-map head's rare large activations.
# * AI Edge Quantizer: MIN_MAX 0.44 vs MSE 0.66.
DEFAULT_CALIBRATION = {"onnxruntime": "minmax", "openvino": "minmax", "litert": "minmax"}


def default_recipe(runtime: str, float_level: int = 1, io: str = "float", float_head: int = 0) -> Int8Recipe:
    return Int8Recipe(runtime=runtime, calibration=DEFAULT_CALIBRATION.get(runtime, "minmax"),
                      float_level=float_level, float_head=float_head, io=io)
