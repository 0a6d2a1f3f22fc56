"""The plain ExecuTorch path as ``edgederm bench`` peer rows: what a PyTorch team does without EdgeDerm.

ExecuTorch's own XNNPACK recipe, called directly (not through ``converters.torch2executorch``):
``torch.export`` -> ``to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])`` ->
``.pte`` (fp32); and PT2E with ``XNNPACKQuantizer(get_symmetric_quantization_config(
is_per_channel=True))`` calibrated on the bench's 64 training images -> the same lowering
(int8). Rows are ``peer_executorch_fp32`` / ``peer_executorch_int8``; a peer that cannot be
made is a row saying why, not a crash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NOTE = "plain ExecuTorch XNNPACK recipe (torch.export, XnnpackPartitioner; PT2E XNNPACKQuantizer for int8)"


def _lower(program, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def _int8_program(model, example, calibration):
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, example).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(calibration[i:i + 1])
    return torch.export.export(convert_pt2e(prepared), example)


def executorch_peers(model, manifest, stats: dict, workdir: Path, calibration: np.ndarray) -> list:
    """Peer candidates for the plain ExecuTorch fp32 and int8 paths (``calibration``: uint8 NHWC train images)."""
    from edgederm.candidates import Candidate, failed_peer

    try:
        import torch

        from converters.torch2executorch import quiet_torch_logs
        import executorch  # noqa: F401
    except ImportError as e:
        reason = f"executorch is not installed ({e})"
        return [_skipped_peer(f"peer_executorch_{p}", p, reason) for p in ("fp32", "int8")]
    h, w = manifest.preprocessing.input_size
    example = (torch.zeros(1, 3, h, w),)
    model = model.eval()
    cands = []
    for precision in ("fp32", "int8"):
        name, path = f"peer_executorch_{precision}", Path(workdir) / f"peer_{precision}.pte"
        try:
            with quiet_torch_logs():
                if not path.exists():
                    x = torch.from_numpy(manifest.preprocessing.normalize(calibration))
                    program = (torch.export.export(model, example) if precision == "fp32"
                               else _int8_program(model, example, x))
                    _lower(program, path)
        except Exception as e:  # the peer path failing is a finding, not a crash of the bench
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
            cands.append(failed_peer(name, precision, f"ExecuTorch {precision} export failed: {type(e).__name__}: {first}"))
            cands[-1].row["format"] = "executorch"
            continue
        cands.append(Candidate(_row(name, precision, path, stats), _opener(path), manifest.preprocessing.normalize))
    return cands


def _row(name: str, precision: str, path: Path, stats: dict) -> dict:
    return {"artifact": name, "format": "executorch", "precision": precision, "role": "peer", "path": str(path),
            "size_bytes": path.stat().st_size, "params": stats.get("params"), "macs": stats.get("macs"),
            "status": "ok", "notes": [NOTE]}


def _opener(path: Path):
    from device_bench.runners import open_runner

    return lambda threads: open_runner(path, "executorch", threads=threads)


def _skipped_peer(name: str, precision: str, reason: str):
    from edgederm.candidates import Candidate

    row = {"artifact": name, "format": "executorch", "precision": precision, "role": "peer", "status": "skipped",
           "reason": reason}
    return Candidate(row, None, None)
