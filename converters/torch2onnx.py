"""PyTorch -> ONNX: one self-contained, simplified, checker-clean file with EdgeDerm metadata.

The TorchScript exporter at opset 17 handles the whole zoo but SegNet's MaxUnpool (its
output-size check cannot be traced); the dynamo exporter (opset 20) takes that one, and its
external weights file is folded back into the single .onnx. Shapes are static by default,
which is what TensorRT's ``trtexec --onnx`` and onnx2tf want; ``dynamic_batch`` frees the
batch dimension.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from converters.common import atomic_output, unsupported_op_error, versions
from converters.tracing import frozen_parameters
from edgederm.manifest import Artifact, Manifest, TensorSpec
from edgederm.tasks import task_of

OPSET = 17


def metadata(manifest: Manifest) -> dict[str, str]:
    """The manifest subset an ONNX consumer needs, as ``metadata_props`` strings."""
    return {"edgederm.model": manifest.model["name"], "edgederm.task": manifest.task,
            "edgederm.classes": json.dumps(manifest.classes),
            "edgederm.preprocessing": json.dumps(manifest.preprocessing.to_dict()),
            "edgederm.output": json.dumps(manifest.output)}


def _export(model, x, path: Path, output: str, dynamic_batch: bool, dynamo: bool):
    import torch

    kwargs = dict(input_names=["input"], output_names=[output])
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, output: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, optimize=True,
                              **{k: v for k, v in kwargs.items() if k != "dynamic_axes"})
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
                              **kwargs)


def convert(model, manifest: Manifest, out_path: Path, *, dynamic_batch: bool = False, simplify: bool = True,
            name: str = "onnx_fp32") -> Artifact:
    import onnx
    import torch

    model = model.eval()
    h, w = manifest.preprocessing.input_size
    x = torch.randn(1, 3, h, w)
    task = task_of(manifest.task)
    output = task.output_name
    notes = []
    with atomic_output(Path(out_path)) as tmp:
        try:
            with frozen_parameters(model):  # an exported program's parameters (converters.tracing)
                _export(model, x, tmp, output, dynamic_batch, dynamo=False)
            exporter = f"torchscript opset {OPSET}"
        except Exception as first:  # the TorchScript exporter cannot trace some ops (MaxUnpool)
            try:
                _export(model, x, tmp, output, dynamic_batch, dynamo=True)
                exporter = "dynamo"
                notes.append(f"TorchScript exporter failed ({type(first).__name__}); used the dynamo exporter")
            except Exception as second:
                raise unsupported_op_error(first if "operator" in str(first) else second, "ONNX",
                                           manifest.model["name"]) from None
        proto = onnx.load(str(tmp))
        if simplify:
            import onnxslim

            proto = onnxslim.slim(proto)
        for key, value in metadata(manifest).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "edgederm"
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    batch = "batch" if dynamic_batch else 1
    out_shape = task.output_shape(manifest.classes, h, w, batch)
    return Artifact(
        name=name, path=str(out_path), format="onnx", precision="fp32",
        inputs=[TensorSpec("input", [batch, 3, h, w], "float32", "NCHW")],
        outputs=[TensorSpec(output, out_shape, "float32", "NC" if len(out_shape) == 2 else "NCHW")],
        converter=f"torch2onnx ({exporter}, opset {opset}{', onnxslim' if simplify else ''})",
        tool_versions=versions("torch", "onnx", "onnxslim"), notes=notes)
