"""Why int8 lost accuracy: per-layer quantization error, and which float fallbacks buy it back.

Two measurements, both on real images:

1. **Per-layer error** on calibration images. For every activation tensor that int8 quantizes,
   the float model's value ``x`` is compared with

   * ``own``: ``x`` rounded and clipped with *this tensor's* int8 scale and zero point
     (``dequant(quant(x))``): the error this one quantizer adds, independent of the layers
     before it. Layers are ranked by this figure, worst (lowest SQNR) first;
   * ``model``: the int8 model's dequantized value at the same tensor: the error accumulated
     up to there (what ``onnxruntime.quantization.qdq_loss_debug`` calls ``xmodel_err``).

   SQNR is ``20 log10(||x|| / ||x - y||)`` over all images (dB; higher is better), cosine is
   ``x.y / (||x|| ||y||)``. ``steps/σ`` is the activation's standard deviation in int8 steps:
   a handful means one outlier channel stretched the range and the rest of the signal
   lives in a few levels.
2. **Float fallback gain** on the verification (test) images: each of the worst layers is
   re-quantized with its tensor kept in float (the producing node *and* its consumers
   excluded, since a consumer would otherwise quantize the tensor again) and the int8
   model's agreement with the float model and its task metric are measured against plain
   int8. Calibration ranges are computed once and reused for every re-quantization.

ONNX goes through ``onnxruntime.quantization`` in the QDQ form of the ``int8:onnx`` scheme
(same types, range method and pre-processing, so node names match its ``nodes_to_exclude``),
which shows every quantized tensor. TFLite goes through TensorFlow's ``QuantizationDebugger`` on
the SavedModel onnx2tf writes (the converter settings of ``int8:tflite``; ``tflite_debug``): there
``own`` is the op's error on its own dequantized inputs (weights and output rounding included),
the accumulated ``model`` figures are not measured ("-"), and a fallback keeps the op's output in
float (``denylisted_nodes``).

The pieces: ``diagnosis`` (the results and their tables), ``sqnr`` (the error figures),
``onnx_debug`` (the ONNX route's measurements), ``tflite_debug`` (TensorFlow's debugger, in a
child process), ``fallback_search`` (candidates and the greedy combination) and
``diagnosis_plot``. This module runs them on an fp32 file or an export folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log
from edgederm.tasks import task_of
from quantization.diagnosis import DiagnoseConfig, Diagnosis, LayerError
from quantization.fallback_search import fallback_candidates, greedy_combination, search_fallbacks
from quantization.onnx_debug import layer_errors, ort_quantize, prepare_float_model, run_onnx
from quantization.tflite_debug import run_child, short_name


def parity_figures(task: str, ref: np.ndarray, got: np.ndarray, targets: np.ndarray) -> dict:
    """The task's parity figures of ``got`` (float outputs) against the float model's ``ref``."""
    return task_of(task).parity(ref, got.astype(np.float32), targets, False)


def diagnose_onnx(float_path: str | os.PathLike, calib_x: np.ndarray, eval_x: np.ndarray, eval_targets: np.ndarray,
                  task: str, config: DiagnoseConfig = DiagnoseConfig(), model_name: str = "",
                  threads: int | None = None) -> Diagnosis:
    """The diagnosis of an fp32 ONNX file (see the module docstring).

    ``calib_x`` and ``eval_x`` are normalised float32 NCHW batches; ``eval_targets`` the
    labels (classifier) or 0/1 masks ``[N, H, W]`` (segmenter).
    """
    import onnx

    with tempfile.TemporaryDirectory(prefix="edgederm-diagnose-") as work:
        work = Path(work)
        float_model, f_path = prepare_float_model(Path(float_path), work, config.ort)
        cache = work / "calibration.json"  # ranges computed once, reused by every re-quantization
        log(f"diagnose: int8 calibration on {len(calib_x)} images ...")
        q_path = ort_quantize(f_path, work / "int8.onnx", calib_x, config.ort, cache=cache)
        layers = layer_errors(float_model, onnx.load(str(q_path)), calib_x[:config.stat_images], threads)

        ref = run_onnx(f_path, eval_x, threads)
        int8 = parity_figures(task, ref, run_onnx(q_path, eval_x, threads), eval_targets)
        diag = Diagnosis("onnx", model_name or Path(float_path).stem, task, min(len(calib_x), config.stat_images),
                         len(eval_x), layers, parity_figures(task, ref, ref, eval_targets), int8,
                         settings={"quantizer": "onnxruntime quantize_static, QDQ form of int8:onnx",
                                   **asdict(config.ort), "calibration_images": len(calib_x)})

        def try_nodes(nodes: list[str], label: str = ""):
            path = ort_quantize(f_path, work / "fallback.onnx", None, config.ort, exclude=nodes, cache=cache)
            return diag.fallback_from(label, nodes, parity_figures(task, ref, run_onnx(path, eval_x, threads),
                                                                   eval_targets))

        search_fallbacks(diag, fallback_candidates(layers, config.fallback), try_nodes)
    return diag


def tflite_layer(row: dict) -> LayerError:
    """A layer row of ``tflite_debug``: own error only (the accumulated figures are not measured)."""
    nan = float("nan")
    return LayerError(short_name(row["tensor"]), row["op"], row["tensor"], row["own_sqnr_db"], row["own_cosine"],
                      row["channel_sqnr_db"], nan, nan, nan, row["scale"], row["steps_per_std"],
                      fallback_nodes=row["fallback"])


def diagnose_tflite(saved_model: str | os.PathLike, calib_x: np.ndarray, eval_x: np.ndarray, eval_targets: np.ndarray,
                    task: str, config: DiagnoseConfig = DiagnoseConfig(), model_name: str = "",
                    work: str | os.PathLike | None = None) -> Diagnosis:
    """The diagnosis of the TFLite int8 route from onnx2tf's SavedModel (see the module docstring).

    ``calib_x`` and ``eval_x`` are normalised float32 **NHWC** batches. With ``work`` the
    calibrated model stays there (``diag.settings["calibrated"]``) so that a chosen fallback
    can be re-quantized without calibrating again (``tflite_debug``'s ``quantize`` mode).
    """
    with tempfile.TemporaryDirectory(prefix="edgederm-diagnose-") as tmp:
        work = Path(work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        np.save(work / "calibration.npy", np.ascontiguousarray(calib_x, dtype=np.float32))
        np.save(work / "eval.npy", np.ascontiguousarray(eval_x, dtype=np.float32))
        log(f"diagnose: TFLite int8 calibration on {len(calib_x)} images, per-layer debugger on "
            f"{min(len(calib_x), config.stat_images)} ...")
        res = run_child({"mode": "debug", "saved_model": str(saved_model), "calibration": str(work / "calibration.npy"),
                         "stat_images": config.stat_images, "eval": str(work / "eval.npy"),
                         "fallback": config.fallback}, work)
        layers = [tflite_layer(r) for r in res["layers"]]
        outputs = {k: np.load(v) for k, v in res["outputs"].items()}
        ref, int8 = outputs.pop("float"), outputs.pop("int8")  # the rest: one per fallback the child measured
        diag = Diagnosis("tflite", model_name or Path(saved_model).name, task, min(len(calib_x), config.stat_images),
                         len(eval_x), layers, parity_figures(task, ref, ref, eval_targets),
                         parity_figures(task, ref, int8, eval_targets),
                         settings={"quantizer": "TFLiteConverter (Optimize.DEFAULT, onnx2tf's SavedModel) under "
                                                "tf.lite.experimental.QuantizationDebugger",
                                   "calibration_images": len(calib_x),
                                   "calibrated": res["calibrated"] if work != Path(tmp) else None})
        by_tensor = {e.tensor: e for e in layers}
        for tensor, out in outputs.items():
            diag.fallbacks.append(diag.fallback_from(short_name(tensor), by_tensor[tensor].fallback_nodes,
                                                     parity_figures(task, ref, out, eval_targets)))
        diag.rank_fallbacks()

        def try_nodes(nodes: list[str], label: str = ""):
            out = run_child({"mode": "quantize", "calibrated": res["calibrated"], "denylist": nodes,
                             "target": str(work / "combined.tflite"), "eval": str(work / "eval.npy")}, work)
            return diag.fallback_from(label, nodes, parity_figures(task, ref, np.load(out["outputs"]["quantized"]),
                                                                   eval_targets))

        diag.combined = greedy_combination(diag, try_nodes)
    return diag


# --- export folders ----------------------------------------------------------------------------------
def diagnose_folder(folder: str | os.PathLike, config: DiagnoseConfig = DiagnoseConfig(), data_root=None,
                    calibration=None, threads: int | None = None) -> Diagnosis:
    """Diagnose the fp32 artifact of ``config.format`` in an export folder, on the model's own data."""
    from edgederm.manifest import Manifest
    from edgederm.verify import verification_arrays
    from quantization.calibration import CalibrationConfig, load_calibration

    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    onnx_art = next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    if onnx_art is None or not (folder / onnx_art.path).exists():
        raise EdgeDermError(f"{folder} has no fp32 ONNX artifact to diagnose: export with "
                            "edgederm export CHECKPOINT --to onnx (TFLite is diagnosed from it too)")
    if config.format not in ("onnx", "tflite"):
        raise EdgeDermError(f"--format {config.format!r}: diagnose handles onnx and tflite")
    calib = load_calibration(manifest, calibration or CalibrationConfig(size=config.calibration_images), data_root)
    images, targets = verification_arrays(manifest, data_root, config.eval_images)
    prep = manifest.preprocessing
    if config.format == "onnx":
        return diagnose_onnx(folder / onnx_art.path, calib.inputs("NCHW"),
                             prep.replace(layout="NCHW").normalize(images), targets, manifest.task, config,
                             manifest.model["name"], threads)
    from converters.onnx2tflite import produce

    with tempfile.TemporaryDirectory(prefix="edgederm-diagnose-") as work:
        log("diagnose: onnx2tf SavedModel of the fp32 ONNX file ...")
        produced = produce(folder / onnx_art.path, Path(work), ["int8_floatio"], calibration=calib.inputs("NHWC"),
                           calibration_images=calib.images)
        return diagnose_tflite(produced["int8_floatio"].parent, calib.inputs("NHWC"),
                               prep.replace(layout="NHWC").normalize(images), targets, manifest.task, config,
                               manifest.model["name"])
