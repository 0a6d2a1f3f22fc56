"""The ONNX route of the diagnosis: QDQ int8 as the ``int8:onnx`` scheme makes it, sessions that
expose inner tensors, each quantizer's parameters, and the per-layer error table.

Every activation tensor the QDQ model quantizes is compared, over the calibration images, with
the float model's value ``x`` two ways: ``own`` rounds ``x`` with this tensor's scale and zero
point (the error this one quantizer adds); ``model`` is the int8 model's dequantized value there
(the error accumulated so far, ``onnxruntime.quantization.qdq_loss_debug``'s ``xmodel_err``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log, progress
from quantization.calibration import BatchReader
from quantization.diagnosis import LayerError
from quantization.onnx import OrtStaticConfig
from quantization.sqnr import EPS, RunningStats, fake_quant, sqnr_db


def name_nodes(model) -> None:
    """Give every unnamed node a stable name: fallbacks address nodes by name."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def prepare_float_model(float_path: Path, work: Path, ort: OrtStaticConfig):
    """(float model with every node named, its copy in ``work``), pre-processed when ``int8:onnx`` is
    (``ort.preprocess``), so that node names match its ``nodes_to_exclude``."""
    import onnx

    source = Path(float_path)
    if ort.preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        try:
            quant_pre_process(str(source), str(work / "pre.onnx"), skip_symbolic_shape=True)
            source = work / "pre.onnx"
        except Exception as e:  # int8:onnx falls back the same way
            log(f"diagnose: quant_pre_process skipped ({type(e).__name__})")
    model = onnx.load(str(source))
    name_nodes(model)
    path = work / "float.onnx"
    onnx.save(model, str(path))
    return model, path


def ort_quantize(float_path: Path, out_path: Path, calib_x: np.ndarray | None, settings=None,
                 exclude: list[str] | tuple = (), cache: Path | None = None) -> Path:
    """QDQ int8 ONNX as the ``int8:onnx`` scheme makes it (``settings``: its ``OrtStaticConfig``), with
    ``exclude`` nodes left in float; ``cache`` keeps calibration ranges between calls."""
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    settings = settings or OrtStaticConfig()
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


def debug_session(path_or_model, outputs: list[str] | None = None, threads: int | None = None):
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
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_DISABLE_ALL if outputs else level.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_onnx(path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """First output for every item of ``x`` (batch 1 at a time: exports have static shapes)."""
    sess = debug_session(path, threads=threads)
    name = sess.get_inputs()[0].name
    out = sess.get_outputs()[0].name
    return np.concatenate([sess.run([out], {name: x[i:i + 1]})[0] for i in range(len(x))])


def initializers(model) -> dict:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def const_value(model, inits: dict, name: str):
    if name in inits:
        return inits[name]
    for node in model.graph.node:  # quantizers sometimes emit Constant nodes
        if node.op_type == "Constant" and name in node.output:
            from onnx import numpy_helper

            return numpy_helper.to_array(node.attribute[0].t)
    return None


def qdq_tensors(qdq_model) -> dict[str, dict]:
    """For each activation quantized in a QDQ model: scale, zero point, int range and the dequantized name."""
    inits = initializers(qdq_model)
    dq_of = {}
    for node in qdq_model.graph.node:
        if node.op_type == "DequantizeLinear":
            dq_of[node.input[0]] = node.output[0]
    found = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or node.input[0] in found:
            continue
        scale = const_value(qdq_model, inits, node.input[1])
        zp = const_value(qdq_model, inits, node.input[2]) if len(node.input) > 2 and node.input[2] else np.int8(0)
        if scale is None or zp is None or node.output[0] not in dq_of:
            continue
        info = np.iinfo(np.asarray(zp).dtype)
        found[node.input[0]] = {"scale": np.asarray(scale, np.float64), "zero_point": np.asarray(zp, np.int64),
                                "qmin": int(info.min), "qmax": int(info.max), "dequantized": dq_of[node.output[0]]}
    return found


def weight_errors(float_model, qdq_model) -> dict[str, float]:
    """Weight SQNR (dB) per node name: float initializer vs its dequantized int8 copy."""
    f_inits, q_inits = initializers(float_model), initializers(qdq_model)
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


class GraphIndex:
    """Who makes and who reads each tensor of a float ONNX graph, by node name."""

    def __init__(self, model):
        self.producer: dict[str, str] = {}
        self.consumers: dict[str, list[str]] = {}
        self.op_of = {n.name: n.op_type for n in model.graph.node}
        self.inputs_of = {n.name: list(n.input) for n in model.graph.node}
        self.graph_inputs = {i.name for i in model.graph.input}
        for n in model.graph.node:
            for t in n.output:
                self.producer[t] = n.name
            for t in n.input:
                self.consumers.setdefault(t, []).append(n.name)

    def fallback_nodes(self, tensor: str) -> list[str]:
        """The producer and every consumer: a consumer left quantized would quantize the tensor again."""
        node = self.producer.get(tensor)
        return list(dict.fromkeys(([node] if node else []) + [c for c in self.consumers.get(tensor, []) if c != node]))


def tensor_stats(float_model, qdq_model, tensors: dict[str, dict], names: list[str], x: np.ndarray,
                 threads: int | None = None) -> tuple[dict, dict]:
    """(own, accumulated) ``RunningStats`` per tensor name over the images ``x``, one image at a time."""
    dequantized = [tensors[t]["dequantized"] for t in names]
    f_sess = debug_session(float_model, names, threads)
    q_sess = debug_session(qdq_model, dequantized, threads)
    f_in, q_in = f_sess.get_inputs()[0].name, q_sess.get_inputs()[0].name
    own = {t: RunningStats() for t in names}
    acc = {t: RunningStats() for t in names}
    for i in progress(range(len(x)), desc="diagnose: per-layer statistics"):
        f_out = dict(zip(names, f_sess.run(names, {f_in: x[i:i + 1]})))
        q_out = dict(zip(names, q_sess.run(dequantized, {q_in: x[i:i + 1]})))
        for t in names:
            q = tensors[t]
            fv = f_out[t]
            own[t].add(fv, fake_quant(fv, q["scale"], q["zero_point"], q["qmin"], q["qmax"], axis=1))
            acc[t].add(fv, q_out[t])
    return own, acc


def layer_errors(float_model, qdq_model, x: np.ndarray, threads: int | None = None) -> list[LayerError]:
    """Per quantized activation: own and accumulated SQNR/cosine over the images ``x`` (worst own first)."""
    tensors = qdq_tensors(qdq_model)
    graph = GraphIndex(float_model)
    names = [t for t in tensors if t in graph.producer or t in graph.graph_inputs]
    if not names:
        raise EdgeDermError("the int8 model quantizes no activation of the float model: nothing to diagnose")
    own, acc = tensor_stats(float_model, qdq_model, tensors, names, x, threads)
    w_err = weight_errors(float_model, qdq_model)
    rows = []
    for t in names:
        node = graph.producer.get(t)
        before = [acc[i].sqnr_db for i in graph.inputs_of.get(node, []) if i in acc]
        scale = float(np.max(tensors[t]["scale"]))
        rows.append(LayerError(layer=node or "<graph input>", op_type=graph.op_of.get(node, "input"), tensor=t,
                               own_sqnr_db=own[t].sqnr_db, own_cosine=own[t].cosine,
                               channel_sqnr_db=own[t].channel_sqnr_db, sqnr_db=acc[t].sqnr_db,
                               cosine=acc[t].cosine, added_db=(min(before) - acc[t].sqnr_db) if before else 0.0,
                               scale=scale, steps_per_std=own[t].std / max(scale, EPS),
                               weight_sqnr_db=w_err.get(node) if node else None,
                               fallback_nodes=graph.fallback_nodes(t)))
    rows.sort(key=lambda e: (e.own_sqnr_db, e.sqnr_db))
    return rows
