"""torch → ONNX: legacy exporter, dynamic batch, onnxsim, metadata embedded, atomic write."""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from sdk.metadata import ModelMetadata

from .onnx_io import embed_metadata, save_onnx

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17


def export_onnx(model: torch.nn.Module, meta: ModelMetadata, out_path: str | Path, *, opset: int = DEFAULT_OPSET,
                simplify: bool = True, dynamic_batch: bool = True) -> onnx.ModelProto:
    """Export ``model`` (forward returns tensors in the metadata's output order) to ``out_path``."""
    model = model.eval()
    spec = meta.input
    shape = (1, 3, spec.height, spec.width) if spec.layout == "nchw" else (1, spec.height, spec.width, 3)
    dummy = torch.zeros(shape, dtype=torch.float32)
    out_names = [o.name for o in meta.outputs]
    axes = {n: {0: "batch"} for n in [spec.name, *out_names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buffer, input_names=[spec.name], output_names=out_names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    if simplify:
        proto = simplify_onnx(proto)
    embed_metadata(proto, meta)
    save_onnx(proto, out_path)
    return proto


def simplify_onnx(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim when it verifies; the unsimplified graph otherwise (logged, never silent)."""
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
    except Exception as exc:  # onnxsim raises assorted errors on exotic graphs
        log.warning("onnxsim failed (%s); keeping the unsimplified graph", exc)
        return proto
    if not ok:
        log.warning("onnxsim could not verify the simplified graph; keeping the original")
        return proto
    return simplified

