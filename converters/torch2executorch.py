"""PyTorch -> ExecuTorch ``.pte`` program, lowered to XNNPACK (fp32, or int8 from a PT2E-quantized graph),
or to the Core ML delegate (format ``executorch_coreml``).

``torch.export`` -> ``executorch.exir.to_edge_transform_and_lower`` with the
``XnnpackPartitioner`` -> ``to_executorch()`` -> the program's bytes, written atomically. The
input is the normalised float tensor in NCHW, as for ONNX (the app normalises with the
manifest's mean/std); the output is the logits (classifiers) or mask logits (segmenters).

The artifact records its *delegation*: how many graph nodes the partitioner handed to
XNNPACK and which operators stayed on ExecuTorch's portable CPU kernels (a model that
"falls back" runs those nodes unaccelerated, and each fallback splits the delegate).

The Core ML delegate lowers on Linux too (coremltools compiles the delegated subgraphs into the
``.pte``), but only the ExecuTorch runtime of macOS/iOS has its backend: here such a program is
written and its coverage recorded, and its verification is skipped with that reason.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from converters.common import atomic_output, unsupported_op_error, versions
from edgederm.manifest import Artifact, Manifest, TensorSpec
from edgederm.tasks import task_of

BACKENDS = ("xnnpack", "coreml")
COREML_PRECISIONS = ("fp16", "fp32")  # Core ML's compute precision inside the delegate; I/O stays float32


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


def delegation(edge, backend: str = "XnnpackBackend") -> dict:
    """Delegate coverage of a lowered edge program: delegated / portable node counts and the portable ops."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    # getitem only unpacks a delegate's outputs: bookkeeping, not an operator left to portable kernels
    fallback = {op: b.non_delegated for op, b in info.delegation_by_operator.items()
                if b.non_delegated and op != "getitem"}
    portable = sum(fallback.values())
    total = info.num_delegated_nodes + portable
    return {"backend": backend, "delegated_nodes": info.num_delegated_nodes,
            "portable_nodes": portable, "delegated_subgraphs": info.num_delegated_subgraphs,
            "coverage": round(info.num_delegated_nodes / total, 4) if total else None,
            "portable_ops": dict(sorted(fallback.items()))}


def coreml_partitioner(precision: str):
    """The Core ML partitioner at ``precision`` (fp16/fp32 compute), iOS 16 / macOS 13 as the deployment floor."""
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    specs = CoreMLBackend.generate_compile_specs(compute_precision=compute,
                                                 minimum_deployment_target=ct.target.iOS16)
    return CoreMLPartitioner(compile_specs=specs)


def lower(program, manifest: Manifest, out_path: Path, what: str = "ExecuTorch", coreml: str | None = None) -> dict:
    """``torch.export.ExportedProgram`` -> ``.pte`` at ``out_path``, XNNPACK-lowered (or Core ML-lowered at
    the ``coreml`` precision); returns its delegation."""
    with quiet_torch_logs():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        try:
            partitioner = coreml_partitioner(coreml) if coreml else XnnpackPartitioner()
            edge = to_edge_transform_and_lower(program, partitioner=[partitioner])
            coverage = delegation(edge, "CoreMLBackend" if coreml else "XnnpackBackend")
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


def artifact(manifest: Manifest, out_path: Path, precision: str, coverage: dict, converter: str,
             fmt: str = "executorch") -> Artifact:
    """The manifest entry of a ``.pte`` of format ``fmt`` (``executorch``: XNNPACK; ``executorch_coreml``)."""
    h, w = manifest.preprocessing.input_size
    task = task_of(manifest.task)
    out_shape = task.output_shape(manifest.classes, h, w)
    coreml = fmt == "executorch_coreml"
    where = ("the ExecuTorch runtime of macOS/iOS (Core ML delegate; not the Linux/Android runtimes)" if coreml
             else "executorch.runtime or the ExecuTorch Android/iOS Module API")
    notes = [f"input: normalised float32 NCHW (the manifest's mean/std); runs with {where}"]
    if coverage.get("portable_nodes"):
        ops = ", ".join(f"{op}×{n}" for op, n in coverage["portable_ops"].items())
        notes.append(f"{coverage['portable_nodes']} node(s) not delegated to {'Core ML' if coreml else 'XNNPACK'} "
                     f"(portable kernels): {ops}")
    a = Artifact(name=f"{fmt}_{precision}", path=str(out_path), format=fmt, precision=precision,
                 inputs=[TensorSpec("input", [1, 3, h, w], "float32", "NCHW")],
                 outputs=[TensorSpec(task.output_name, out_shape, "float32",
                                     "NC" if len(out_shape) == 2 else "NCHW")],
                 converter=converter, notes=notes,
                 tool_versions=versions("executorch", "torch", "torchao", *(("coremltools",) if coreml else ())),
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


def export_coreml_format(model, manifest: Manifest, folder: Path, stem: str, precisions=("fp16",),
                         **_) -> list[Artifact]:
    """The ``executorch_coreml`` format's exporter: one Core ML-delegated ``.pte`` per compute precision."""
    made = []
    for p in precisions:
        if p not in COREML_PRECISIONS:
            from edgederm.errors import EdgeDermError

            raise EdgeDermError(f"executorch_coreml exports {' or '.join(COREML_PRECISIONS)}, not {p!r}")
        out_path = Path(folder) / f"{stem}_coreml_{p}.pte"
        coverage = lower(export_program(model, manifest), manifest, out_path, "ExecuTorch (Core ML delegate)", coreml=p)
        made.append(artifact(manifest, out_path, p, coverage, f"torch2executorch (torch.export, Core ML partitioner, "
                             f"{p} compute)", fmt="executorch_coreml"))
    return made
