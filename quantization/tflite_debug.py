"""The TFLite int8 route's per-layer error and float fallback, through TensorFlow's QuantizationDebugger.

The int8 TFLite files are made by onnx2tf: it writes a SavedModel, then runs
``TFLiteConverter.from_saved_model`` with ``Optimize.DEFAULT`` and our calibration images. This
module repeats that conversion under ``tf.lite.experimental.QuantizationDebugger``, which
calibrates once and then:

* runs a debug model where every quantized op is checked against its float twin on the same
  (dequantized) inputs, so each layer's *own* int8 error: its SQNR, cosine and steps per std;
* re-quantizes the calibrated model with chosen ops left in float (``denylisted_nodes``: the
  ops' output tensor names) in seconds, without calibrating again.

TensorFlow runs in a child process (``python -m quantization.tflite_debug SPEC.json``), as for
onnx2tf: it stays out of the caller's process, which holds torch. Two modes:

* ``debug``: per-layer statistics on calibration images; float, int8 and per-candidate
  fallback outputs on evaluation images (``.npy``); the calibrated model for later;
* ``quantize``: a calibrated model + a denylist -> a ``.tflite`` file (and its outputs).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError


# --- parent side -----------------------------------------------------------------------------
def run_child(spec: dict, workdir: Path, timeout: int = 1800) -> dict:
    """Run one mode in a child process; returns what it wrote in ``result.json``."""
    from converters.common import child_error_lines, run_tensorflow_child

    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"spec-{spec['mode']}.json"
    spec_path.write_text(json.dumps(spec))
    proc = run_tensorflow_child([sys.executable, "-m", "quantization.tflite_debug", str(spec_path)],
                                Path(__file__).resolve().parents[1], timeout)
    result = workdir / f"result-{spec['mode']}.json"
    if proc.returncode != 0 or not result.exists():
        raise EdgeDermError(f"TFLite quantization debugger failed: {' / '.join(child_error_lines(proc, 2)) or 'no output'}")
    return json.loads(result.read_text())


def short_name(tensor: str) -> str:
    """A readable layer label from a TF tensor name (``a/b/conv;c/d;e`` -> ``b/conv``)."""
    first = tensor.split(";")[0]
    parts = [p for p in first.split("/") if p and p not in ("model", "StatefulPartitionedCall")]
    return "/".join(parts[-2:]) or tensor


# --- child side (TensorFlow) -------------------------------------------------------------------
def _pair(f, q, scale, zero_point):
    """(float reference, dequantized int8) of one NumericVerify'd tensor, flat float64."""
    return f.astype(np.float64).ravel(), (q.astype(np.float64).ravel() - zero_point) * scale


def _signal(f, q, s, z):
    return float(np.mean(_pair(f, q, s, z)[0] ** 2))


def _noise(f, q, s, z):
    ref, deq = _pair(f, q, s, z)
    return float(np.mean((ref - deq) ** 2))


def _cosine(f, q, s, z):
    from edgederm.tensors import cosine

    return cosine(*_pair(f, q, s, z))


def _std(f, q, s, z):
    return float(np.std(f))


def _channel_sqnr(f, q, s, z):
    """Median over output channels (last axis) of the channel's SQNR, dB: an outlier channel that
    stretches the per-tensor range hides in the whole-tensor figure (its power dominates) but
    shows here, as the other channels round away."""
    ref = f.astype(np.float64).reshape(-1, f.shape[-1])
    deq = (q.astype(np.float64).reshape(-1, q.shape[-1]) - z) * s
    signal, noise = (ref ** 2).sum(0), ((ref - deq) ** 2).sum(0)
    live = signal > 0
    if not live.any():
        return float("nan")
    return float(np.median(10 * np.log10(signal[live] / np.maximum(noise[live], 1e-30))))


def _interpreter_outputs(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=model_bytes, num_threads=os.cpu_count() or 1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ys = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i:i + 1].astype(inp["dtype"]))
        interp.invoke()
        ys.append(interp.get_tensor(out["index"]).copy())
    y = np.concatenate(ys).astype(np.float32)
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y  # NHWC masks -> the reference NCHW


def _debug(spec: dict, work: Path) -> dict:
    import csv
    import io

    import tensorflow as tf

    calib = np.load(spec["calibration"])
    stat = calib[:spec["stat_images"]]
    converter = tf.lite.TFLiteConverter.from_saved_model(spec["saved_model"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # onnx2tf's -oiqt settings
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.SELECT_TF_OPS]
    converter._experimental_disable_per_channel = spec.get("per_tensor", False)
    converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={
        "signal": _signal, "noise": _noise, "cos": _cosine, "std": _std, "chan": _channel_sqnr})
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([stat[i:i + 1]] for i in range(len(stat))), debug_options=options)
    # Built from a converter, the debugger's interpreter does not preserve intermediate tensors
    # (its model-file path does), so the float twins it compares would be recycled buffers (zeros,
    # measured): rebuild it preserving them.
    debugger._quant_interpreter = tf.lite.Interpreter(model_content=debugger.quant_model,
                                                      experimental_preserve_all_tensors=True)
    debugger._initialize_stats()
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    layers = []
    for row in csv.DictReader(buf):
        signal, noise, scale = float(row["signal"]), float(row["noise"]), float(row["scale"])
        layers.append({"tensor": row["tensor_name"], "op": row["op_name"],
                       "own_sqnr_db": _db(signal, noise),
                       "own_cosine": float(row["cos"]), "channel_sqnr_db": float(row["chan"]), "scale": scale,
                       "steps_per_std": float(row["std"]) / max(scale, 1e-30)})
    layers.sort(key=lambda r: r["own_sqnr_db"])
    consumers = _consumers(debugger.calibrated_model)
    for r in layers:  # a consumer left in int8 would quantize the kept tensor again, with the same range
        r["fallback"] = list(dict.fromkeys([r["tensor"], *consumers.get(r["tensor"], [])]))
    calibrated = work / "calibrated.tflite"
    calibrated.write_bytes(debugger.calibrated_model)
    result = {"layers": layers, "calibrated": str(calibrated), "outputs": {}}
    if spec.get("eval"):
        x = np.load(spec["eval"])
        float_model = tf.lite.TFLiteConverter.from_saved_model(spec["saved_model"]).convert()
        for label, model in [("float", float_model), ("int8", debugger.get_nondebug_quantized_model())]:
            np.save(work / f"out-{label}.npy", _interpreter_outputs(model, x))
            result["outputs"][label] = str(work / f"out-{label}.npy")
        per_tensor = spec.get("per_tensor", False)
        for i, layer in enumerate(_candidates(layers, spec.get("fallback", 0))):
            model = _requantize(debugger.calibrated_model, layer["fallback"], per_tensor)
            np.save(work / f"out-fallback{i}.npy", _interpreter_outputs(model, x))
            result["outputs"][layer["tensor"]] = str(work / f"out-fallback{i}.npy")
    return result


def _candidates(layers: list[dict], k: int) -> list[dict]:
    """``k`` layers to try in float, in turn from the worst own SQNR and the worst median-channel SQNR."""
    by_channel = sorted(layers, key=lambda r: r["channel_sqnr_db"] if math.isfinite(r["channel_sqnr_db"]) else math.inf)
    out: dict[str, dict] = {}
    for a, b in zip(layers, by_channel):
        for r in (a, b):
            if len(out) < k:
                out.setdefault(r["tensor"], r)
    return list(out.values())


def _db(signal: float, noise: float) -> float:
    """SQNR in dB; +inf for an op that adds no error (e.g. fed all-zero inputs), -inf for pure noise."""
    if noise <= 0:
        return math.inf
    return -math.inf if signal <= 0 else 10 * math.log10(signal / noise)


def _consumers(model_bytes: bytes) -> dict[str, list[str]]:
    """{tensor name: output tensor names of the ops that read it} of a TFLite model."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=model_bytes)
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    out: dict[str, list[str]] = {}
    for op in interp._get_ops_details():  # the public API lists tensors, not the graph's edges
        produced = [names[int(t)] for t in op["outputs"] if int(t) in names]
        for t in op["inputs"]:
            if int(t) in names:
                out.setdefault(names[int(t)], []).extend(produced)
    return out


def _requantize(calibrated: bytes, denylist: list[str], per_tensor: bool = False) -> bytes:
    # What QuantizationDebugger.get_nondebug_quantized_model() calls, without a second calibration.
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(calibrated, disable_per_channel=per_tensor, fully_quantize=False,
                                 enable_numeric_verify=False, denylisted_nodes=list(denylist) or None)


def _quantize(spec: dict, work: Path) -> dict:
    model = _requantize(Path(spec["calibrated"]).read_bytes(), spec["denylist"], spec.get("per_tensor", False))
    target = Path(spec["target"])
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(model)
    os.replace(tmp, target)
    result = {"target": str(target), "outputs": {}}
    if spec.get("eval"):
        np.save(work / "out-quantize.npy", _interpreter_outputs(model, np.load(spec["eval"])))
        result["outputs"]["quantized"] = str(work / "out-quantize.npy")
    return result


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    work = spec_path.parent
    result = (_debug if spec["mode"] == "debug" else _quantize)(spec, work)
    (work / f"result-{spec['mode']}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
