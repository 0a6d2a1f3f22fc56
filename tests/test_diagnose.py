"""Quantization diagnosis, float fallback, the escalation policy and QAT."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgederm.errors import EdgeDermError
from quantization.escalation import BudgetNotMet, Rung, Trial, escalate


# --- tiny hand-made ONNX classifier ------------------------------------------------------------
def _tiny_onnx(path, outlier: float = 1.0, seed: int = 0):
    """input [1,3,8,8] -> conv1 (3->4, 1x1) -> conv2 (4->5, 1x1) -> GAP -> flatten -> logits [1,5].

    ``outlier`` scales conv1's channel 0, which conv2 ignores (zero weights): it stretches the
    int8 range of conv1's output so the channels that matter round away, without changing
    the float model's logits.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32)
    w1[0] *= outlier
    w2 = rng.normal(0, 1.0, (5, 4, 1, 1)).astype(np.float32)
    w2[:, 0] = 0.0
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(4, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(5, np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["t1"], name="conv1"),
             helper.make_node("Conv", ["t1", "w2", "b2"], ["t2"], name="conv2"),
             helper.make_node("GlobalAveragePool", ["t2"], ["t3"], name="gap"),
             helper.make_node("Flatten", ["t3"], ["logits"], name="flatten")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w1, w2


def _inputs(n: int, seed: int = 1) -> np.ndarray:
    # Per-image offsets make the logits differ from image to image (GAP of 1x1 convs is linear in the mean).
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, (n, 3, 8, 8)) + rng.normal(0, 1.5, (n, 3, 1, 1))).astype(np.float32)


def _uint8_qparams(lo: float, hi: float) -> tuple[float, int]:
    """onnxruntime's asymmetric QUInt8 parameters for a range (the range always includes 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    return scale, int(round(-lo / scale))


def test_table_is_sorted_and_sqnr_matches_a_hand_computation(tmp_path):
    import onnx

    from quantization.onnx_debug import layer_errors, ort_quantize
    from quantization.onnx import OrtStaticConfig

    w1, _ = _tiny_onnx(tmp_path / "f.onnx")
    x = _inputs(16)
    # MinMax ranges: the hand computation below reproduces that method (the default is Percentile).
    q = ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", x, OrtStaticConfig(preprocess=False, calibrate_method="MinMax"))
    layers = layer_errors(onnx.load(str(tmp_path / "f.onnx")), onnx.load(str(q)), x)

    own = [e.own_sqnr_db for e in layers]
    assert own == sorted(own), "worst (lowest own SQNR) first"
    assert {e.tensor for e in layers} >= {"input", "t1", "t2"}

    # conv1's output by hand: 1x1 conv = channel mixing; MinMax range over the calibration images;
    # quantize with round-half-even and clip to 0..255; SQNR = 20 log10(||x|| / ||x - x̂||).
    t1 = np.einsum("oc,nchw->nohw", w1[:, :, 0, 0], x)
    scale, zp = _uint8_qparams(float(t1.min()), float(t1.max()))
    t1_hat = (np.clip(np.round(t1 / scale) + zp, 0, 255) - zp) * scale
    hand = 20 * math.log10(np.linalg.norm(t1) / np.linalg.norm(t1 - t1_hat))
    row = next(e for e in layers if e.tensor == "t1")
    assert row.layer == "conv1" and row.op_type == "Conv"
    assert row.scale == pytest.approx(scale, rel=1e-5)
    assert row.own_sqnr_db == pytest.approx(hand, abs=0.05)
    assert row.own_cosine == pytest.approx(float(t1.ravel() @ t1_hat.ravel() / np.linalg.norm(t1) / np.linalg.norm(t1_hat)), abs=1e-6)
    assert 25 < hand < 60  # a healthy 8-bit tensor: the check is not vacuous
    assert row.fallback_nodes == ["conv1", "conv2"]  # the producer and the consumer that would re-quantize it


def test_float_fallback_of_a_destroyed_layer_recovers_agreement(tmp_path):
    from quantization.diagnose import DiagnoseConfig, diagnose_onnx
    from quantization.onnx import OrtStaticConfig

    _tiny_onnx(tmp_path / "f.onnx", outlier=3000.0)
    calib, val = _inputs(32, seed=1), _inputs(64, seed=2)
    from quantization.onnx_debug import run_onnx

    targets = run_onnx(tmp_path / "f.onnx", val).argmax(1)  # the float model is right by construction
    diag = diagnose_onnx(tmp_path / "f.onnx", calib, val, targets, "classification",
                         DiagnoseConfig(fallback=3, stat_images=16, ort=OrtStaticConfig(preprocess=False)))
    t1 = next(e for e in diag.layers if e.tensor == "t1")
    assert t1.channel_sqnr_db == min(e.channel_sqnr_db for e in diag.layers)  # the outlier shows per channel
    assert t1.channel_sqnr_db < 10
    assert diag.int8_figures["top1_agreement"] < 0.7, "the outlier must actually break plain int8"
    best = diag.fallbacks[0]
    assert best.nodes == ["conv1", "conv2"]
    assert best.agreement >= 0.95 and best.agreement_gain > 0.3
    assert best.metric_gain > 0.2
    assert diag.sensitive_nodes(1) == ["conv1", "conv2"]
    rows = diag.fallback_rows()
    assert rows[0]["kept in float"].startswith("(nothing") and rows[-1]["kept in float"].startswith("(everything")


def test_plot_is_written_headless(tmp_path):
    from quantization.diagnose import DiagnoseConfig, diagnose_onnx
    from quantization.diagnosis_plot import plot
    from quantization.onnx import OrtStaticConfig

    _tiny_onnx(tmp_path / "f.onnx")
    x = _inputs(8)
    diag = diagnose_onnx(tmp_path / "f.onnx", x, x, np.zeros(8, np.int64), "classification",
                         DiagnoseConfig(fallback=0, ort=OrtStaticConfig(preprocess=False)))
    out = plot(diag, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".p.png.tmp-*"))


def test_greedy_combination_keeps_only_layers_that_help_together():
    from quantization.diagnosis import Diagnosis, Fallback
    from quantization.fallback_search import greedy_combination

    figs = {"top1_agreement": 0.80, "balanced_accuracy_artifact": 0.50}
    diag = Diagnosis("onnx", "m", "classification", 8, 8, [], figs, figs)
    diag.fallbacks = [Fallback("a", ["a"], 0.85, 0.55, 0.05, 0.05), Fallback("b", ["b"], 0.83, 0.53, 0.03, 0.03),
                      Fallback("c", ["c", "a"], 0.82, 0.52, 0.02, 0.02), Fallback("d", ["d"], 0.79, 0.49, -0.01, -0.01)]
    together = {("a", "b"): 0.51, ("a", "c"): 0.58}  # b hurts next to a; c adds; d never helped alone
    tried = []

    def try_nodes(nodes):
        tried.append(tuple(nodes))
        m = together[tuple(nodes)]
        return Fallback("", list(nodes), 0.85, m, 0.0, m - 0.50)

    best = greedy_combination(diag, try_nodes)
    assert tried == [("a", "b"), ("a", "c")]  # each helpful layer once, in order of single gain; d not tried
    assert best.nodes == ["a", "c"] and best.layer == "a + c" and best.metric == 0.58
    diag.combined = best
    assert diag.recommended() is best
    diag.combined = None
    assert diag.recommended().layer == "a"  # no combination: the best single


# --- the TFLite route (TensorFlow's QuantizationDebugger, in a child process) --------------------------
_SAVED_MODEL = r"""
import sys, numpy as np, tensorflow as tf
w1, w2 = np.load(sys.argv[2]), np.load(sys.argv[3])
class Tiny(tf.Module):
    def __init__(self):
        self.w1, self.w2 = tf.Variable(w1), tf.Variable(w2)
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="input")])
    def __call__(self, x):
        t1 = tf.nn.conv2d(x, self.w1, 1, "VALID", name="conv1")
        t2 = tf.nn.conv2d(t1, self.w2, 1, "VALID", name="conv2")
        return tf.reduce_mean(t2, axis=[1, 2])
m = Tiny()
tf.saved_model.save(m, sys.argv[1], signatures=m.__call__)
"""


def _tiny_saved_model(path, outlier: float):
    """The same tiny classifier as ``_tiny_onnx``, as a NHWC TensorFlow SavedModel (what onnx2tf writes)."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (4, 3)).astype(np.float32)
    w1[0] *= outlier
    w2 = rng.normal(0, 1.0, (5, 4)).astype(np.float32)
    w2[:, 0] = 0.0
    np.save(path.parent / "w1.npy", w1.T[None, None])  # HWIO
    np.save(path.parent / "w2.npy", w2.T[None, None])
    subprocess.run([sys.executable, "-c", _SAVED_MODEL, str(path), str(path.parent / "w1.npy"),
                    str(path.parent / "w2.npy")], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    return path


def _float_logits(x_nhwc, outlier):
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (4, 3)).astype(np.float32)
    w1[0] *= outlier
    w2 = rng.normal(0, 1.0, (5, 4)).astype(np.float32)
    w2[:, 0] = 0.0
    return np.einsum("nhwc,oc->nhwo", np.einsum("nhwc,oc->nhwo", x_nhwc, w1), w2).mean((1, 2))


@pytest.mark.slow
@pytest.mark.tflite
def test_tflite_diagnosis_finds_the_destroyed_layer_and_its_fallback_recovers(tmp_path):
    from quantization.diagnose import DiagnoseConfig, diagnose_tflite

    saved = _tiny_saved_model(tmp_path / "sm", outlier=3000.0)
    calib, val = _inputs(32, seed=1).transpose(0, 2, 3, 1), _inputs(64, seed=2).transpose(0, 2, 3, 1)
    targets = _float_logits(val, 3000.0).argmax(1)
    diag = diagnose_tflite(saved, np.ascontiguousarray(calib), np.ascontiguousarray(val), targets, "classification",
                           DiagnoseConfig(fallback=3, stat_images=16), work=tmp_path / "work")
    assert diag.format == "tflite" and diag.layers
    own = [e.own_sqnr_db for e in diag.layers]
    assert own == sorted(own), "worst own SQNR first"
    # conv1's outlier channel dominates its power, so its own SQNR looks healthy; the median
    # channel shows the other channels rounded away (as chan SQNR does on the ONNX route)
    worst = min(diag.layers, key=lambda e: e.channel_sqnr_db if math.isfinite(e.channel_sqnr_db) else math.inf)
    assert worst.op_type == "CONV_2D" and "conv1" in worst.tensor, [(e.layer, e.channel_sqnr_db) for e in diag.layers]
    assert worst.channel_sqnr_db < 10 < worst.own_sqnr_db
    assert len(worst.fallback_nodes) == 2 and "conv2" in worst.fallback_nodes[1]  # producer + consumer
    assert diag.float_figures["top1_agreement"] == 1.0
    assert diag.int8_figures["top1_agreement"] < 0.7, "the outlier must actually break plain int8"
    best = diag.fallbacks[0]
    assert best.nodes == worst.fallback_nodes and best.agreement >= 0.95 and best.agreement_gain > 0.3
    assert diag.settings["calibrated"] and (tmp_path / "work" / "calibrated.tflite").exists()
    rows = diag.layer_rows()
    assert rows[0]["model SQNR dB"] == "-" and rows[0]["own SQNR dB"] != "-"


# --- the escalation policy with fake rungs --------------------------------------------------------
def _rung(name, metric, log, made=None):
    def make():
        log.append(name)
        if isinstance(metric, Exception):
            raise metric
        return Trial("", artifact=f"a_{name}", metric=metric, latency_ms=1.0, size_bytes=100, handle=name)
    return Rung(name, make)


def test_policy_stops_at_the_first_rung_within_budget():
    log, discarded = [], []
    rungs = [_rung("int8", 0.60, log), _rung("fallback", 0.645, log), _rung("int16", 0.65, log), _rung("fp16", 0.66, log)]
    result = escalate(rungs, baseline=0.65, max_drop_pt=0.5, discard=lambda t: discarded.append(t.handle))
    assert log == ["int8", "fallback"]  # cheapest first; nothing after the chosen rung is built
    assert result.chosen.rung == "fallback" and result.chosen.drop_pt == pytest.approx(0.5)
    assert [t.verdict for t in result.trials] == ["over budget", "chosen", "not tried", "not tried"]
    assert discarded == ["int8"]
    assert "int8: over budget" in result.why


def test_policy_escalates_past_errors_skips_and_failed_gates():
    log = []
    rungs = [_rung("int8", 0.65, log), Rung("fallback", lambda: Trial("", verdict="skipped", detail="n/a")),
             _rung("int16", EdgeDermError("int16 broke"), log), _rung("qat", 0.649, log), _rung("fp16", 0.65, log)]
    result = escalate(rungs, 0.65, 0.5, accept=lambda t: (t.rung != "int8", "int8: top1_agreement 0.8 fails"))
    assert [t.verdict for t in result.trials] == ["failed gate", "skipped", "error", "chosen", "not tried"]
    assert result.trials[2].detail == "int16 broke"
    assert result.chosen.rung == "qat"


def test_unreachable_budget_raises_with_the_best_reached():
    log, discarded = [], []
    rungs = [_rung("int8", 0.50, log), _rung("int16", 0.62, log), _rung("fp16", 0.60, log)]
    with pytest.raises(BudgetNotMet) as err:
        escalate(rungs, 0.65, 0.5, metric_name="balanced_accuracy", discard=lambda t: discarded.append(t.handle))
    assert log == ["int8", "int16", "fp16"]
    assert discarded == ["int8", "int16", "fp16"]  # nothing is left behind
    assert "best reached: int16" in str(err.value) and "+3.00 pt" in str(err.value)
    assert err.value.result.chosen is None and len(err.value.result.rows()) == 3
    with pytest.raises(EdgeDermError, match="--max-drop"):
        escalate(rungs, 0.65, -1)


# --- QAT on the tiny classifier ------------------------------------------------------------------------
@pytest.mark.slow
def test_qat_runs_a_few_steps_and_exports_qdq_onnx(tiny_classifier, synthetic_root, tmp_path):
    import onnx

    from edgederm.checkpoint import load_checkpoint
    from edgederm.export import manifest_for
    from quantization.onnx_debug import run_onnx
    from quantization.qat import QATConfig, qat

    model, card = load_checkpoint(tiny_classifier)
    manifest = manifest_for(card, tiny_classifier, "tiny")
    result = qat(model, manifest, tmp_path / "qat.onnx",
                 QATConfig(steps=2, batch_size=4, train_images=16, calibration_images=8), data_root=synthetic_root)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    ops = {n.op_type for n in onnx.load(str(result.onnx_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    h, w = card.preprocessing.input_size
    y = run_onnx(result.onnx_path, np.random.default_rng(0).normal(0, 1, (2, 3, h, w)).astype(np.float32))
    assert y.shape == (2, len(card.classes)) and np.isfinite(y).all()


def test_qat_float_model_carries_the_tuned_weights(tiny_classifier, synthetic_root):
    import torch

    from edgederm.checkpoint import load_checkpoint
    from edgederm.export import manifest_for
    from quantization.qat import QATConfig, qat_float_model

    model, card = load_checkpoint(tiny_classifier)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    manifest = manifest_for(card, tiny_classifier, "tiny")
    tuned, result = qat_float_model(model, manifest, QATConfig(steps=3, batch_size=4, lr=1e-3, train_images=16,
                                                               calibration_images=8), data_root=synthetic_root)
    assert len(result.losses) == 3
    after = tuned.state_dict()
    assert set(after) == set(before), "the same float architecture, no quantizer left in it"
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert changed, "QAT's fine-tuning must reach the float weights"
    h, w = card.preprocessing.input_size
    with torch.no_grad():
        y = tuned(torch.randn(2, 3, h, w))
    assert y.shape == (2, len(card.classes)) and torch.isfinite(y).all()
