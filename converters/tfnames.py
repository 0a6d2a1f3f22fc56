"""ONNX names made safe for TensorFlow before onnx2tf sees them.

TensorFlow names its ops after the ONNX nodes and tensors, and a saved_model refuses any op
name outside ``[A-Za-z0-9.][A-Za-z0-9_./>-]*``. The TorchScript exporter names nodes by module
path with a leading slash (``/blocks/blocks.3/.../conv/Conv``): most ops get away with it, but
a weight variable (``.../conv/Conv/kernel``, e.g. timm's MobileNetV4 ``dw_start`` convs) makes
onnx2tf stop with "Generation of saved_model failed because the OP name does not match the
following pattern". The fix, once for every model: rename every node and tensor (graph inputs
and outputs included, subgraphs too) to a safe, unique name; names already safe stay as they are.
"""

from __future__ import annotations

import re

SAFE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_./>-]*\Z")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_./>-]")
_BAD_START = re.compile(r"^[^A-Za-z0-9.]+")


def safe_name(name: str) -> str:
    """``name`` with characters TF refuses replaced by ``_`` and a leading non-alphanumeric run dropped."""
    if SAFE.match(name):
        return name
    cleaned = _BAD_START.sub("", _BAD_CHAR.sub("_", name))
    return cleaned or "t"


def _graphs(graph):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g and attr.g.node:
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _unique(names: list[str]) -> dict[str, str]:
    """{old: new} for the names that need renaming, every new name distinct from every other name."""
    taken, mapping = set(n for n in names if SAFE.match(n)), {}
    for old in names:
        if old in mapping or SAFE.match(old) or not old:  # "" is ONNX's "absent optional input"
            continue
        new, k = safe_name(old), 1
        base = new
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        mapping[old] = new
    return mapping


def tensor_renames(model) -> dict[str, str]:
    """{old: new} for the model's tensor names (deterministic: the same model gives the same map)."""
    names: list[str] = []
    for g in _graphs(model.graph):
        names += [v.name for v in list(g.input) + list(g.output) + list(g.value_info)]
        names += [t.name for t in g.initializer] + [t.values.name for t in g.sparse_initializer]
        for node in g.node:
            names += list(node.input) + list(node.output)
    return _unique(list(dict.fromkeys(names)))


def make_tf_safe(model) -> int:
    """Rename, in place, every node and tensor name TensorFlow would refuse; returns how many changed."""
    tensors = tensor_renames(model)
    nodes = _unique(list(dict.fromkeys(n.name for g in _graphs(model.graph) for n in g.node)))
    for g in _graphs(model.graph):
        for v in list(g.input) + list(g.output) + list(g.value_info):
            v.name = tensors.get(v.name, v.name)
        for t in g.initializer:
            t.name = tensors.get(t.name, t.name)
        for t in g.sparse_initializer:
            t.values.name = tensors.get(t.values.name, t.values.name)
        for node in g.node:
            node.name = nodes.get(node.name, node.name)
            node.input[:] = [tensors.get(i, i) for i in node.input]
            node.output[:] = [tensors.get(o, o) for o in node.output]
    return len(tensors) + len(nodes)
