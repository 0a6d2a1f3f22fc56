"""TensorRT on Jetson (or any NVIDIA box) through ``trtexec``: build fp16 and int8 engines from the
bundle's ONNX file and time them. Engines are built on the device because they are specific to
its GPU, TensorRT and JetPack version; that is why bundles carry ONNX, not engines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from device_bench.parsers import ParseError
from device_bench.parsers import trtexec as parser

FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}  # int8 engines may keep fp16 layers


def available() -> str | None:
    return shutil.which("trtexec")


def command(onnx: Path, engine: Path, precision: str) -> list[str]:
    return ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", *FLAGS[precision]]


def run(onnx: Path, artifact: dict, engines: Path, precisions, device: str, timeout: float = 3600) -> list[dict]:
    """One row per precision: latency parsed from trtexec's log (kept beside the engine), or the reason it failed."""
    engines.mkdir(parents=True, exist_ok=True)
    rows = []
    for precision in precisions:
        name = f"trt_{precision}"
        engine = engines / f"{Path(artifact['path']).stem}_{precision}.engine"
        log = engines / f"{engine.stem}.log"
        base = {"artifact": name, "format": "tensorrt", "precision": precision, "device": device,
                "source_artifact": artifact["name"], "source_sha256": artifact.get("sha256"), "log": str(log)}
        try:
            out = subprocess.run(command(onnx, engine, precision), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            rows.append({**base, "status": "failed", "reason": f"trtexec ran over {timeout:.0f} s building {engine.name}"})
            continue
        text = out.stdout + ("\n" + out.stderr if out.stderr else "")
        log.write_text(text)
        try:
            parsed = parser.parse(text, source=str(log))
        except ParseError as e:
            rows.append({**base, "status": "failed", "reason": str(e)})
            continue
        row = parser.to_row(parsed, name, device=device, source_artifact=artifact["name"],
                            source_sha256=artifact.get("sha256"), log=str(log))
        if parsed["precision"] != precision:
            row["notes"].append(f"asked for {precision}, trtexec reports {parsed['build_precision']}")
        row["notes"].append("accuracy is not measured through trtexec; the ONNX Runtime TensorRT provider row carries it")
        if precision == "int8":
            row["calibration"], note = calibration_note(artifact)
            row["notes"].append(note)
        rows.append(row)
    return rows


QDQ_PRECISIONS = ("int8_qdq", "int8_nncf")  # QDQ files: TensorRT takes their scales (explicit quantization)


def calibration_note(artifact: dict) -> tuple[str, str]:
    """(calibration, note) of an int8 trtexec engine: the QDQ file's calibrated scales, or none at all."""
    if artifact.get("precision") in QDQ_PRECISIONS:
        return "qdq", "int8 from the QDQ file: TensorRT explicit quantization with EdgeDerm's calibrated scales"
    return "none", ("UNCALIBRATED int8: trtexec --int8 without a calibration cache uses placeholder ranges; the "
                    "latency is real, the accuracy unknown (build from the int8_qdq file for a calibrated engine)")
