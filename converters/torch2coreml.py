"""PyTorch -> Core ML ``.mlpackage`` (mlprogram), fp16 or fp32 compute precision.

The input is an ``ImageType``: an iOS app hands the model a ``CVPixelBuffer``/``CGImage`` and
Core ML resizes nothing (the app resizes to the manifest's size). ImageType's ``scale`` is
one number for all channels and ImageNet's std differs per channel, so the ImageType maps
0..255 to 0..1 (``scale=1/255``) and a first layer traced into the model subtracts the mean
and divides by the per-channel std; the result equals the PyTorch original's input exactly.
Classifiers get ``ClassifierConfig`` labels and a softmax, so Vision returns
``VNClassificationObservation`` with probabilities; segmenters return the mask logits.

The graph is captured with ``torch.jit.trace``; when coremltools cannot convert the traced graph,
with ``torch.export`` instead, and the artifact's ``converter`` names the capture used. What
coremltools 9.0 itself gets wrong is fixed once in ``converters.coreml_fixes``.
"""

from __future__ import annotations

from pathlib import Path

from converters.common import atomic_output, unsupported_op_error, versions
from converters.tracing import frozen_parameters
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec
from edgederm.tasks import task_of

MINIMUM_TARGET = "iOS16"  # mlprogram with fp16 compute; iOS 16 / macOS 13 and newer
LICENSE = "Model weights: see the model card; training data HAM10000 / ISIC 2018 (CC BY-NC): non-commercial research"


def _wrapped(model, manifest: Manifest):
    import torch

    mean = torch.tensor(manifest.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(manifest.preprocessing.std).view(1, 3, 1, 1)
    classify = task_of(manifest.task).has_class_labels  # class scores leave as probabilities for Vision

    class Deployed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x01):
            y = self.model((x01 - self.mean) / self.std)
            return torch.softmax(y, dim=1) if classify else y

    return Deployed().eval()


def _from_trace(ct, wrapped, example, options: dict):
    """Core ML from ``torch.jit.trace``: the route every zoo model takes."""
    import torch

    with frozen_parameters(wrapped):  # an exported program's parameters (converters.tracing)
        return ct.convert(torch.jit.trace(wrapped, example), **options)  # the traced constants are used here


def _from_export(ct, wrapped, example, options: dict):
    """Core ML from ``torch.export``'s program (ATen ops, shapes already folded): the fallback when a
    traced graph trips a coremltools op converter."""
    import torch

    with frozen_parameters(wrapped):
        program = torch.export.export(wrapped, (example,)).run_decompositions({})
    return ct.convert(program, **options)


CAPTURES = {"jit.trace": _from_trace, "torch.export": _from_export}  # how the graph is captured, tried in order


def _convert_first(ct, wrapped, example, options: dict, model_name: str):
    """(mlmodel, capture, notes) from the first of ``CAPTURES`` that converts; the first one's error, as
    one line, when none does."""
    first = None
    for capture, fn in CAPTURES.items():
        try:
            mlmodel = fn(ct, wrapped, example, options)
        except Exception as e:  # noqa: BLE001 - every converter error becomes one line below
            first = first or e
            continue
        why = (str(first).strip().splitlines() or [""])[0][:120] if first else ""
        notes = [f"{next(iter(CAPTURES))} capture failed in coremltools ({type(first).__name__}: {why}); "
                 f"converted from the {capture} program"] if first else []
        return mlmodel, capture, notes
    raise unsupported_op_error(first, "Core ML", model_name) from None


def convert(model, manifest: Manifest, out_path: Path, precision: str = "fp16") -> Artifact:
    import coremltools as ct
    import torch

    from converters import coreml_fixes

    if precision not in ("fp16", "fp32"):
        raise EdgeDermError(f"torch2coreml makes fp16 or fp32, not {precision!r}")
    h, w = manifest.preprocessing.input_size
    task = task_of(manifest.task)
    classify = task.has_class_labels
    wrapped = _wrapped(model.eval(), manifest)
    coreml_fixes.register()
    options = dict(
        convert_to="mlprogram",
        inputs=[ct.ImageType(name="image", shape=(1, 3, h, w), scale=1.0 / 255.0, bias=[0.0, 0.0, 0.0],
                             color_layout=ct.colorlayout.RGB)],
        outputs=None if classify else [ct.TensorType(name=task.output_name)],
        classifier_config=ct.ClassifierConfig(manifest.classes) if classify else None,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=getattr(ct.target, MINIMUM_TARGET))
    mlmodel, capture, notes = _convert_first(ct, wrapped, torch.rand(1, 3, h, w), options, manifest.model["name"])
    mlmodel.short_description = (f"EdgeDerm {manifest.model['name']} ({manifest.task}); not a diagnosis. "
                                 + manifest.output["meaning"])
    mlmodel.author = "EdgeDerm"
    mlmodel.license = LICENSE
    mlmodel.version = str(manifest.model.get("checkpoint_sha256", ""))[:12]
    mlmodel.user_defined_metadata.update({"edgederm.task": manifest.task, "edgederm.classes": ",".join(manifest.classes),
                                          "edgederm.input_size": f"{h}x{w}"})
    mlmodel.input_description["image"] = f"RGB image resized to {w}x{h} (width x height)"
    with atomic_output(Path(out_path)) as tmp:
        mlmodel.save(str(tmp))
    spec = mlmodel.get_spec()
    outputs = [TensorSpec(o.name, task.output_shape(manifest.classes, h, w),
                          "dict" if o.type.WhichOneof("Type") == "dictionaryType" else "float32",
                          "NC" if classify else "NCHW") for o in spec.description.output]
    return Artifact(name=f"coreml_{precision}", path=str(out_path), format="coreml", precision=precision,
                    inputs=[TensorSpec("image", [1, h, w, 3], "uint8", "image RGB")], outputs=outputs,
                    converter=f"torch2coreml ({capture}, mlprogram, {MINIMUM_TARGET})",
                    tool_versions=versions("coremltools", "torch"),
                    notes=notes + ["normalisation (mean/std) is inside the model; feed 0..255 RGB pixels",
                                   "classifier outputs are softmax probabilities (classLabel + classLabel_probs)"
                                   if classify else "output: mask logits, sigmoid > 0.5 marks lesion"])


def inspect(path: Path) -> dict:
    """What Linux can check of an .mlpackage: I/O, labels, precision of the program, weights count."""
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    inp = spec.description.input[0]
    info = {"input_name": inp.name, "input_type": inp.type.WhichOneof("Type"),
            "outputs": [o.name for o in spec.description.output],
            "spec_version": spec.specificationVersion}
    if inp.type.WhichOneof("Type") == "imageType":
        info["input_size"] = [inp.type.imageType.height, inp.type.imageType.width]
        info["color_space"] = ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(inp.type.imageType.colorSpace)
    if spec.WhichOneof("Type") == "mlProgram":
        ops, dtypes, weights = {}, {}, 0
        for fn in spec.mlProgram.functions.values():
            for block in fn.block_specializations.values():
                for op in block.operations:
                    ops[op.type] = ops.get(op.type, 0) + 1
                    for out in op.outputs:
                        t = out.type.tensorType
                        if t.dataType:
                            name = ct.proto.MIL_pb2.DataType.Name(t.dataType)
                            dtypes[name] = dtypes.get(name, 0) + 1
                    if op.type == "const":
                        for attr in op.attributes.values():
                            if attr.HasField("blobFileValue") or attr.immediateValue.HasField("tensor"):
                                dims = [d.constant.size for d in attr.type.tensorType.dimensions]
                                n = 1
                                for d in dims:
                                    n *= d
                                weights += n
        info.update(ops=ops, dtypes=dtypes, weights=weights)
    info["classifier_labels"] = _classify_labels(spec)
    return info


def _classify_labels(spec) -> list[str] | None:
    """Class labels of an mlprogram classifier: the ``classes`` constant of its ``classify`` op."""
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                if op.type == "classify" and "classes" in op.inputs:
                    values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
                    return [v.immediateValue.tensor.strings.values[0] for v in values]
    return None
