"""Which layers stay in float: "float tail" levels computed on any runtime's graph.

The quantization error that matters for sub-pixel decoding is made at the end of the
network: the output tensor is what the decoder reads. So higher-precision regions grow
from the outputs backwards. Every node gets a ``depth``: the largest number of compute
layers (convolution / matmul) on any path from it to a graph output, itself included.
The output convolution(s) have depth 1, the layer(s) feeding only them depth 2, …
Level ``n`` keeps every node of depth ≤ n in float. Because depth never grows along an
edge, that set is closed downstream: everything between a float layer and an output
(slices, reshapes, sigmoids, resizes, concats) is float too, so no tensor is ever
re-quantized on its way to the decoder. Using the *longest* path (not the shortest)
keeps a skip connection that also feeds the deep backbone out of the float set.

For H3R-MobileNetV2: level 1 = the last 1×1 conv (and the channel slice), level 2 =
the whole head with the resize/concat neck, level 3, 4, 5 add the last inverted
residual block's three convolutions one by one. For PIPNet level 1 is its 1×1 heads.

A "float head" is the same rule from the other end: every node gets a ``height``, the
largest number of compute layers on any path from a graph input to it, itself included;
head level ``h`` keeps every node of height ≤ h in float (closed upstream, so the input
is never quantized and de-quantized on its way to a float layer). Measured on
H3R-256 (README, INT8): its INT8 loss is made in the stem — the first convolution and
depthwise convolution, at full resolution — not at the end, so no float tail fixes it.

The graph is given as plain nodes so the same rule runs on ONNX, OpenVINO and TFLite
graphs and yields each runtime's own node names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

ONNX_COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul")
OPENVINO_COMPUTE = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
TFLITE_COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")
INF = 1 << 30


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str
    inputs: tuple[str, ...]  # tensor names consumed
    outputs: tuple[str, ...]  # tensor names produced


class FloatScope:
    """Depth of every compute layer and the float node set of each level, for one graph."""

    def __init__(self, nodes: Sequence[GraphNode], graph_outputs: Iterable[str], compute_ops: Sequence[str]):
        self.nodes = list(nodes)
        self.compute_ops = tuple(compute_ops)
        self._by_name = {n.name: n for n in self.nodes}
        consumers: dict[str, list[GraphNode]] = {}
        for n in self.nodes:
            for t in n.inputs:
                consumers.setdefault(t, []).append(n)
        self._consumers = consumers
        outs = set(graph_outputs)
        # Reverse topological pass: depth(n) = is_compute(n) + max(depth of consumers reaching an output,
        # 0 when n feeds a graph output); INF when n reaches no output at all.
        depth: dict[str, int] = {}
        for n in reversed(self._topological()):
            reach = [0] if any(t in outs for t in n.outputs) else []
            reach += [depth[c.name] for t in n.outputs for c in consumers.get(t, ()) if depth.get(c.name, INF) < INF]
            depth[n.name] = max(reach) + (1 if n.op in self.compute_ops else 0) if reach else INF
        self.depth = depth
        height: dict[str, int] = {}
        producers = {t: n for n in self.nodes for t in n.outputs}
        for n in self._topological():
            above = [height[producers[t].name] for t in n.inputs if t in producers and producers[t].name in height]
            height[n.name] = max(above, default=0) + (1 if n.op in self.compute_ops else 0)
        self.height = height

    def _topological(self) -> list[GraphNode]:
        producers = {t: n.name for n in self.nodes for t in n.outputs}
        indeg = {n.name: 0 for n in self.nodes}
        succ: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for t in n.inputs:
                p = producers.get(t)
                if p is not None and p != n.name:
                    indeg[n.name] += 1
                    succ[p].append(n.name)
        ready = [n.name for n in self.nodes if indeg[n.name] == 0]
        order = []
        while ready:
            name = ready.pop()
            order.append(self._by_name[name])
            for s in succ[name]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
        if len(order) != len(self.nodes):  # a cycle cannot happen in an inference graph; keep given order
            return list(self.nodes)
        return order

    @property
    def compute_nodes(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.op in self.compute_ops]

    @property
    def max_level(self) -> int:
        finite = [self.depth[n.name] for n in self.compute_nodes if self.depth[n.name] < INF]
        return max(finite, default=0)

    def float_nodes(self, level: int, head: int = 0) -> list[str]:
        """Names of the nodes kept in float at tail ``level`` and head level ``head`` (0 = none), in graph order."""
        return [n.name for n in self.nodes if (level > 0 and self.depth[n.name] <= level)
                or (head > 0 and self.height[n.name] <= head)]

    def float_compute(self, level: int, head: int = 0) -> list[str]:
        names = set(self.float_nodes(level, head))
        return [n.name for n in self.compute_nodes if n.name in names]

    def describe(self, level: int, head: int = 0) -> str:
        parts = []
        if level > 0:
            parts.append(f"last {level} compute level(s)")
        if head > 0:
            parts.append(f"first {head}")
        if not parts:
            return "everything quantized"
        k = len(self.float_compute(level, head))
        return f"{' + '.join(parts)} in float ({k} of {len(self.compute_nodes)} conv/matmul layers)"


# --------------------------------------------------------------------------- graph readers


def onnx_scope(model) -> FloatScope:
    """FloatScope of an ``onnx.ModelProto`` (node names as ONNX Runtime's quantizer sees them)."""
    nodes = [GraphNode(n.name or f"{n.op_type}_{i}", n.op_type, tuple(x for x in n.input if x), tuple(n.output))
             for i, n in enumerate(model.graph.node)]
    return FloatScope(nodes, [o.name for o in model.graph.output], ONNX_COMPUTE)


def openvino_scope(model) -> FloatScope:
    """FloatScope of an ``openvino.Model`` (friendly names, as NNCF's IgnoredScope takes them)."""
    nodes, outputs = [], []
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        ins = tuple(f"{i.get_source_output().get_node().get_friendly_name()}:{i.get_source_output().get_index()}"
                    for i in op.inputs())
        outs = tuple(f"{name}:{k}" for k in range(op.get_output_size()))
        if op.get_type_name() == "Result":
            outputs.extend(ins)
            continue
        nodes.append(GraphNode(name, op.get_type_name(), ins, outs))
    return FloatScope(nodes, outputs, OPENVINO_COMPUTE)


def tflite_scope(ops: Sequence[dict], output_tensors: Sequence[int]) -> FloatScope:
    """FloatScope of a TFLite graph from ``Interpreter._get_ops_details()``.

    Nodes are named by their first output tensor's *index*: tensor names are not unique in
    files from every converter, indices are.
    """
    nodes = [GraphNode(str(int(op["outputs"][0])), op["op_name"], tuple(str(int(t)) for t in op["inputs"] if t >= 0),
                       tuple(str(int(t)) for t in op["outputs"])) for op in ops if len(op["outputs"])]
    return FloatScope(nodes, [str(int(t)) for t in output_tensors], TFLITE_COMPUTE)
