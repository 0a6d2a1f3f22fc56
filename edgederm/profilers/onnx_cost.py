"""MACs per operator of an ONNX graph, from its static shapes (``onnx.shape_inference``).

Only the multiply-accumulate operators count MACs (Conv, ConvTranspose, MatMul, Gemm and their
quantized forms); everything else is memory-bound and has 0. ORT renames what it fuses
(``FusedConv``, ``QLinearConv``, NCHWc ``Conv``): ``canonical`` maps those back to the source op.
"""

from __future__ import annotations

import math

CANONICAL = {"FusedConv": "Conv", "QLinearConv": "Conv", "ConvInteger": "Conv", "NhwcConv": "Conv",
             "FusedMatMul": "MatMul", "QLinearMatMul": "MatMul", "MatMulInteger": "MatMul",
             "MatMulIntegerToFloat": "MatMul", "DynamicQuantizeMatMul": "MatMul", "FusedGemm": "Gemm",
             "QGemm": "Gemm", "QLinearAdd": "Add", "QLinearMul": "Mul", "QLinearSigmoid": "Sigmoid",
             "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAveragePool": "AveragePool",
             "QLinearConcat": "Concat", "QLinearLeakyRelu": "LeakyRelu", "QLinearSoftmax": "Softmax"}


def canonical(op: str) -> str:
    return CANONICAL.get(op, op)


def _shapes(model) -> dict[str, list[int]]:
    """Static shapes of every value (inputs, outputs, intermediates, initializers); unknown dims dropped."""
    shapes = {}
    graph = model.graph
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if dims and all(d is not None and d > 0 for d in dims):
            shapes[vi.name] = dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def node_macs(node, shapes: dict[str, list[int]]) -> int | None:
    """MACs of one source node at its static shapes; None where a needed shape is unknown."""
    op = canonical(node.op_type)
    if op not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
        return 0
    out = shapes.get(node.output[0]) if node.output else None
    w_index = 3 if node.op_type in ("QLinearConv", "QLinearMatMul") else 1
    w = shapes.get(node.input[w_index]) if len(node.input) > w_index else None
    a = shapes.get(node.input[0])
    if op == "Conv":
        return math.prod(out) * math.prod(w[1:]) if out and w else None
    if op == "ConvTranspose":  # every input pixel scatters into Cout/g x kH x kW outputs
        return math.prod(a) * math.prod(w[1:]) if a and w else None
    if op == "Gemm":
        trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[-1]) if out and a else None
    return math.prod(out) * a[-1] if out and a else None  # MatMul: out elements x K


def graph_cost(path) -> dict:
    """{"macs": {canonical op: MACs}, "count": {op: nodes}, "qdq_pairs": n, "transposes": n, "weights": {node: dims},
    "macs_incomplete_ops": ops whose MACs shape inference could not complete} of the source graph."""
    import onnx

    model = onnx.load(str(path))  # protobuf: parsing runs no code
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot type still has its op counts
        pass
    shapes = _shapes(model)
    macs: dict[str, int] = {}
    count: dict[str, int] = {}
    unknown, incomplete = 0, set()
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    weights = {}  # node name -> its weight's dims (Conv-like): ORT keeps a QOperator node's name when it runs it
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    for node in model.graph.node:
        op = canonical(node.op_type)
        count[op] = count.get(op, 0) + 1
        w_index = 3 if node.op_type == "QLinearConv" else 1
        if op in ("Conv", "ConvTranspose") and len(node.input) > w_index and node.input[w_index] in inits:
            weights[node.name] = inits[node.input[w_index]]
        m = node_macs(node, shapes)
        if m is None:
            unknown += 1
            incomplete.add(op)
            continue
        if m:
            macs[op] = macs.get(op, 0) + m
    pairs = sum(1 for n in model.graph.node if n.op_type == "DequantizeLinear"
                and producers.get(n.input[0]) == "QuantizeLinear")
    return {"macs": macs, "count": count, "qdq_pairs": pairs, "transposes": count.get("Transpose", 0),
            "nodes": len(model.graph.node), "macs_unknown_nodes": unknown, "macs_incomplete_ops": sorted(incomplete),
            "weights": weights}
