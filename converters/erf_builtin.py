"""ONNX ``Erf`` spelled in operators TFLite has as builtins, before onnx2tf sees the graph.

TFLite has no builtin Erf: onnx2tf emits ``tf.math.erf``, which the converter keeps as the
Select TensorFlow op ``FlexErf`` that LiteRT does not run. It comes from exact GELU
(``nn.GELU()``, the activation of timm's EfficientFormerV2, FastViT, EdgeNeXt), which the
TorchScript exporter writes as ``Div(x, √2) → Erf → Add(1) → Mul(x) → Mul(0.5)``.

Each Erf becomes Abramowitz–Stegun 7.1.26 for ``u ≥ 0`` (|error| ≤ 1.5e-7)::

    erf(u) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-u²),   t = 1 / (1 + p u)

- an exact GELU as ``0.5 (x + |x| erf(|x| / √2))`` (``x erf(x/√2)`` is even in ``x``): no sign
  needed, every op one XNNPACK runs (Abs, Mul, Add, Div, Sub, Neg, Exp);
- any other Erf as ``Sign(x) erf(|x|)`` (TFLite's SIGN runs outside XNNPACK's partitions).

onnx2tf's own ``replace_to_pseudo_operators=["erf"]`` is the same polynomial, but its sign is
``x / (|x| + 1e-11)``: the fp16 TFLite file stores that 1e-11 as 0, and an input of exactly 0
gives 0/0 (fastvit_t8's fp16 file returned NaN).
"""

from __future__ import annotations

import math

import numpy as np

A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
P = 0.3275911
PREFIX = "erf_builtin"


def _scalar(graph, name: str) -> float | None:
    """The value of ``name`` when it is a one-element initializer or Constant output, else None."""
    from onnx import numpy_helper

    arr = next((numpy_helper.to_array(t) for t in graph.initializer if t.name == name), None)
    if arr is None:
        node = next((n for n in graph.node if n.op_type == "Constant" and n.output[0] == name), None)
        attr = next((a for a in node.attribute if a.name == "value"), None) if node is not None else None
        arr = numpy_helper.to_array(attr.t) if attr is not None else None
    return float(arr.reshape(-1)[0]) if arr is not None and arr.size == 1 else None


def _other(node, name: str):
    """The input of the binary ``node`` that is not ``name`` (None when both or neither are)."""
    ins = list(node.input)
    return ins[1 - ins.index(name)] if len(ins) == 2 and ins.count(name) == 1 else None


class _Graph:
    """Producer and consumer look-ups over one graph."""

    def __init__(self, graph):
        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}

    def only_consumer(self, tensor: str, op_type: str):
        """The single consumer of ``tensor`` when it is an ``op_type`` node and ``tensor`` is no graph output."""
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type and tensor not in self.outputs else None

    def is_const(self, name: str | None, value: float) -> bool:
        v = _scalar(self.graph, name) if name else None
        return v is not None and math.isclose(v, value, rel_tol=1e-6)


def _scaled_input(g: _Graph, erf):
    """(x, its scaling node) when ``erf``'s input is ``x / √2`` or ``x * (1/√2)``, else None."""
    node = g.producer.get(erf.input[0])
    if node is None or g.only_consumer(erf.input[0], "Erf") is None:
        return None
    if node.op_type == "Div" and g.is_const(node.input[1], math.sqrt(2.0)):
        return node.input[0], node
    if node.op_type == "Mul":
        for x in node.input:
            if g.is_const(_other(node, x), 1.0 / math.sqrt(2.0)):
                return x, node
    return None


def _product(g: _Graph, x: str, add):
    """(Mul nodes to remove, final Mul) when ``add``'s output is multiplied by ``x`` and 0.5, in any order."""
    m1 = g.only_consumer(add.output[0], "Mul")
    if m1 is None:
        return None
    term = _other(m1, add.output[0])
    if term == x or g.is_const(term, 0.5):  # (x * a) * 0.5  or  (a * 0.5) * x
        m2 = g.only_consumer(m1.output[0], "Mul")
        rest = _other(m2, m1.output[0]) if m2 is not None else None
        ok = g.is_const(rest, 0.5) if term == x else rest == x
        return ([m1], m2) if ok else None
    half = g.producer.get(term)  # (x * 0.5) * a
    if half is not None and half.op_type == "Mul" and x in half.input and g.is_const(_other(half, x), 0.5):
        return ([half] if g.only_consumer(term, "Mul") is m1 else []), m1
    return None


def exact_gelus(g: _Graph) -> list[tuple[str, list, object]]:
    """(x, nodes to remove, final node) for every exact-GELU subgraph."""
    found = []
    for erf in [n for n in g.graph.node if n.op_type == "Erf"]:
        scaled = _scaled_input(g, erf)
        add = g.only_consumer(erf.output[0], "Add")
        if scaled is None or add is None or not g.is_const(_other(add, erf.output[0]), 1.0):
            continue
        prod = _product(g, scaled[0], add)
        if prod is not None:
            found.append((scaled[0], [scaled[1], erf, add, *prod[0]], prod[1]))
    return found


class _Builder:
    """New nodes named ``PREFIX/<k>/<op>_<i>``, the last one writing ``output``."""

    def __init__(self, k: int):
        self.prefix, self.nodes = f"{PREFIX}/{k}", []

    def op(self, op_type: str, *inputs: str) -> str:
        from onnx import helper

        out = f"{self.prefix}/{op_type}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out))
        return out

    def finish(self, output: str) -> list:
        self.nodes[-1].output[0] = output
        return self.nodes


def _erf_of_nonnegative(b: _Builder, u: str) -> str:
    """erf(u) for u >= 0. Tensors come before constants in Add and Mul: onnx2tf mis-converts
    ``Add(1, a)`` feeding a ``Div`` (results off by tens), not ``Add(a, 1)``."""
    c = {k: f"{PREFIX}/{k}" for k in _CONSTANTS}
    t = b.op("Div", c["one"], b.op("Add", b.op("Mul", u, c["p"]), c["one"]))
    h = b.op("Mul", t, c["a5"])
    for a in ("a4", "a3", "a2", "a1"):  # t (a1 + t (a2 + t (a3 + t (a4 + t a5))))
        h = b.op("Mul", b.op("Add", h, c[a]), t)
    return b.op("Sub", c["one"], b.op("Mul", h, b.op("Exp", b.op("Neg", b.op("Mul", u, u)))))


_CONSTANTS = {"one": 1.0, "half": 0.5, "inv_sqrt2": 1.0 / math.sqrt(2.0), "p": P,
              **{f"a{i + 1}": a for i, a in enumerate(A)}}


def _gelu_nodes(k: int, x: str, output: str) -> list:
    b = _Builder(k)
    ax = b.op("Abs", x)
    y = _erf_of_nonnegative(b, b.op("Mul", ax, f"{PREFIX}/inv_sqrt2"))
    b.op("Mul", b.op("Add", x, b.op("Mul", ax, y)), f"{PREFIX}/half")
    return b.finish(output)


def _erf_nodes(k: int, x: str, output: str) -> list:
    b = _Builder(k)
    y = _erf_of_nonnegative(b, b.op("Abs", x))
    b.op("Mul", b.op("Sign", x), y)
    return b.finish(output)


def replace_erf(model) -> int:
    """Rewrite, in place, every ``Erf`` of the main graph (exact GELUs whole); returns how many Erfs."""
    from onnx import numpy_helper

    graph = model.graph
    g = _Graph(graph)
    gelus = exact_gelus(g)
    in_gelu = {id(n) for _, removed, _ in gelus for n in removed}
    others = [n for n in graph.node if n.op_type == "Erf" and id(n) not in in_gelu]
    if not gelus and not others:
        return 0
    have = {t.name for t in graph.initializer}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), f"{PREFIX}/{k}")
                             for k, v in _CONSTANTS.items() if f"{PREFIX}/{k}" not in have)
    jobs = [(removed + [last], _gelu_nodes(k, x, last.output[0])) for k, (x, removed, last) in enumerate(gelus)]
    jobs += [([erf], _erf_nodes(len(gelus) + k, erf.input[0], erf.output[0])) for k, erf in enumerate(others)]
    for removed, new in jobs:
        order = list(graph.node)
        at = min(order.index(n) for n in removed)  # where the subgraph began: its input x is computed before
        for node in removed:
            graph.node.remove(node)
        for i, node in enumerate(new):
            graph.node.insert(at + i, node)
    gone = {t for removed, _ in jobs for n in removed for t in n.output}
    gone -= {t for _, new in jobs for n in new for t in n.output}  # the rewritten outputs keep their shapes
    kept = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return len(gelus) + len(others)
