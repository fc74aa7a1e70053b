"""INT8 outputs of the converter that keep sub-pixel accuracy (see ``search`` for the budget logic).

``quantize_with_budget(source, writer, target, Int8Options(...))`` writes an INT8 ONNX
(ONNX Runtime QDQ), OpenVINO IR (NNCF) or TFLite (full-integer) model, measured against
FP32 on held-out faces and stamped with its recipe and numbers.
"""
from .recipe import Int8Recipe, default_recipe, naive_recipe
from .search import Attempt, Int8BudgetError, Int8Options, Int8Result, int8_tag, ladder, quantize_with_budget

__all__ = ["Attempt", "Int8BudgetError", "Int8Options", "Int8Recipe", "Int8Result", "default_recipe", "int8_tag",
           "ladder", "naive_recipe", "quantize_with_budget"]
