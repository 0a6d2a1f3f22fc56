"""ONNX -> ONNX: a user's existing ONNX file made into an EdgeDerm ONNX artifact.

The file is checked, its input renamed ``input`` and fixed to ``[1, 3, H, W]`` (the meta
file's size; onnx2tf and TensorRT want static shapes), its output adapted to EdgeDerm's
contract by a few appended ONNX nodes (``edgederm.adapters``: one output chosen by name or
index; probabilities -> logits with Clip + Log; two-class masks -> lesion minus background)
and named ``logits`` / ``mask_logits``, and EdgeDerm's metadata is added. The weights are
untouched; verification compares the result with the user's original file run in ONNX
Runtime with the adapter applied in PyTorch (an independent implementation of the same maths).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.common import atomic_output, versions
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec
from edgederm.tasks import task_of


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _select_output(graph, adapter, path: Path) -> str:
    names = [o.name for o in graph.output]
    if adapter.key is not None:
        if adapter.key not in names:
            raise EdgeDermError(f"output.key {adapter.key!r}: {path.name} has outputs {names}; fix output.key in the meta file")
        return adapter.key
    if adapter.index is not None:
        if not -len(names) <= adapter.index < len(names):
            raise EdgeDermError(f"output.index {adapter.index}: {path.name} has {len(names)} outputs; fix output.index")
        return names[adapter.index]
    if len(names) != 1:
        raise EdgeDermError(f"{path.name} has {len(names)} outputs {names}: pick one with output.key or output.index "
                            "in the meta file")
    return names[0]


def adapt_graph(model, adapter, task: str, path: Path) -> None:
    """Append the adapter's nodes; the graph then has one output named logits / mask_logits."""
    from onnx import TensorProto, helper, numpy_helper

    from edgederm.adapters import EPS, MASK_HIGH

    g = model.graph
    y = _select_output(g, adapter, path)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32 if isinstance(value, float) else np.int64),
                                             f"edgederm_{name}"))
        return f"edgederm_{name}"

    def op(kind, inputs, out, **attrs):
        nodes.append(helper.make_node(kind, inputs, [f"edgederm_{out}"], name=f"edgederm_{out}", **attrs))
        return f"edgederm_{out}"

    if adapter.kind != "logits" and adapter.kind != "mask_logit" and _opset(model) < 11:
        raise EdgeDermError(f"{path.name} is opset {_opset(model)}; output.kind {adapter.kind} needs opset >= 11: "
                            "re-export the ONNX file at opset 11 or newer")
    if adapter.kind in ("probabilities", "two_class_probabilities"):
        y = op("Log", [op("Clip", [y, const("eps", EPS), const("one", 1.0)], "clipped")], "log_p")
    elif adapter.kind == "mask_probability":
        p = op("Clip", [y, const("eps", EPS), const("high", MASK_HIGH)], "clipped")
        q = op("Sub", [const("one", 1.0), p], "one_minus_p")
        y = op("Sub", [op("Log", [p], "log_p"), op("Log", [q], "log_q")], "logit")
    if adapter.kind.startswith("two_class"):
        c = adapter.lesion_channel
        axis = const("axis", [1])
        lesion = op("Slice", [y, const("ls", [c]), const("le", [c + 1]), axis], "lesion")
        background = op("Slice", [y, const("bs", [1 - c]), const("be", [2 - c]), axis], "background")
        y = op("Sub", [lesion, background], "lesion_minus_background")
    out = task_of(task).output_name
    nodes.append(helper.make_node("Identity", [y], [out], name="edgederm_output"))
    g.node.extend(nodes)
    g.initializer.extend(inits)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))


def _static_input(model, h: int, w: int, path: Path) -> str:
    """Rename the one image input ``input`` and fix its shape to [1, 3, h, w]; returns its old name."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EdgeDermError(f"{path.name} has {len(inputs)} inputs; EdgeDerm takes one image input [N, 3, H, W]")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or (dims[1].HasField("dim_value") and dims[1].dim_value != 3):
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
        raise EdgeDermError(f"{path.name}: input {inputs[0].name!r} has shape {shape}; EdgeDerm takes NCHW "
                            "[N, 3, H, W] images (an NHWC graph: re-export it channels-first)")
    for d, v in zip(dims, (1, 3, h, w)):
        if d.HasField("dim_value") and d.dim_value != v:
            raise EdgeDermError(f"{path.name}: input is {[x.dim_value for x in dims]}, the meta file's "
                                f"preprocessing.input_size is [{h}, {w}]: make them agree")
        d.dim_value = v
    old = inputs[0].name
    if old != "input":
        for node in model.graph.node:
            node.input[:] = ["input" if i == old else i for i in node.input]
        inputs[0].name = "input"
    return old


def prepare(path: Path, manifest: Manifest, adapter):
    """The user's ONNX model, checked, static, adapted (in memory)."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise EdgeDermError(f"{path} is not a valid ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    h, w = manifest.preprocessing.input_size
    _static_input(model, h, w, path)
    adapt_graph(model, adapter, manifest.task, path)
    del model.graph.value_info[:]  # shapes re-inferred for the static input
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise EdgeDermError(f"{path}: the graph does not check at input [1, 3, {h}, {w}] ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:160]})") from None
    return model


def convert(model, manifest: Manifest, out_path: Path, *, dynamic_batch: bool = False, name: str = "onnx_fp32",
            **_) -> Artifact:
    """``model`` is an ``edgederm.onnx_source.OnnxOriginal``; writes the prepared copy to ``out_path``."""
    import onnx

    from converters.torch2onnx import metadata

    if dynamic_batch:
        raise EdgeDermError("--dynamic-batch is for PyTorch sources; an ONNX source keeps batch 1")
    proto = prepare(Path(model.onnx_path), manifest, model.adapter)
    for key, value in metadata(manifest).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_output(Path(out_path)) as tmp:
        onnx.save(proto, str(tmp))
    h, w = manifest.preprocessing.input_size
    task = task_of(manifest.task)
    out = task.output_shape(manifest.classes, h, w)
    return Artifact(name=name, path=str(out_path), format="onnx", precision="fp32",
                    inputs=[TensorSpec("input", [1, 3, h, w], "float32", "NCHW")],
                    outputs=[TensorSpec(task.output_name, out, "float32", "NC" if len(out) == 2 else "NCHW")],
                    converter=f"onnx2onnx (the user's ONNX file, opset {_opset(proto)}, adapted: {model.adapter.kind})",
                    tool_versions=versions("onnx"), notes=[f"source: {Path(model.onnx_path).name} (an ONNX file)"])
