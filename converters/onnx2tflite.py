"""ONNX -> TFLite/LiteRT via onnx2tf: NHWC input (what Android camera pipelines feed), fp32 and fp16.

onnx2tf runs in a child process: TensorFlow stays out of the caller's process (TF and
torch share badly), and its working directory holds our own calibration sample so that it
never reaches for the internet (it downloads
``calibration_image_sample_data_20x128x128x3_float32.npy`` on every image model otherwise).
Outputs keep the ONNX order and meaning; image-shaped outputs become NHWC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from converters.common import atomic_output, unsupported_op_error, versions
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SUFFIX = {"fp32": "_float32.tflite", "fp16": "_float16.tflite"}

_CHILD = r"""
import json, sys
args = json.loads(sys.argv[1])
import onnx2tf
onnx2tf.convert(**args)
"""


def calibration_sample(images_uint8: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """onnx2tf's sample format: float32 [20, 128, 128, 3] in 0..1, from real images when given."""
    if images_uint8 is not None and len(images_uint8):
        from PIL import Image

        picks = [images_uint8[i % len(images_uint8)] for i in range(20)]
        arr = np.stack([np.asarray(Image.fromarray(p).resize((128, 128), Image.BILINEAR)) for p in picks])
        return (arr.astype(np.float32) / 255.0)
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (20, 128, 128, 3)).astype(np.float32)


def run_onnx2tf(onnx_path: Path, workdir: Path, sample: np.ndarray, extra: dict | None = None,
                timeout: int = 1800) -> Path:
    """Run onnx2tf on ``onnx_path`` inside ``workdir``; returns its output folder."""
    np.save(workdir / ONNX2TF_SAMPLE, sample)
    out = workdir / "onnx2tf_out"
    args = {"input_onnx_file_path": str(onnx_path), "output_folder_path": str(out),
            "copy_onnx_input_output_names_to_tflite": True, "non_verbose": True, **(extra or {})}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = (proc.stderr + "\n" + proc.stdout).strip().splitlines()
        # TF's C++ log lines (W0000/I0000/WARNING: All log messages...) bury the real error.
        errors = [ln for ln in lines if "Error" in ln or "error:" in ln or "not supported" in ln]
        raise unsupported_op_error(RuntimeError("\n".join(errors[-3:] or lines[-3:])), "TFLite", onnx_path.stem)
    return out


def convert(onnx_path: Path, manifest: Manifest, out_dir: Path, precisions=("fp32", "fp16"),
            calibration_images: np.ndarray | None = None, stem: str = "model") -> list[Artifact]:
    """TFLite artifacts for ``precisions``, written as ``out_dir/<stem>_<precision>.tflite``."""
    bad = [p for p in precisions if p not in SUFFIX]
    if bad:
        raise EdgeDermError(f"onnx2tflite makes {', '.join(SUFFIX)}; {', '.join(bad)} comes from edgederm quantize")
    onnx_path = Path(onnx_path).resolve()
    h, w = manifest.preprocessing.input_size
    artifacts = []
    with tempfile.TemporaryDirectory(prefix="edgederm-onnx2tf-") as work:
        work = Path(work)
        produced = run_onnx2tf(onnx_path, work, calibration_sample(calibration_images))
        for precision in precisions:
            found = sorted(produced.glob(f"*{SUFFIX[precision]}"))
            if not found:
                raise EdgeDermError(f"onnx2tf wrote no {SUFFIX[precision]} file for {onnx_path.name}")
            target = Path(out_dir) / f"{stem}_{precision}.tflite"
            with atomic_output(target) as tmp:
                shutil.copyfile(found[0], tmp)
            artifacts.append(_describe(target, manifest, precision, h, w))
    return artifacts


def _describe(path: Path, manifest: Manifest, precision: str, h: int, w: int) -> Artifact:
    """Read the real I/O tensors back from the file (names, shapes, dtypes) rather than assume them."""
    from device_bench.runners import open_runner

    runner = open_runner(path, "tflite")
    interp = runner.interpreter
    ins = [TensorSpec(d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name, "NHWC",
                      _quant(d)) for d in interp.get_input_details()]
    outs = [TensorSpec(d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name,
                       "NC" if len(d["shape"]) == 2 else "NHWC", _quant(d)) for d in interp.get_output_details()]
    if ins[0].shape != [1, h, w, 3]:
        raise EdgeDermError(f"{path.name}: input shape {ins[0].shape}, expected NHWC [1, {h}, {w}, 3]")
    return Artifact(name=f"tflite_{precision}", path=str(path), format="tflite", precision=precision,
                    inputs=ins, outputs=outs, converter="onnx2tflite (onnx2tf)",
                    tool_versions=versions("onnx2tf", "tensorflow", "ai-edge-litert"))


def _quant(detail) -> dict | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    return {"scale": float(scale), "zero_point": int(zero)} if scale else None
