"""Multiply-accumulates and parameters counted from an ONNX graph, per face (batch 1).

Counted ops (the ones that carry practically all the arithmetic of a conv net):
Conv, ConvTranspose, Gemm, MatMul, and their quantised forms (QLinearConv, ConvInteger,
QLinearMatMul, MatMulInteger), so an INT8 QDQ or QOperator graph counts the same MACs as
its float source. Elementwise ops, pooling, resizing and activations are not counted.

Shapes come from ONNX shape inference after pinning every symbolic input dimension
(the dynamic batch) to 1. Parameters are the elements of the graph's weight tensors:
initializers and Constant values with a floating or 8/4-bit integer type, except
quantisation scales and zero points. Non-ONNX files (OpenVINO, TFLite) are counted
on the ONNX they were converted from (see :func:`onnx_for_model`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.metadata import ModelMetadata

# op -> (index of the data input, index of the weight input) for convolutions
_CONV_INPUTS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_INPUTS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
# inputs of these ops that are quantisation scales / zero points, not parameters
_QUANT_AUX = {
    "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2), "DynamicQuantizeLinear": (),
    "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3), "MatMulInteger": (2, 3),
}
_WEIGHT_DTYPES = {"FLOAT", "FLOAT16", "BFLOAT16", "DOUBLE", "INT8", "UINT8", "INT4", "UINT4"}


class GraphStatsError(ValueError):
    """The graph's shapes could not be inferred well enough to count MACs."""


@dataclass(frozen=True)
class GraphStats:
    """Per-face multiply-accumulates and parameter count of one ONNX graph."""

    macs: int
    params: int
    source: str  # the ONNX file counted
    macs_by_op: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"macs": self.macs, "params": self.params, "source": self.source, "macs_by_op": dict(self.macs_by_op)}


def _pin_symbolic_dims(model: Any) -> None:
    """Set every non-numeric graph-input dimension to 1 (per-face counting, concrete shapes)."""
    for value in model.graph.input:
        shape = value.type.tensor_type.shape
        for dim in shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = 1


def _shape_table(model: Any) -> dict[str, tuple[int, ...] | None]:
    table: dict[str, tuple[int, ...] | None] = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = value.type.tensor_type
        if not t.HasField("shape"):
            table[value.name] = None
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        table[value.name] = None if any(d is None for d in dims) else tuple(int(d) for d in dims)
    for init in model.graph.initializer:
        table[init.name] = tuple(int(d) for d in init.dims)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    table[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    return table


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _need(shape: tuple[int, ...] | None, node: Any, what: str) -> tuple[int, ...]:
    if shape is None:
        raise GraphStatsError(f"shape of the {what} of {node.op_type} node {node.name!r} is unknown "
                              "after shape inference; cannot count its MACs")
    return shape


def node_macs(node: Any, shapes: dict[str, tuple[int, ...] | None]) -> int:
    """MACs of one node given the shape table, 0 for ops that are not counted."""
    op = node.op_type
    if op in _CONV_INPUTS:
        _, w = _CONV_INPUTS[op]
        wshape = _need(shapes.get(node.input[w]), node, "weight")
        out = _need(shapes.get(node.output[0]), node, "output")
        # each output element: (C_in / group) * prod(kernel) MACs; weight = (C_out, C_in/group, *kernel)
        return int(np.prod(out, dtype=np.int64) * np.prod(wshape[1:], dtype=np.int64))
    if op == "ConvTranspose":
        xshape = _need(shapes.get(node.input[0]), node, "input")
        wshape = _need(shapes.get(node.input[1]), node, "weight")
        # each input element is scattered into (C_out / group) * prod(kernel) outputs; weight = (C_in, C_out/group, *k)
        return int(np.prod(xshape, dtype=np.int64) * np.prod(wshape[1:], dtype=np.int64))
    if op == "Gemm":
        a = _need(shapes.get(node.input[0]), node, "A input")
        b = _need(shapes.get(node.input[1]), node, "B input")
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return int(m) * int(k) * int(n)
    if op in _MATMUL_INPUTS:
        ia, ib = _MATMUL_INPUTS[op]
        a = _need(shapes.get(node.input[ia]), node, "A input")
        b = _need(shapes.get(node.input[ib]), node, "B input")
        out = _need(shapes.get(node.output[0]), node, "output")
        k = a[-1]  # numpy matmul semantics: every output element is a K-long dot product
        if len(a) == 1 and len(b) == 1:
            return int(k)
        return int(np.prod(out, dtype=np.int64) * k) if out else int(k)
    return 0


def _count_params(model: Any) -> int:
    import onnx

    aux: set[str] = set()
    for node in model.graph.node:
        for i in _QUANT_AUX.get(node.op_type, ()):
            if i < len(node.input) and node.input[i]:
                aux.add(node.input[i])
    total = 0
    tensors = [(init.name, init) for init in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    tensors.append((node.output[0], a.t))
    for name, t in tensors:
        dtype = onnx.TensorProto.DataType.Name(t.data_type)
        size = int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
        if name in aux or dtype not in _WEIGHT_DTYPES or size <= 1:
            continue
        total += size
    return total


def count_graph(model_or_path: Any) -> GraphStats:
    """MACs (batch 1) and parameters of an ONNX model (``onnx.ModelProto`` or path)."""
    import onnx

    if isinstance(model_or_path, onnx.ModelProto):
        model, source = onnx.ModelProto(), "<in-memory>"
        model.CopyFrom(model_or_path)
    else:
        source = str(model_or_path)
        model = onnx.load(source)
    _pin_symbolic_dims(model)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise GraphStatsError(f"ONNX shape inference failed on {source}: {exc}") from None
    shapes = _shape_table(model)
    by_op: dict[str, int] = {}
    for node in model.graph.node:
        macs = node_macs(node, shapes)
        if macs:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    return GraphStats(macs=sum(by_op.values()), params=_count_params(model), source=source, macs_by_op=by_op)


_PROVENANCE_ONNX_KEYS = ("onnx", "source_onnx", "onnx_source", "from_onnx", "onnx_path")


def _strip_precision(stem: str, precision: str) -> str:
    for suffix in (f"_{precision}", "_fp32", "_fp16", "_int8"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def onnx_for_model(path: str | Path, metadata: ModelMetadata | None = None) -> Path | None:
    """The ONNX graph to count for a model file, or None when there is none to find.

    An ONNX file is its own graph. Otherwise, in order: an ONNX path named in the
    provenance (``extra`` keys such as ``onnx``/``source_onnx``, or ``source`` itself),
    resolved against the model's folder; then the sibling ``<name>_fp32.onnx``.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return path
    candidates: list[Path] = []
    if metadata is not None:
        prov = metadata.provenance
        for key in _PROVENANCE_ONNX_KEYS:
            value = prov.extra.get(key) if hasattr(prov.extra, "get") else None
            if isinstance(value, str) and value.lower().endswith(".onnx"):
                candidates.append(Path(value))
        if prov.source.lower().endswith(".onnx"):
            candidates.append(Path(prov.source))
        base = _strip_precision(path.stem, prov.precision)
    else:
        base = _strip_precision(path.stem, "fp32")
    candidates.append(Path(f"{base}_fp32.onnx"))
    for cand in candidates:
        for resolved in ([cand] if cand.is_absolute() else [path.parent / cand, path.parent / cand.name]):
            if resolved.is_file():
                return resolved
    return None


def model_files(path: str | Path) -> list[Path]:
    """Every file a model needs on disk (OpenVINO keeps its weights in a ``.bin`` beside the ``.xml``)."""
    path = Path(path)
    extra = path.with_suffix(".bin")
    return [path, extra] if path.suffix.lower() == ".xml" and extra.is_file() else [path]


def model_size_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in model_files(path))


def stats_for_model(path: str | Path, metadata: ModelMetadata | None = None) -> dict[str, Any] | None:
    """GraphStats as a dict for any model file, or None when no ONNX graph can be found or counted."""
    onnx_path = onnx_for_model(path, metadata)
    if onnx_path is None:
        return None
    try:
        return count_graph(onnx_path).as_dict()
    except GraphStatsError as exc:
        return {"macs": None, "params": None, "source": str(onnx_path), "error": str(exc)}
