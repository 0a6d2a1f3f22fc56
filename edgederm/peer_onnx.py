"""The plain ONNX path as ``edgederm bench`` peer rows: what a user would do without EdgeDerm.

``torch.onnx.export`` with its defaults, run by ONNX Runtime in fp32, and ONNX Runtime's own
``quantize_static`` with its defaults (QDQ, int8, per-tensor) calibrated on 64 training images
(``peer_calibration``, shared with ``edgederm.peer_executorch``). Rows are ``peer_onnx_fp32`` /
``peer_onnx_int8``; a peer that cannot be made is a row saying why, not a crash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_bench.runners import open_runner
from edgederm.candidates import Candidate, failed_peer
from edgederm.data import load_dataset
from edgederm.data.arrays import load_arrays
from edgederm.data.layouts import find_dataset
from edgederm.manifest import Manifest

NOTE = "plain torch.onnx.export + ONNX Runtime defaults (what a user would do without EdgeDerm)"


def peer_candidates(model, manifest: Manifest, stats: dict, workdir: Path, calibration: np.ndarray) -> list[Candidate]:
    """The fp32 and int8 peers, files made in ``workdir`` (kept there: a second call reuses them)."""
    import torch

    h, w = manifest.preprocessing.input_size
    fp32 = workdir / "peer_fp32.onnx"
    int8 = workdir / "peer_int8.onnx"
    cands = []
    try:
        if not fp32.exists():
            torch.onnx.export(model.eval(), (torch.zeros(1, 3, h, w),), str(fp32), input_names=["input"],
                              output_names=["output"], opset_version=17, dynamo=False)
        cands.append(_peer(fp32, "peer_onnx_fp32", "fp32", manifest, stats))
    except Exception as e:  # the peer path failing is a finding, not a crash of the bench
        cands.append(failed_peer("peer_onnx_fp32", "fp32", f"torch.onnx.export failed: {str(e).splitlines()[0]}"))
        return cands
    try:
        if not int8.exists():
            _quantize_with_ort_defaults(fp32, int8, manifest.preprocessing.normalize(calibration), workdir)
        cands.append(_peer(int8, "peer_onnx_int8", "int8", manifest, stats))
    except Exception as e:
        cands.append(failed_peer("peer_onnx_int8", "int8", f"onnxruntime quantize_static failed: {str(e).splitlines()[0]}"))
    return cands


def _quantize_with_ort_defaults(fp32: Path, int8: Path, x: np.ndarray, workdir: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.items, None)

    pre = workdir / "peer_pre.onnx"
    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(int8), Reader())


def peer_calibration(manifest: Manifest, data_root, n: int = 64) -> np.ndarray:
    """64 class-stratified *training* images for the peer's int8 calibration (test images would leak)."""
    root = find_dataset(manifest.model.get("dataset"), data_root, "peer calibration data")
    ds = load_dataset(root).split("train").subset(n, seed=0)
    return load_arrays(ds, manifest.preprocessing, desc="bench: peer calibration images").images


def _peer(path: Path, name: str, precision: str, manifest: Manifest, stats: dict) -> Candidate:
    row = {"artifact": name, "format": "onnx", "precision": precision, "role": "peer", "path": str(path),
           "size_bytes": path.stat().st_size, "params": stats.get("params"), "macs": stats.get("macs"), "status": "ok",
           "notes": [NOTE]}
    return Candidate(row, lambda t: open_runner(path, "onnx", threads=t), manifest.preprocessing.normalize)
