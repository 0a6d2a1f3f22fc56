"""PyTorch -> ExecuTorch ``.pte`` program, lowered to XNNPACK (fp32, or int8 from a PT2E-quantized graph).

``torch.export`` -> ``executorch.exir.to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` -> ``to_executorch()`` -> the program's bytes, written atomically. The
input is the normalised float tensor in NCHW, as for ONNX (the app normalises with the
manifest's mean/std); the output is the logits (classifiers) or mask logits (segmenters).

The artifact records its *delegation*: how many graph nodes the partitioner handed to
XNNPACK and which operators stayed on ExecuTorch's portable CPU kernels (a model that
"falls back" runs those nodes unaccelerated, and each fallback splits the delegate).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from converters.common import atomic_output, unsupported_op_error, versions
from edgederm.manifest import Artifact, Manifest, TensorSpec
from edgederm.tasks import task_of

BACKENDS = ("xnnpack",)


@contextmanager
def quiet_torch_logs():
    """executorch's import and lowering log harmless torch warnings (pytree, flop counter); keep stderr quiet."""
    names = ("torch.utils._pytree", "torch.utils.flop_counter", "torch._export", "torch.export", "executorch")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def delegation(edge) -> dict:
    """Delegate coverage of a lowered edge program: delegated / portable node counts and the portable ops."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    # getitem only unpacks a delegate's outputs: bookkeeping, not an operator left to portable kernels
    fallback = {op: b.non_delegated for op, b in info.delegation_by_operator.items()
                if b.non_delegated and op != "getitem"}
    portable = sum(fallback.values())
    total = info.num_delegated_nodes + portable
    return {"backend": "XnnpackBackend", "delegated_nodes": info.num_delegated_nodes,
            "portable_nodes": portable, "delegated_subgraphs": info.num_delegated_subgraphs,
            "coverage": round(info.num_delegated_nodes / total, 4) if total else None,
            "portable_ops": dict(sorted(fallback.items()))}


def lower(program, manifest: Manifest, out_path: Path, what: str = "ExecuTorch") -> dict:
    """``torch.export.ExportedProgram`` -> ``.pte`` at ``out_path`` (XNNPACK-lowered); returns its delegation."""
    with quiet_torch_logs():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        try:
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            coverage = delegation(edge)
            buffer = edge.to_executorch().buffer
        except Exception as e:
            raise unsupported_op_error(e, what, manifest.model["name"]) from None
    with atomic_output(Path(out_path)) as tmp:
        Path(tmp).write_bytes(buffer)
    return coverage


def export_program(model, manifest: Manifest):
    """``torch.export.export`` of the eval model at the manifest's static input size."""
    import torch

    h, w = manifest.preprocessing.input_size
    with quiet_torch_logs():
        try:
            return torch.export.export(model.eval(), (torch.randn(1, 3, h, w),))
        except Exception as e:
            raise unsupported_op_error(e, "ExecuTorch (torch.export)", manifest.model["name"]) from None


def artifact(manifest: Manifest, out_path: Path, precision: str, coverage: dict, converter: str) -> Artifact:
    h, w = manifest.preprocessing.input_size
    task = task_of(manifest.task)
    out_shape = task.output_shape(manifest.classes, h, w)
    notes = ["input: normalised float32 NCHW (the manifest's mean/std); runs with executorch.runtime or the "
             "ExecuTorch Android/iOS Module API"]
    if coverage.get("portable_nodes"):
        ops = ", ".join(f"{op}×{n}" for op, n in coverage["portable_ops"].items())
        notes.append(f"{coverage['portable_nodes']} node(s) not delegated to XNNPACK (portable kernels): {ops}")
    a = Artifact(name=f"executorch_{precision}", path=str(out_path), format="executorch", precision=precision,
                 inputs=[TensorSpec("input", [1, 3, h, w], "float32", "NCHW")],
                 outputs=[TensorSpec(task.output_name, out_shape, "float32",
                                     "NC" if len(out_shape) == 2 else "NCHW")],
                 converter=converter, tool_versions=versions("executorch", "torch", "torchao"), notes=notes,
                 delegation=coverage)
    return a


def convert(model, manifest: Manifest, out_path: Path, precision: str = "fp32") -> Artifact:
    """fp32 ``.pte``: the whole graph offered to XNNPACK."""
    if precision != "fp32":
        from edgederm.errors import EdgeDermError

        raise EdgeDermError(f"torch2executorch exports fp32, not {precision!r}: "
                            "int8 is `edgederm quantize DIR --scheme int8 --format executorch`")
    coverage = lower(export_program(model, manifest), manifest, out_path)
    return artifact(manifest, out_path, "fp32", coverage, "torch2executorch (torch.export, XNNPACK partitioner)")


def export_format(model, manifest: Manifest, folder: Path, stem: str, precisions=("fp32",), **_) -> list[Artifact]:
    """The ``executorch`` format's exporter (``converters.FORMATS``): one ``.pte`` per precision."""
    return [convert(model, manifest, Path(folder) / f"{stem}_{p}.pte", p) for p in precisions]
