"""ONNX -> TFLite/LiteRT via onnx2tf: NHWC input (what Android camera pipelines feed), fp32 and fp16.

onnx2tf runs in a child process: TensorFlow stays out of the caller's process (TF and
torch share badly), and its working directory holds our own calibration sample so that it
never reaches for the internet (it downloads
``calibration_image_sample_data_20x128x128x3_float32.npy`` on every image model otherwise).
Outputs keep the ONNX order and meaning; image-shaped outputs become NHWC.

With ``calibration`` (normalised float32 NHWC inputs, e.g. ``quantization.calibration``'s), the
same run also writes onnx2tf's integer variants (``-oiqt -qt per-channel -cind``): dynamic-range
int8 weights, full int8 with float or integer I/O, and int16 activations. The calibration data
is passed already normalised (mean 0, std 1 given to onnx2tf), so the model's own
preprocessing is the only normalisation; onnx2tf's MS-COCO sample is never used.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from converters.common import (atomic_output, child_error_lines, run_tensorflow_child, unsupported_op_error,
                               versions)
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SUFFIX = {"fp32": "_float32.tflite", "fp16": "_float16.tflite",
          "dynamic": "_dynamic_range_quant.tflite",  # int8 weights, float activations
          "int8": "_full_integer_quant.tflite",  # full int8, integer I/O
          "int8_floatio": "_integer_quant.tflite",  # full int8, float I/O
          "int16x8": "_integer_quant_with_int16_act.tflite"}  # int16 activations, int8 weights, float I/O
CALIBRATED = ("int8", "int8_floatio", "int16x8")
EXPORT_PRECISIONS = ("fp32", "fp16")

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
    # onnx2tf rewrites its input in place (onnxsim, three passes): give it a copy, or the exported
    # model.onnx would no longer match the sha256 the manifest recorded. The copy's node and tensor
    # names are made safe for TensorFlow (converters.tfnames), its Erfs spelled in builtin ops (converters.erf_builtin).
    private = workdir / Path(onnx_path).name  # same stem: output names derive from it
    tf_safe_copy(Path(onnx_path), private)
    args = {"input_onnx_file_path": str(private), "output_folder_path": str(out),
            "copy_onnx_input_output_names_to_tflite": True, "non_verbose": True, **(extra or {})}
    proc = run_tensorflow_child([sys.executable, "-c", _CHILD, json.dumps(args)], workdir, timeout)
    if proc.returncode != 0:
        raise unsupported_op_error(RuntimeError("\n".join(child_error_lines(proc))), "TFLite", onnx_path.stem)
    (out / "log.txt").write_text(proc.stdout + "\n" + proc.stderr)  # onnx2tf reports quantization failures only here
    return out


def tf_safe_copy(onnx_path: Path, private: Path) -> None:
    """Copy ``onnx_path`` to ``private`` ready for onnx2tf: every ``Erf`` in TFLite builtin operators
    (converters.erf_builtin), every node/tensor name one TensorFlow accepts (converters.tfnames)."""
    import onnx

    from converters.erf_builtin import replace_erf
    from converters.tfnames import make_tf_safe

    model = onnx.load(str(onnx_path))  # external weights, if any, are folded into the private copy
    if replace_erf(model) + make_tf_safe(model):
        onnx.save(model, str(private))
    else:
        shutil.copyfile(onnx_path, private)


def quantization_args(workdir: Path, onnx_path: Path, calibration: np.ndarray | None,
                      quant_type: str = "per-channel", io_dtype: str = "int8") -> dict:
    """onnx2tf arguments for the integer variants; ``calibration`` is normalised float32 NHWC."""
    if calibration is None:
        return {"output_dynamic_range_quantized_tflite": True}
    import onnx

    from converters.tfnames import tensor_renames

    model = onnx.load(str(onnx_path), load_external_data=False)
    h, w = (int(d.dim_value) for d in model.graph.input[0].type.tensor_type.shape.dim[2:4])
    input_name = tensor_renames(model).get(model.graph.input[0].name, model.graph.input[0].name)  # as onnx2tf sees it
    if calibration.ndim != 4 or calibration.shape[1:] != (h, w, 3) or calibration.dtype != np.float32:
        raise EdgeDermError(f"calibration for onnx2tf must be float32 NHWC [N, {h}, {w}, 3], got "
                            f"{calibration.dtype} {list(calibration.shape)}")
    path = workdir / "calibration_nhwc.npy"
    np.save(path, calibration)
    zero, one = [[[[0.0, 0.0, 0.0]]]], [[[[1.0, 1.0, 1.0]]]]  # already normalised by the model's preprocessing
    return {"output_integer_quantized_tflite": True, "quant_type": quant_type,
            "input_quant_dtype": io_dtype, "output_quant_dtype": io_dtype,
            "custom_input_op_name_np_data_path": [[input_name, str(path), zero, one]]}


def produce(onnx_path: Path, workdir: Path, precisions, calibration: np.ndarray | None = None,
            calibration_images: np.ndarray | None = None, quant_type: str = "per-channel",
            io_dtype: str = "int8") -> dict[str, Path]:
    """One onnx2tf run in ``workdir`` making every precision asked for; {precision: file}.

    Integer variants need ``calibration`` (normalised float32 NHWC) except ``dynamic``.
    """
    bad = [p for p in precisions if p not in SUFFIX]
    if bad:
        raise EdgeDermError(f"onnx2tflite makes {', '.join(SUFFIX)}, not {', '.join(bad)}")
    if calibration is None and any(p in CALIBRATED for p in precisions):
        raise EdgeDermError(f"{', '.join(p for p in precisions if p in CALIBRATED)} TFLite needs calibration images")
    extra = {}
    if any(p not in EXPORT_PRECISIONS for p in precisions):
        extra = quantization_args(workdir, onnx_path, calibration, quant_type, io_dtype)
    out = run_onnx2tf(Path(onnx_path).resolve(), workdir, calibration_sample(calibration_images), extra)
    produced = {}
    for precision in precisions:
        # exact names: "*_integer_quant.tflite" would also match "*_full_integer_quant.tflite"
        found = [p for p in [out / f"{Path(onnx_path).stem}{SUFFIX[precision]}"] if p.exists()]
        if not found:
            log = (out / "log.txt").read_text() if (out / "log.txt").exists() else ""
            why = [ln.strip() for ln in log.splitlines() if "failed" in ln.lower() or "Error" in ln][-2:]
            raise EdgeDermError(f"onnx2tf wrote no {SUFFIX[precision]} file for {Path(onnx_path).name}"
                                + (f": {' / '.join(why)}" if why else ""))
        produced[precision] = found[0]
    return produced


def convert(onnx_path: Path, manifest: Manifest, out_dir: Path, precisions=("fp32", "fp16"),
            calibration_images: np.ndarray | None = None, stem: str = "model") -> list[Artifact]:
    """TFLite artifacts for ``precisions``, written as ``out_dir/<stem>_<precision>.tflite``."""
    bad = [p for p in precisions if p not in EXPORT_PRECISIONS]
    if bad:
        raise EdgeDermError(f"onnx2tflite makes {', '.join(EXPORT_PRECISIONS)}; {', '.join(bad)} comes from "
                            "edgederm quantize")
    onnx_path = Path(onnx_path).resolve()
    artifacts = []
    with tempfile.TemporaryDirectory(prefix="edgederm-onnx2tf-") as work:
        produced = produce(onnx_path, Path(work), precisions, calibration_images=calibration_images)
        for precision in precisions:
            target = Path(out_dir) / f"{stem}_{precision}.tflite"
            artifacts.append(install(produced[precision], target, manifest, precision))
    return artifacts


def install(produced: Path, target: Path, manifest: Manifest, precision: str, name: str | None = None) -> Artifact:
    """Copy an onnx2tf output onto ``target`` (atomically) and describe it from the file itself."""
    with atomic_output(target) as tmp:
        shutil.copyfile(produced, tmp)
    h, w = manifest.preprocessing.input_size
    return _describe(target, manifest, precision, h, w, name)


def _describe(path: Path, manifest: Manifest, precision: str, h: int, w: int, name: str | None = None) -> Artifact:
    """Read the real I/O tensors back from the file (names, shapes, dtypes) rather than assume them."""
    import re

    from device_bench.runners import RunnerUnavailable, open_runner

    try:
        runner = open_runner(path, "tflite")
    except RunnerUnavailable as e:  # e.g. a Select TensorFlow (Flex) op no LiteRT interpreter runs
        flex = sorted(set(re.findall(r"Flex\w+", str(e))))
        path.unlink(missing_ok=True)
        if flex:
            raise EdgeDermError(f"{manifest.model['name']}: operator {', '.join(f[4:] for f in flex)} became the Select "
                                f"TensorFlow op {', '.join(flex)} in TFLite, which LiteRT does not run; workaround: "
                                "replace it in the model with builtin operators") from None
        raise EdgeDermError(f"{path.name}: LiteRT cannot load the converted file ({str(e)[:160]})") from None
    interp = runner.interpreter
    ins = [TensorSpec(d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name, "NHWC",
                      _quant(d)) for d in interp.get_input_details()]
    outs = [TensorSpec(d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name,
                       "NC" if len(d["shape"]) == 2 else "NHWC", _quant(d)) for d in interp.get_output_details()]
    if ins[0].shape != [1, h, w, 3]:
        raise EdgeDermError(f"{path.name}: input shape {ins[0].shape}, expected NHWC [1, {h}, {w}, 3]")
    return Artifact(name=name or f"tflite_{precision}", path=str(path), format="tflite", precision=precision,
                    inputs=ins, outputs=outs, converter="onnx2tflite (onnx2tf)",
                    tool_versions=versions("onnx2tf", "tensorflow", "ai-edge-litert"))


def _quant(detail) -> dict | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    return {"scale": float(scale), "zero_point": int(zero)} if scale else None
