"""Operators appended to (or put in front of) a .tflite's main graph, through the flatbuffer object API.

TFLite files are written by litert-torch, onnx2tf and ai-edge-quantizer, none of which can take a
graph back and extend it; the flatbuffer itself can. ``GraphEditor`` adds constant and intermediate
tensors and builtin operators to subgraph 0 and re-points its inputs / outputs (and the
SignatureDef's) — what ``converters.graph_decode`` (the H3R top-k decoder after the maps) and
``converters.graph_input`` (normalisation before the network) need for TFLite files. The INT8
files' float outputs come out of a DEQUANTIZE and their float input goes into a QUANTIZE, so the
added float operators sit outside the quantized part and change nothing in it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .source import ConversionError

_NUMPY_TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
                np.dtype(np.uint8): "UINT8"}


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


class GraphEditor:
    """Adds tensors and builtin operators to a parsed model's main graph (``flatbuffer_utils`` object)."""

    def __init__(self, model_obj: Any):
        self.model = model_obj
        self.graph = model_obj.subgraphs[0]
        self.schema = _schema()

    def type_code(self, dtype: np.dtype | str) -> int:
        name = dtype if isinstance(dtype, str) else _NUMPY_TYPES[np.dtype(dtype)]
        return int(getattr(self.schema.TensorType, name))

    def tensor_name(self, index: int) -> str:
        name = self.graph.tensors[index].name
        return name.decode() if isinstance(name, bytes) else str(name)

    def tensor_index(self, name: str) -> int:
        hits = [i for i in range(len(self.graph.tensors)) if self.tensor_name(i) == name]
        if len(hits) != 1:
            raise ConversionError(f"the TFLite graph has {len(hits)} tensors named {name!r}")
        return hits[0]

    def tensor_shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.tensors[index].shape)

    def op_name(self, operator: Any) -> str:
        """The builtin operator's name (``CONV_2D``, ...) of one of the graph's operators."""
        entry = self.model.operatorCodes[operator.opcodeIndex]
        code = max(int(entry.builtinCode), int(entry.deprecatedBuiltinCode))
        return next(k for k, v in vars(self.schema.BuiltinOperator).items() if v == code and not k.startswith("_"))

    def readers(self, index: int) -> list[Any]:
        """The operators that take tensor ``index`` as an input."""
        return [op for op in self.graph.operators if index in [int(i) for i in op.inputs]]

    def constant_value(self, index: int, dtype: Any) -> np.ndarray:
        """A constant tensor's values (its buffer read as ``dtype``)."""
        data = self.model.buffers[self.graph.tensors[index].buffer].data
        return np.frombuffer(bytes(data if data is not None else b""), dtype=dtype)

    def is_float32(self, index: int) -> bool:
        return int(self.graph.tensors[index].type) == self.type_code("FLOAT32")

    def tensor(self, name: str, shape: Sequence[int], dtype: Any = np.float32) -> int:
        """A new intermediate tensor; returns its index."""
        t = self.schema.TensorT()
        t.name = name.encode()
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = self.type_code(dtype)
        t.buffer = 0  # buffer 0 is the empty one: a runtime-filled tensor
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def constant(self, name: str, value: Any, dtype: Any) -> int:
        """A new constant tensor holding ``value``; returns its index."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(array.tobytes(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        index = self.tensor(name, array.shape, array.dtype)
        self.graph.tensors[index].buffer = len(self.model.buffers) - 1
        return index

    def _opcode(self, op_name: str) -> int:
        code = int(getattr(self.schema.BuiltinOperator, op_name))
        for i, entry in enumerate(self.model.operatorCodes):
            if max(int(entry.builtinCode), int(entry.deprecatedBuiltinCode)) == code and not entry.customCode \
                    and int(entry.version) == 1:
                return i
        entry = self.schema.OperatorCodeT()
        entry.builtinCode = code
        entry.deprecatedBuiltinCode = min(code, 127)  # the int8 field saturates at 127 (schema rule)
        entry.version = 1
        self.model.operatorCodes.append(entry)
        return len(self.model.operatorCodes) - 1

    def op(self, op_name: str, inputs: Sequence[int], outputs: Sequence[int], options: str | None = None,
           at: int | None = None, **fields: Any) -> None:
        """Append (or insert at ``at``) builtin operator ``op_name``; ``options`` names its *Options table."""
        operator = self.schema.OperatorT()
        operator.opcodeIndex = self._opcode(op_name)
        operator.inputs = np.asarray(inputs, dtype=np.int32)
        operator.outputs = np.asarray(outputs, dtype=np.int32)
        if options is not None:
            table = getattr(self.schema, f"{options}T")()
            for key, value in fields.items():
                setattr(table, key, value)
            operator.builtinOptionsType = int(getattr(self.schema.BuiltinOptions, options))
            operator.builtinOptions = table
        if at is None:
            self.graph.operators.append(operator)
        else:
            self.graph.operators.insert(at, operator)

    def set_outputs(self, indices: Sequence[int]) -> None:
        """The graph's (and its SignatureDef's) outputs become ``indices``, signature names = tensor names."""
        self.graph.outputs = np.asarray(indices, dtype=np.int32)
        for sig in self.model.signatureDefs or []:
            sig.outputs = [self._tensor_map(i) for i in indices]

    def replace_input(self, old: int, new: int) -> None:
        """Input ``old`` becomes an intermediate fed by the caller's operators; ``new`` takes its place."""
        inputs = [int(i) for i in self.graph.inputs]
        if old not in inputs:
            raise ConversionError(f"tensor {self.tensor_name(old)!r} is not an input of the graph")
        self.graph.inputs = np.asarray([new if i == old else i for i in inputs], dtype=np.int32)
        for sig in self.model.signatureDefs or []:
            sig.inputs = [self._tensor_map(new) if int(m.tensorIndex) == old else m for m in sig.inputs]

    def _tensor_map(self, index: int) -> Any:
        entry = self.schema.TensorMapT()
        entry.name = self.tensor_name(index).encode()
        entry.tensorIndex = int(index)
        return entry
