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
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log, progress
from quantization.calibration import BatchReader

EPS = float(np.finfo(np.float32).eps)


# --- configuration and results -------------------------------------------------------------------
def _default_ort():
    from quantization.onnx import OrtStaticConfig

    return OrtStaticConfig()


@dataclass(frozen=True)
class DiagnoseConfig:
    """What ``edgederm diagnose`` measures.

    Attributes:
        format: ``onnx`` or ``tflite``.
        calibration_images: train images that set the int8 ranges.
        stat_images: how many of those the per-layer statistics run on.
        eval_images: verification (test) images for the fallback gains.
        top: layers shown in the table.
        fallback: how many of the worst layers are re-quantized with a float fallback (0: none).
        ort: ``quantization.onnx.OrtStaticConfig`` of the ``int8:onnx`` scheme being diagnosed
            (types, per-channel, range method, pre-processing); the diagnosis always uses its
            QDQ form, which has the same ranges and rounding and shows every quantized tensor.
    """

    format: str = "onnx"
    calibration_images: int = 64
    stat_images: int = 32
    eval_images: int = 128
    top: int = 10
    fallback: int = 5
    ort: object = field(default_factory=_default_ort)


@dataclass
class LayerError:
    layer: str  # the node producing the tensor ("<graph input>" for the input)
    op_type: str
    tensor: str
    own_sqnr_db: float
    own_cosine: float
    channel_sqnr_db: float  # own error, median channel (see _Stats.channel_sqnr_db)
    sqnr_db: float  # int8 model vs float model at this tensor
    cosine: float
    added_db: float  # how much this layer lowered the model SQNR (worst input's minus its own)
    scale: float
    steps_per_std: float
    weight_sqnr_db: float | None = None
    fallback_nodes: list[str] = field(default_factory=list)


@dataclass
class Fallback:
    layer: str
    nodes: list[str]
    agreement: float  # top-1 agreement (classifier) or mask Dice (segmenter) with the float model
    metric: float  # balanced accuracy or Dice against the truth
    agreement_gain: float = 0.0
    metric_gain: float = 0.0


@dataclass
class Diagnosis:
    format: str
    model: str
    task: str
    stat_images: int
    eval_images: int
    layers: list[LayerError]  # worst first
    float_figures: dict
    int8_figures: dict
    fallbacks: list[Fallback] = field(default_factory=list)  # largest gain first
    combined: Fallback | None = None  # the greedy combination of helpful layers (``greedy_combination``)
    settings: dict = field(default_factory=dict)

    @property
    def agreement_name(self) -> str:
        return "top1_agreement" if self.task == "classification" else "mask_dice_mean"

    @property
    def metric_name(self) -> str:
        return "balanced_accuracy" if self.task == "classification" else "dice"

    def sensitive_nodes(self, k: int | None = None) -> list[str]:
        """Nodes to keep in float: those of the fallbacks that helped, best first (deduplicated)."""
        chosen = [f for f in self.fallbacks if f.agreement_gain > 0 or f.metric_gain > 0][:k]
        return list(dict.fromkeys(n for f in chosen for n in f.nodes))

    def recommended(self) -> Fallback | None:
        """The measured fallback to build: the greedy combination, else the best single layer, if it
        is no worse than plain int8 on both figures and better on one."""
        candidates = ([self.combined] if self.combined else []) + self.fallbacks
        return next((f for f in candidates if _improves(f.metric_gain, f.agreement_gain)), None)

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_rows(self, top: int | None = None) -> list[dict]:
        def f(value, spec):  # "-" for what this format's route does not measure
            return "-" if value is None or not math.isfinite(value) else format(value, spec)

        rows = []
        for i, e in enumerate(self.layers[:top], 1):
            rows.append({"#": i, "layer": e.layer, "op": e.op_type, "own SQNR dB": f(e.own_sqnr_db, ".1f"),
                         "own cos": f(e.own_cosine, ".4f"), "chan SQNR dB": f(e.channel_sqnr_db, ".1f"),
                         "model SQNR dB": f(e.sqnr_db, ".1f"), "model cos": f(e.cosine, ".4f"),
                         "added dB": f(e.added_db, "+.1f"), "steps/σ": f(e.steps_per_std, ".1f"),
                         "weight SQNR dB": f(e.weight_sqnr_db, ".1f")})
        return rows

    def fallback_rows(self) -> list[dict]:
        agree = "top-1 agree" if self.task == "classification" else "mask Dice vs float"
        metric = "bal-acc" if self.task == "classification" else "Dice"
        rows = [{"kept in float": "(nothing: plain int8)", agree: f"{self.int8_figures[self.agreement_name]:.4f}",
                 "Δ agree": "", metric: f"{self.int8_figures[self._metric_key]:.4f}", f"Δ {metric} pt": "",
                 "nodes": 0}]
        for f in self.fallbacks + ([self.combined] if self.combined else []):
            label = f.layer if f is not self.combined else f"greedy: {f.layer}"
            rows.append({"kept in float": label, agree: f"{f.agreement:.4f}", "Δ agree": f"{f.agreement_gain:+.4f}",
                         metric: f"{f.metric:.4f}", f"Δ {metric} pt": f"{100 * f.metric_gain:+.2f}",
                         "nodes": len(f.nodes)})
        rows.append({"kept in float": "(everything: float model)", agree: "1.0000", "Δ agree": "",
                     metric: f"{self.float_figures[self._metric_key]:.4f}", f"Δ {metric} pt": "", "nodes": "all"})
        return rows

    @property
    def _metric_key(self) -> str:
        return "balanced_accuracy_artifact" if self.task == "classification" else "dice_artifact"


# --- numerics --------------------------------------------------------------------------------------
def sqnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """``20 log10(||x|| / ||x - y||)`` in dB (x the float reference)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    return 20 * math.log10(max(np.linalg.norm(x), EPS) / max(np.linalg.norm(x - y), EPS))


def fake_quant(x: np.ndarray, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """``(clip(round(x / s) + z) - z) * s``: round half to even, as QuantizeLinear does."""
    scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point, np.float64)
    if axis is not None and scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    q = np.clip(np.round(x / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)


class _Stats:
    """Running sums for SQNR and cosine over many images (no activation kept in memory)."""

    def __init__(self):
        self.xx = self.dd = self.yy = self.xy = 0.0
        self.sx = 0.0
        self.n = 0
        self.cxx = self.cdd = None  # per channel (axis 1)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if x.ndim >= 2:
            axes = tuple(i for i in range(x.ndim) if i != 1)
            d64 = x.astype(np.float64) - y
            cxx, cdd = np.square(x, dtype=np.float64).sum(axes), np.square(d64).sum(axes)
            self.cxx = cxx if self.cxx is None else self.cxx + cxx
            self.cdd = cdd if self.cdd is None else self.cdd + cdd
        x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        self.xx += float(x @ x)
        self.yy += float(y @ y)
        self.xy += float(x @ y)
        d = x - y
        self.dd += float(d @ d)
        self.sx += float(x.sum())
        self.n += x.size

    @property
    def sqnr_db(self) -> float:
        return 10 * math.log10(max(self.xx, EPS ** 2) / max(self.dd, EPS ** 2))

    @property
    def channel_sqnr_db(self) -> float:
        """Median over channels carrying signal of each channel's SQNR: one outlier channel that
        stretches a per-tensor range wipes out the others, which the tensor SQNR (dominated by the
        outlier's energy) hides."""
        if self.cxx is None:
            return self.sqnr_db
        live = self.cxx > 1e-12 * max(float(self.cxx.max()), EPS)
        if not live.any():
            return self.sqnr_db
        return float(np.median(10 * np.log10(self.cxx[live] / np.maximum(self.cdd[live], EPS ** 2))))

    @property
    def cosine(self) -> float:
        return self.xy / max(math.sqrt(self.xx * self.yy), EPS)

    @property
    def std(self) -> float:
        mean = self.sx / max(self.n, 1)
        return math.sqrt(max(self.xx / max(self.n, 1) - mean * mean, 0.0))


# --- ONNX ------------------------------------------------------------------------------------------
def name_nodes(model) -> None:
    """Give every unnamed node a stable name: fallbacks address nodes by name."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def ort_quantize(float_path: Path, out_path: Path, calib_x: np.ndarray | None, settings=None,
                 exclude: list[str] | tuple = (), cache: Path | None = None) -> Path:
    """QDQ int8 ONNX as the ``int8:onnx`` scheme makes it (``settings``: its ``OrtStaticConfig``), with
    ``exclude`` nodes left in float; ``cache`` keeps calibration ranges between calls."""
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    settings = settings or _default_ort()
    input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
    reader = None if calib_x is None else BatchReader(calib_x, input_name)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warnings on every call
    try:
        quantize_static(str(float_path), str(out_path), reader, quant_format=QuantFormat.QDQ,
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        activation_type=getattr(QuantType, settings.activation_type),
                        weight_type=getattr(QuantType, settings.weight_type),
                        nodes_to_exclude=list(exclude) or None,
                        calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},  # as int8:onnx
                        calibration_cache_path=None if cache is None else str(cache))
    finally:
        logging.getLogger().setLevel(level)
    return Path(out_path)


def _session(path_or_model, outputs: list[str] | None = None, threads: int | None = None):
    """An ORT session; ``outputs`` are extra tensors exposed as graph outputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path_or_model)) if not isinstance(path_or_model, onnx.ModelProto) else path_or_model
    if outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        have = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in have:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    # Graph optimisations fold QDQ pairs away; the debug run must see the tensors as the model defines them.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL if outputs else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_onnx(path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """First output for every item of ``x`` (batch 1 at a time: exports have static shapes)."""
    sess = _session(path, threads=threads)
    name = sess.get_inputs()[0].name
    out = sess.get_outputs()[0].name
    return np.concatenate([sess.run([out], {name: x[i:i + 1]})[0] for i in range(len(x))])


def _initializers(model) -> dict:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _const_value(model, inits: dict, name: str):
    if name in inits:
        return inits[name]
    for node in model.graph.node:  # quantizers sometimes emit Constant nodes
        if node.op_type == "Constant" and name in node.output:
            from onnx import numpy_helper

            return numpy_helper.to_array(node.attribute[0].t)
    return None


def qdq_tensors(qdq_model) -> dict[str, dict]:
    """For each activation quantized in a QDQ model: scale, zero point, int range and the dequantized name."""
    inits = _initializers(qdq_model)
    dq_of = {}
    for node in qdq_model.graph.node:
        if node.op_type == "DequantizeLinear":
            dq_of[node.input[0]] = node.output[0]
    found = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or node.input[0] in found:
            continue
        scale = _const_value(qdq_model, inits, node.input[1])
        zp = _const_value(qdq_model, inits, node.input[2]) if len(node.input) > 2 and node.input[2] else np.int8(0)
        if scale is None or zp is None or node.output[0] not in dq_of:
            continue
        info = np.iinfo(np.asarray(zp).dtype)
        found[node.input[0]] = {"scale": np.asarray(scale, np.float64), "zero_point": np.asarray(zp, np.int64),
                                "qmin": int(info.min), "qmax": int(info.max), "dequantized": dq_of[node.output[0]]}
    return found


def weight_errors(float_model, qdq_model) -> dict[str, float]:
    """Weight SQNR (dB) per node name: float initializer vs its dequantized int8 copy."""
    f_inits, q_inits = _initializers(float_model), _initializers(qdq_model)
    f_nodes = {n.name: n for n in float_model.graph.node}
    consumers: dict[str, list] = {}
    for n in qdq_model.graph.node:
        for i, t in enumerate(n.input):
            consumers.setdefault(t, []).append((n, i))
    out = {}
    for dq in qdq_model.graph.node:
        if dq.op_type != "DequantizeLinear" or dq.input[0] not in q_inits:
            continue
        w = q_inits[dq.input[0]]
        if w.dtype not in (np.int8, np.uint8):
            continue  # int32 biases
        scale = q_inits.get(dq.input[1])
        zp = q_inits.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros_like(scale, np.int64)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        if scale.size > 1:
            shape[axis] = -1
        deq = (w.astype(np.float64) - np.reshape(zp, shape)) * np.reshape(scale, shape)
        for node, idx in consumers.get(dq.output[0], []):
            f_node = f_nodes.get(node.name)
            if f_node is not None and idx < len(f_node.input) and f_node.input[idx] in f_inits:
                out[node.name] = sqnr_db(f_inits[f_node.input[idx]], deq)
    return out


def layer_errors(float_model, qdq_model, x: np.ndarray, threads: int | None = None) -> list[LayerError]:
    """Per quantized activation: own and accumulated SQNR/cosine over the images ``x`` (worst own first)."""
    tensors = qdq_tensors(qdq_model)
    producer, consumers, op_of = {}, {}, {}
    for n in float_model.graph.node:
        op_of[n.name] = n.op_type
        for t in n.output:
            producer[t] = n.name
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)
    graph_inputs = {i.name for i in float_model.graph.input}
    names = [t for t in tensors if t in producer or t in graph_inputs]
    if not names:
        raise EdgeDermError("the int8 model quantizes no activation of the float model: nothing to diagnose")
    f_sess = _session(float_model, names, threads)
    q_sess = _session(qdq_model, [tensors[t]["dequantized"] for t in names], threads)
    in_name = f_sess.get_inputs()[0].name
    own = {t: _Stats() for t in names}
    acc = {t: _Stats() for t in names}
    for i in progress(range(len(x)), desc="diagnose: per-layer statistics"):
        feed = {in_name: x[i:i + 1]}
        f_out = dict(zip(names, f_sess.run(names, feed)))
        q_out = dict(zip(names, q_sess.run([tensors[t]["dequantized"] for t in names], {q_sess.get_inputs()[0].name: x[i:i + 1]})))
        for t in names:
            q = tensors[t]
            fv = f_out[t]
            own[t].add(fv, fake_quant(fv, q["scale"], q["zero_point"], q["qmin"], q["qmax"], axis=1))
            acc[t].add(fv, q_out[t])
    w_err = weight_errors(float_model, qdq_model)
    inputs_of = {n.name: list(n.input) for n in float_model.graph.node}
    rows = []
    for t in names:
        node = producer.get(t)
        before = [acc[i].sqnr_db for i in inputs_of.get(node, []) if i in acc]
        scale = float(np.max(tensors[t]["scale"]))
        fallback = ([node] if node else []) + [c for c in consumers.get(t, []) if c != node]
        rows.append(LayerError(layer=node or "<graph input>", op_type=op_of.get(node, "input"), tensor=t,
                               own_sqnr_db=own[t].sqnr_db, own_cosine=own[t].cosine,
                               channel_sqnr_db=own[t].channel_sqnr_db, sqnr_db=acc[t].sqnr_db,
                               cosine=acc[t].cosine, added_db=(min(before) - acc[t].sqnr_db) if before else 0.0,
                               scale=scale, steps_per_std=own[t].std / max(scale, EPS),
                               weight_sqnr_db=w_err.get(node) if node else None,
                               fallback_nodes=list(dict.fromkeys(fallback))))
    rows.sort(key=lambda e: (e.own_sqnr_db, e.sqnr_db))
    return rows


def fallback_candidates(layers: list[LayerError], k: int) -> list[LayerError]:
    """The ``k`` layers to try in float, taken in turn from three rankings: worst own SQNR, worst
    median-channel SQNR (an outlier channel), largest added model error (a layer where error
    compounds, e.g. an SE gate or hard-swish). Each is a hypothesis; the measured gain decides.
    """
    by_added = sorted(layers, key=lambda e: -e.added_db)
    by_channel = sorted(layers, key=lambda e: e.channel_sqnr_db)
    out: dict[str, LayerError] = {}
    for a, b, c in zip(layers, by_channel, by_added):
        for e in (a, b, c):
            if e.fallback_nodes and len(out) < k:
                out.setdefault(e.tensor, e)
        if len(out) >= k:
            break
    return list(out.values())


def _figures(task: str, ref: np.ndarray, got: np.ndarray, targets: np.ndarray) -> dict:
    from edgederm.verify import compare

    return compare(task, ref, got.astype(np.float32), targets, got_is_prob=False)


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
        source = Path(float_path)
        if getattr(config.ort, "preprocess", False):  # the graph int8:onnx quantizes, so node names match
            from onnxruntime.quantization.shape_inference import quant_pre_process

            try:
                quant_pre_process(str(source), str(work / "pre.onnx"), skip_symbolic_shape=True)
                source = work / "pre.onnx"
            except Exception as e:  # int8:onnx falls back the same way
                log(f"diagnose: quant_pre_process skipped ({type(e).__name__})")
        float_model = onnx.load(str(source))
        name_nodes(float_model)
        f_path = work / "float.onnx"
        onnx.save(float_model, str(f_path))
        cache = work / "calibration.json"
        log(f"diagnose: int8 calibration on {len(calib_x)} images ...")
        q_path = ort_quantize(f_path, work / "int8.onnx", calib_x, config.ort, cache=cache)
        qdq_model = onnx.load(str(q_path))
        layers = layer_errors(float_model, qdq_model, calib_x[:config.stat_images], threads)

        ref = run_onnx(f_path, eval_x, threads)
        base = _figures(task, ref, run_onnx(q_path, eval_x, threads), eval_targets)
        float_figs = _figures(task, ref, ref, eval_targets)
        diag = Diagnosis("onnx", model_name or Path(float_path).stem, task, min(len(calib_x), config.stat_images),
                         len(eval_x), layers, float_figs, base,
                         settings={"quantizer": "onnxruntime quantize_static, QDQ form of int8:onnx",
                                   **asdict(config.ort), "calibration_images": len(calib_x)})

        def try_fallback(label: str, nodes: list[str]) -> Fallback:
            path = ort_quantize(f_path, work / "fallback.onnx", None, config.ort, exclude=nodes, cache=cache)
            figs = _figures(task, ref, run_onnx(path, eval_x, threads), eval_targets)
            return _fallback(diag, label, nodes, figs)

        candidates = fallback_candidates(layers, config.fallback)
        for e in progress(candidates, desc="diagnose: float fallbacks"):
            diag.fallbacks.append(try_fallback(e.layer, e.fallback_nodes))
        diag.fallbacks.sort(key=lambda f: (f.agreement_gain, f.metric_gain), reverse=True)
        diag.combined = greedy_combination(diag, lambda nodes: try_fallback("", nodes))
    return diag


def _improves(metric_gain: float, agreement_gain: float) -> bool:
    """Better on one figure and worse on neither: a fallback must not trade the task metric for
    agreement with the float model, nor the reverse (the verification gates check both)."""
    return metric_gain >= 0 and agreement_gain >= 0 and (metric_gain > 0 or agreement_gain > 0)


def greedy_combination(diag: Diagnosis, try_nodes) -> Fallback | None:
    """Add the helpful layers one at a time, best single gain first, keeping each only if the
    combination improves on what is kept so far (``_improves``): single gains do not add up
    (MobileNetV3-L: three layers that each helped lost more together than plain int8).
    ``try_nodes(nodes) -> Fallback`` measures one combination. None unless two or more are kept.
    """
    helpful = [f for f in diag.fallbacks if _improves(f.metric_gain, f.agreement_gain)]
    if len(helpful) < 2:
        return None
    kept, labels, best = list(helpful[0].nodes), [helpful[0].layer], helpful[0]
    for f in helpful[1:]:
        nodes = list(dict.fromkeys(kept + f.nodes))
        if nodes == kept:
            continue
        trial = try_nodes(nodes)
        log(f"diagnose: greedy + {f.layer}: metric {trial.metric:.4f}, agreement {trial.agreement:.4f} "
            f"(kept so far {best.metric:.4f}, {best.agreement:.4f})")
        if _improves(trial.metric - best.metric, trial.agreement - best.agreement):
            kept, best = nodes, trial
            labels.append(f.layer)
    if len(labels) < 2:
        return None
    best.layer = " + ".join(labels)
    return best


def diagnose_tflite(saved_model: str | os.PathLike, calib_x: np.ndarray, eval_x: np.ndarray, eval_targets: np.ndarray,
                    task: str, config: DiagnoseConfig = DiagnoseConfig(), model_name: str = "",
                    work: str | os.PathLike | None = None) -> Diagnosis:
    """The diagnosis of the TFLite int8 route from onnx2tf's SavedModel (see the module docstring).

    ``calib_x`` and ``eval_x`` are normalised float32 **NHWC** batches. With ``work`` the
    calibrated model stays there (``diag.settings["calibrated"]``) so that a chosen fallback
    can be re-quantized without calibrating again (``tflite_debug``'s ``quantize`` mode).
    """
    from quantization.tflite_debug import run_child, short_name

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
        nan = float("nan")
        layers = [LayerError(short_name(r["tensor"]), r["op"], r["tensor"], r["own_sqnr_db"], r["own_cosine"],
                             r["channel_sqnr_db"], nan, nan, nan, r["scale"], r["steps_per_std"],
                             fallback_nodes=r["fallback"])
                  for r in res["layers"]]
        outputs = {k: np.load(v) for k, v in res["outputs"].items()}
        ref = outputs.pop("float")
        diag = Diagnosis("tflite", model_name or Path(saved_model).name, task, min(len(calib_x), config.stat_images),
                         len(eval_x), layers, _figures(task, ref, ref, eval_targets),
                         _figures(task, ref, outputs.pop("int8"), eval_targets),
                         settings={"quantizer": "TFLiteConverter (Optimize.DEFAULT, onnx2tf's SavedModel) under "
                                                "tf.lite.experimental.QuantizationDebugger",
                                   "calibration_images": len(calib_x),
                                   "calibrated": res["calibrated"] if work != Path(tmp) else None})
        by_tensor = {e.tensor: e for e in layers}
        for tensor, out in outputs.items():
            diag.fallbacks.append(_fallback(diag, short_name(tensor), by_tensor[tensor].fallback_nodes,
                                            _figures(task, ref, out, eval_targets)))
        diag.fallbacks.sort(key=lambda f: (f.agreement_gain, f.metric_gain), reverse=True)
        calibrated = res["calibrated"]

        def try_nodes(nodes: list[str]) -> Fallback:
            out = run_child({"mode": "quantize", "calibrated": calibrated, "denylist": nodes,
                             "target": str(work / "combined.tflite"), "eval": str(work / "eval.npy")}, work)
            return _fallback(diag, "", nodes, _figures(task, ref, np.load(out["outputs"]["quantized"]), eval_targets))

        diag.combined = greedy_combination(diag, try_nodes)
    return diag


def _fallback(diag: Diagnosis, label: str, nodes: list[str], figs: dict) -> Fallback:
    a, m = figs[diag.agreement_name], figs[diag._metric_key]
    return Fallback(label, list(nodes), a, m, a - diag.int8_figures[diag.agreement_name],
                    m - diag.int8_figures[diag._metric_key])


# --- export folders ----------------------------------------------------------------------------------
def diagnose_folder(folder: str | os.PathLike, config: DiagnoseConfig = DiagnoseConfig(), data_root=None,
                    calibration=None, threads: int | None = None) -> Diagnosis:
    """Diagnose the fp32 artifact of ``config.format`` in an export folder, on the model's own data."""
    from edgederm.manifest import Manifest
    from quantization.calibration import CalibrationConfig, load_calibration

    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    onnx_art = next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    if onnx_art is None or not (folder / onnx_art.path).exists():
        raise EdgeDermError(f"{folder} has no fp32 ONNX artifact to diagnose: export with "
                            "edgederm export CHECKPOINT --to onnx (TFLite is diagnosed from it too)")
    calib = load_calibration(manifest, calibration or CalibrationConfig(size=config.calibration_images), data_root)
    from edgederm.verify import verification_arrays

    images, targets = verification_arrays(manifest, data_root, config.eval_images)
    prep = manifest.preprocessing
    if config.format == "onnx":
        return diagnose_onnx(folder / onnx_art.path, calib.inputs("NCHW"), prep.replace(layout="NCHW").normalize(images),
                             targets, manifest.task, config, manifest.model["name"], threads)
    if config.format == "tflite":
        from converters.onnx2tflite import produce

        with tempfile.TemporaryDirectory(prefix="edgederm-diagnose-") as work:
            log("diagnose: onnx2tf SavedModel of the fp32 ONNX file ...")
            produced = produce(folder / onnx_art.path, Path(work), ["int8_floatio"], calibration=calib.inputs("NHWC"),
                               calibration_images=calib.images)
            return diagnose_tflite(produced["int8_floatio"].parent, calib.inputs("NHWC"),
                                   prep.replace(layout="NHWC").normalize(images), targets, manifest.task, config,
                                   manifest.model["name"])
    raise EdgeDermError(f"--format {config.format!r}: diagnose handles onnx and tflite")


def plot(diag: Diagnosis, path: str | os.PathLike, top: int = 30) -> Path:
    """Bar chart of the worst layers' own SQNR, with the accumulated SQNR as dots (headless, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgederm.paths import atomic_path

    layers = diag.layers[:top][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(layers) + 1.4))
    ys = np.arange(len(layers))
    ax.barh(ys, [e.own_sqnr_db if math.isfinite(e.own_sqnr_db) else np.nan for e in layers], color="#c0504d",
            label="own SQNR (this op alone)" if diag.format == "tflite" else "own SQNR (this quantizer alone)")
    accumulated = [(e.sqnr_db, y) for e, y in zip(layers, ys) if math.isfinite(e.sqnr_db)]
    if accumulated:  # the TFLite route measures each op's own error only
        ax.scatter(*zip(*accumulated), color="#1f497d", zorder=3, s=14, label="model SQNR (accumulated)")
    ax.set_yticks(ys, [f"{'…' + e.layer[-38:] if len(e.layer) > 39 else e.layer} ({e.op_type})" for e in layers],
                  fontsize=7)
    ax.set_xlabel("SQNR, dB (higher is better)")
    ax.set_title(f"{diag.model}: {diag.format} int8, worst {len(layers)} layers on {diag.stat_images} calibration images",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
