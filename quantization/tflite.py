"""TFLite/LiteRT schemes: onnx2tf's integer variants, calibrated on our own images.

Route: the export folder's ONNX file -> onnx2tf with ``-oiqt -qt per-channel -cind`` (in a child
process, ``converters.onnx2tflite``). One onnx2tf run writes every variant, so all TFLite schemes
asked for in one ``quantize`` call share it (``ctx.cache``):

* ``dynamic``: int8 weights, float activations (no calibration);
* ``int8``: full int8 with int8 input/output (the input's scale/zero point are in the manifest);
* ``int8_floatio``: full int8 inside, float32 input/output;
* ``int16x8``: int16 activations, int8 weights, float I/O (runs on reference kernels: slow).

Why onnx2tf's ``-oiqt`` rather than ``TFLiteConverter.from_saved_model`` with a representative
dataset: toolchain notes measured identical int8 outputs for the two, and onnx2tf is the route
export already uses for fp32/fp16, so the quantized files come from the same graph (same NHWC
transposes, same I/O names) as the verified float ones, with no second TensorFlow code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact

VARIANTS = ("dynamic", "int8", "int8_floatio", "int16x8", "fp16")


@dataclass(frozen=True)
class TFLiteConfig:
    """Attributes:
        variant: which onnx2tf output (``dynamic``, ``int8``, ``int8_floatio``, ``int16x8``, ``fp16``).
        quant_type: ``per-channel`` (weights) or ``per-tensor``.
        io_dtype: integer I/O type of the ``int8`` variant: ``int8`` or ``uint8``.
        relu6_activations: rewrite HardSwish/HardSigmoid into ReLU6 arithmetic first (exact in
            float), so XNNPACK runs them in int8: LiteRT leaves int8 HARD_SWISH and the SE gate's
            RELU_0_TO_1 to its own kernels, which splits MobileNetV3 into 30 partitions and makes
            int8 slower than fp32. Faster, but costs int8 accuracy (docs/quantization.md).
    """

    variant: str = "int8"
    quant_type: str = "per-channel"
    io_dtype: str = "int8"
    relu6_activations: bool = False

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise EdgeDermError(f"TFLite variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.quant_type not in ("per-channel", "per-tensor"):
            raise EdgeDermError(f"TFLite quant_type {self.quant_type!r} must be per-channel or per-tensor")
        if self.io_dtype not in ("int8", "uint8"):
            raise EdgeDermError(f"TFLite io_dtype {self.io_dtype!r} must be int8 or uint8")


def _outputs(ctx, config: TFLiteConfig) -> dict[str, Path]:
    """onnx2tf's files for every TFLite variant this run plans, made once per (quant_type, io_dtype)."""
    from converters.onnx2tflite import CALIBRATED, produce

    planned = {s.config.variant for s in ctx.planned("tflite") if isinstance(s.config, TFLiteConfig)}
    planned = planned | {config.variant}
    calibrated = bool(planned & set(CALIBRATED))
    key = ("onnx2tf", config.quant_type, config.io_dtype, config.relu6_activations, calibrated)
    have = ctx.cache.get(key)
    if have is None or config.variant not in have:
        import tempfile

        work = Path(tempfile.mkdtemp(prefix="onnx2tf-", dir=ctx.work))
        cal = ctx.calibration if calibrated else None
        source = ctx.onnx_path()
        if config.relu6_activations:
            source = relu6_activations(source, work / "rewritten" / source.name)
        have = produce(source, work, sorted(planned), calibration=cal.inputs("NHWC") if cal else None,
                       calibration_images=cal.images if cal else None, quant_type=config.quant_type,
                       io_dtype=config.io_dtype)
        ctx.cache[key] = have
    return have


def relu6_activations(source: Path, target: Path) -> Path:
    """Copy of an ONNX file with HardSwish/HardSigmoid as ReLU6 arithmetic (same function, float-exact).

    ``hardswish(x) = (x / 6) * relu6(x + 3)`` (this order: TensorFlow's converter fuses
    ``x * relu6(x + 3) / 6`` back into HARD_SWISH); ``hardsigmoid(x) = relu6(6a x + 6b) / 6``.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    consts = {"ed_zero": 0.0, "ed_three": 3.0, "ed_six": 6.0, "ed_sixth": 1.0 / 6.0}
    nodes = []
    for node in model.graph.node:
        x, y, p = node.input[0] if node.input else "", node.output[0], node.name or node.output[0]
        if node.op_type == "HardSwish":
            nodes += [helper.make_node("Add", [x, "ed_three"], [p + "/add3"], name=p + "/add3"),
                      helper.make_node("Clip", [p + "/add3", "ed_zero", "ed_six"], [p + "/relu6"], name=p + "/relu6"),
                      helper.make_node("Mul", [x, "ed_sixth"], [p + "/div6"], name=p + "/div6"),
                      helper.make_node("Mul", [p + "/div6", p + "/relu6"], [y], name=p + "/mul")]
        elif node.op_type == "HardSigmoid":
            attrs = {a.name: a.f for a in node.attribute}
            consts[p + "/6a"], consts[p + "/6b"] = 6 * attrs.get("alpha", 0.2), 6 * attrs.get("beta", 0.5)
            nodes += [helper.make_node("Mul", [x, p + "/6a"], [p + "/scale"], name=p + "/scale"),
                      helper.make_node("Add", [p + "/scale", p + "/6b"], [p + "/shift"], name=p + "/shift"),
                      helper.make_node("Clip", [p + "/shift", "ed_zero", "ed_six"], [p + "/relu6"], name=p + "/relu6"),
                      helper.make_node("Mul", [p + "/relu6", "ed_sixth"], [y], name=p + "/div6")]
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items())
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def xnnpack_coverage(path: Path, threads: int = 2) -> tuple[int, dict[str, int]]:
    """(XNNPACK partitions, {op: count} left to LiteRT's own kernels) of a .tflite file.

    After delegation the interpreter lists the original nodes plus one ``DELEGATE`` node per
    partition; an original node whose output feeds a partition (or the graph output) but is
    not produced by one ran outside XNNPACK. One partition and no ops: fully delegated.
    """
    from collections import Counter

    from device_bench.runners import open_runner

    interp = open_runner(path, "tflite", threads=threads).interpreter
    ops = interp._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    d_in = {int(t) for o in delegates for t in o["inputs"]}
    d_out = {int(t) for o in delegates for t in o["outputs"]}
    needed = d_in | {int(d["index"]) for d in interp.get_output_details()}  # read outside any partition
    outside: dict[int, str] = {}
    changed = True
    while changed:  # producers of what non-delegated nodes read are non-delegated too, unless a partition made it
        changed = False
        for o in ops:
            outs = set(map(int, o["outputs"]))
            if o["op_name"] != "DELEGATE" and o["index"] not in outside and not outs & d_out and outs & needed:
                outside[o["index"]] = o["op_name"]
                needed |= set(map(int, o["inputs"]))
                changed = True
    return len(delegates), dict(Counter(outside.values()))


def note_xnnpack_coverage(artifact: Artifact, path: Path) -> None:
    """Note the ops XNNPACK leaves to LiteRT's own kernels: what makes an int8 file slower than its
    fp32 twin (MobileNetV3: HARD_SWISH, RELU_0_TO_1), or what a float fallback costs."""
    partitions, left = xnnpack_coverage(path)
    if left:
        artifact.notes.append(f"XNNPACK runs it in {partitions} partitions; left to LiteRT's own kernels: "
                              + ", ".join(f"{op} x{n}" for op, n in sorted(left.items())))


def quantize(ctx, config: TFLiteConfig, target: Path) -> Artifact:
    """Handler for ``dynamic|int8|int8_floatio|int16x8:tflite``."""
    from converters.onnx2tflite import install

    produced = _outputs(ctx, config)[config.variant]
    artifact = install(produced, target, ctx.manifest, config.variant)
    artifact.converter = (f"onnx2tflite (onnx2tf -oiqt, {config.variant}, weights {config.quant_type}"
                          + (f", {config.io_dtype} I/O" if config.variant == "int8" else "")
                          + (", HardSwish/HardSigmoid as ReLU6" if config.relu6_activations else "") + ")")
    if config.variant == "int8":
        q = artifact.inputs[0].quantization or {}
        artifact.notes.append(f"integer I/O: feed {artifact.inputs[0].dtype} = round(x / {q.get('scale', 0):.6g} + "
                              f"{q.get('zero_point', 0)}) of the normalised input; read outputs as "
                              "(y - zero_point) * scale (manifest inputs/outputs carry both)")
    note_xnnpack_coverage(artifact, target)
    if config.variant == "int16x8":
        artifact.notes.append("int16 activations run on LiteRT's reference kernels (no XNNPACK): accurate but slow")
    return artifact


def saved_model_dir(ctx) -> Path:
    """The SavedModel onnx2tf wrote on its calibrated run (shared with ``int8:tflite``'s run)."""
    have = _outputs(ctx, TFLiteConfig("int8"))
    folder = next(iter(have.values())).parent
    if not (folder / "saved_model.pb").exists():
        raise EdgeDermError(f"onnx2tf left no SavedModel in {folder}: the TFLite debugger needs one")
    return folder


@dataclass(frozen=True)
class TFLiteFallbackConfig:
    """Attributes:
        denylist: TFLite op output tensors kept in float (``diagnose --format tflite`` names them).
        calibrated: the debugger's calibrated model (``Diagnosis.settings["calibrated"]``): the
            ranges are reused, not measured again.
    """

    denylist: tuple[str, ...] = ()
    calibrated: str = ""


def int8_fallback(ctx, config: TFLiteFallbackConfig, target: Path) -> Artifact:
    """Full int8 with float I/O, the ``denylist`` ops left in float (TensorFlow's selective quantization)."""
    from converters.onnx2tflite import install
    from quantization.tflite_debug import run_child, short_name

    if not config.denylist or not config.calibrated:
        raise EdgeDermError("the TFLite float fallback needs the layers to keep in float and the calibrated model: "
                            "run edgederm diagnose --format tflite, or quantize --max-drop")
    work = Path(config.calibrated).parent
    res = run_child({"mode": "quantize", "calibrated": config.calibrated, "denylist": list(config.denylist),
                     "target": str(work / "fallback.tflite")}, work)
    artifact = install(Path(res["target"]), target, ctx.manifest, "int8_floatio")
    artifact.converter = ("TFLiteConverter on onnx2tf's SavedModel (Optimize.DEFAULT, selective quantization), "
                          "float I/O")
    artifact.notes.append("kept in float: " + ", ".join(short_name(t) for t in config.denylist))
    note_xnnpack_coverage(artifact, target)
    return artifact


def fp16(ctx, config, target: Path) -> Artifact:
    """``fp16:tflite`` delegates to export: the folder's ``tflite_fp16`` if present, else made the same way."""
    existing = ctx.existing("tflite_fp16")
    if existing is not None:
        return existing
    from converters.onnx2tflite import install

    return install(_outputs(ctx, config)["fp16"], target, ctx.manifest, "fp16")  # shares the integer run if any
