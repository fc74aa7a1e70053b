"""Calibration data for post-training quantization: real face crops, made exactly as the Predictor makes them.

``sets`` builds a reproducible calibration set plus a disjoint validation split from a
face source; ``readers`` feeds it to each quantization toolchain (ONNX Runtime, NNCF,
TFLite, onnx2tf).
"""
from .sets import (CalibrationSet, CalibrationSourceError, agreement_nme, build_calibration_set, default_cache_dir,
                   load_boxes_file, resolve_source)

__all__ = ["CalibrationSet", "CalibrationSourceError", "agreement_nme", "build_calibration_set", "default_cache_dir",
           "load_boxes_file", "resolve_source"]
