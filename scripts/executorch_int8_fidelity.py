"""How close ``int8:executorch`` stays to fp32, with and without the conv -> ReLU6 fusion (issue 16).

For each zoo classifier: fp32 logits vs the PT2E int8 program's, as the converted graph run in
PyTorch and as the XNNPACK-lowered ``.pte`` run by ``executorch.runtime``; logit cosine and
top-1 agreement on real test images, calibrated on real train images (the manifest's
normalisation). ``plain``: the stock ``XNNPACKQuantizer`` (what ExecuTorch's recipe does);
``fused``: EdgeDerm's scheme (``quantization.executorch.quantize_model``). ``--ort`` adds ONNX
Runtime's static int8 (QDQ, per-channel) of the same model as an anchor.

Models with offline ImageNet weights (efficientnet_lite0) keep their 1000-class head; the
others have no offline weights here, so they are random-init with BN statistics re-estimated
on the calibration images (no gradient step): a numerical check, not an accuracy claim.

    .venv/bin/python scripts/executorch_int8_fidelity.py --models efficientnet_lite0,mobilenetv2 --ort
    .venv/bin/python scripts/executorch_int8_fidelity.py --models efficientnet_lite0 --layers   # the diagnosis
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def images(data, split: str, n: int, prep) -> np.ndarray:
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset
    from edgederm.paths import find_data_root

    ds = load_dataset(find_dataset("derm7", find_data_root(data))).split(split).subset(n, seed=0)
    return prep.normalize(load_arrays(ds, prep, desc=f"{split} images").images).astype(np.float32)


def build(name: str, cal: np.ndarray):
    import torch

    from edgederm.models import create_model, get_entry

    if get_entry(name).offline_weights:
        return create_model(name, num_classes=1000, pretrained="imagenet").eval(), "ImageNet weights, 1000 logits"
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        for i in range(0, len(cal), 25):
            model.train()(torch.from_numpy(cal[i:i + 25]))
    return model.eval(), "random init + BN statistics from the calibration images, 7 logits"


def calibrated(model, cal: np.ndarray, quantizer):
    """``prepare_pt2e`` of the exported ``model`` with ``quantizer``, its observers fed ``cal`` one image a call."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    x = torch.from_numpy(cal)
    prepared = prepare_pt2e(torch.export.export(copy.deepcopy(model).eval(), (x[:1],)).module(), quantizer)
    with torch.no_grad():
        for i in range(len(x)):
            prepared(x[i:i + 1])
    return prepared


def stock_quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def int8_program(model, cal: np.ndarray, variant: str):
    """``fused``: the ``int8:executorch`` handler's program; ``plain``: the stock quantizer's."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from quantization.executorch import ExecuTorchInt8Config, quantize_model

    if variant == "fused":
        return quantize_model(model, torch.from_numpy(cal), ExecuTorchInt8Config(), "model")
    converted = convert_pt2e(calibrated(model, cal, stock_quantizer()))
    return torch.export.export(converted, (torch.from_numpy(cal[:1]),))


def relu6_levels(model, cal: np.ndarray) -> str:
    """Stock quantizer: how many of the 256 levels of each conv -> ReLU6 output observer land in [0, 6]."""
    prepared = calibrated(model, cal, stock_quantizer())
    levels, lows = [], []
    for n in prepared.graph.nodes:
        if n.op == "call_function" and "hardtanh" in str(n.target) and n.args[0].op == "call_module":
            scale, zero = getattr(prepared, n.args[0].target).calculate_qparams()  # the observer before the clamp
            low, high = float((-128 - zero) * scale), float((127 - zero) * scale)
            levels.append((min(high, 6.0) - max(low, 0.0)) / float(scale))
            lows.append(low)
    if not levels:
        return "no conv -> ReLU6 output observed"
    return (f"{len(levels)} conv -> ReLU6 outputs: levels in [0, 6] median {np.median(levels):.0f}, "
            f"min {min(levels):.0f} of 256; range low end median {np.median(lows):.1f}, min {min(lows):.1f}")


def layer_sqnr(model, cal: np.ndarray, test: np.ndarray, quantizer) -> list[tuple[str, float]]:
    """SQNR (dB) of the converted PT2E graph vs fp32 at every ReLU6 / add / linear output, BN folded in both."""
    import torch
    from torch.fx import Interpreter
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
    from torchao.quantization.pt2e.quantizer import Quantizer

    class Nothing(Quantizer):  # prepare_pt2e folds BN and annotates nothing: fp32 with the same node names
        def annotate(self, model):
            return model

        def validate(self, model):
            pass

    class Recorder(Interpreter):
        def __init__(self, module):
            super().__init__(module)
            self.seen = {}

        def run_node(self, n):
            out = super().run_node(n)
            if n.op == "call_function" and n.name.startswith(("hardtanh", "add", "linear")):
                self.seen.setdefault(n.name, []).append(out.detach().clone())
            return out

    ref, q = Recorder(calibrated(model, cal[:1], Nothing())), Recorder(convert_pt2e(calibrated(model, cal, quantizer)))
    with torch.no_grad():
        for i in range(len(test)):
            ref.run(torch.from_numpy(test[i:i + 1]))
            q.run(torch.from_numpy(test[i:i + 1]))
    rows = []
    for name in ref.seen:
        a, b = torch.cat(ref.seen[name]), torch.cat(q.seen[name])
        rows.append((name, float(10 * torch.log10(a.pow(2).sum() / (a - b).pow(2).sum()))))
    return rows


def diagnose(name: str, cal: np.ndarray, test: np.ndarray) -> None:
    from quantization.executorch_quantizer import xnnpack_int8_quantizer

    model, how = build(name, cal)
    print(f"{name} ({how}), stock quantizer: {relu6_levels(model, cal)}")
    plain = layer_sqnr(model, cal, test, stock_quantizer())
    fused = dict(layer_sqnr(model, cal, test, xnnpack_int8_quantizer()))
    print(f"per-layer SQNR dB on {len(test)} test images (stock -> fused):")
    print(", ".join(f"{layer} {db:.1f} -> {fused[layer]:.1f}" for layer, db in plain))


def ort_int8(model, cal: np.ndarray, work: Path):
    """ONNX Runtime static int8 (QDQ, per-channel weights, MinMax) of the same model: a callable on NCHW."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    torch.onnx.export(model, (torch.from_numpy(cal[:1]),), str(work / "m.onnx"), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17)
    quant_pre_process(str(work / "m.onnx"), str(work / "pre.onnx"))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": cal[i:i + 1]} for i in range(len(cal))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(work / "pre.onnx"), str(work / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(work / "int8.onnx"), so, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def logits(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` (numpy NCHW batch of 1 -> numpy logits) over ``x``, one image per call (static batch 1)."""
    return np.concatenate([fn(x[i:i + 1]) for i in range(len(x))])


def on_numpy(module):
    import torch

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    return run


def figures(ref: np.ndarray, q: np.ndarray) -> str:
    cos = (ref * q).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1))
    agree = (ref.argmax(1) == q.argmax(1)).mean()
    return f"{cos.mean():.4f} | {cos.min():.4f} | {agree:.3f}"


def measure(name: str, cal: np.ndarray, test: np.ndarray, ort: bool, work: Path) -> list[str]:
    from converters.torch2executorch import lower
    from device_bench.runners import open_runner

    model, how = build(name, cal)
    ref = logits(on_numpy(model), test)
    rows = []
    for variant in ("plain", "fused"):
        program = int8_program(model, cal, variant)
        pte = work / f"{name}_{variant}.pte"
        cov = lower(program, types.SimpleNamespace(model={"name": name}), pte)
        runner = open_runner(pte, "executorch", threads=1)
        rows.append(f"| {name} ({how}) | {variant} | {figures(ref, logits(on_numpy(program.module()), test))} | "
                    f"{figures(ref, logits(runner, test))} | {cov['delegated_nodes']} "
                    f"({cov['portable_nodes']} portable) |")
    if ort:
        ort_logits = logits(ort_int8(model, cal, work), test)
        rows.append(f"| {name} ({how}) | ORT int8 QDQ (anchor) | – | – | – | {figures(ref, ort_logits)} | – |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0,mobilenetv2")
    ap.add_argument("--calibration", type=int, default=200, help="train images (int8:executorch's default: 200)")
    ap.add_argument("--images", type=int, default=200, help="test images compared")
    ap.add_argument("--data", default=None, help="data root holding derm7 (default: $EDGEDERM_DATA or ../shared/data)")
    ap.add_argument("--ort", action="store_true", help="add ONNX Runtime static int8 of the same model")
    ap.add_argument("--layers", action="store_true", help="instead: the stock quantizer's ReLU6 ranges and "
                    "per-layer SQNR, stock vs fused (first 64 calibration and 8 test images)")
    args = ap.parse_args()
    import torch

    from edgederm.models.zoo import CLS

    torch.set_num_threads(1)
    cal, test = images(args.data, "train", args.calibration, CLS), images(args.data, "test", args.images, CLS)
    if args.layers:
        for name in args.models.split(","):
            diagnose(name, cal[:64], test[:8])
        return
    print("| model | int8 | graph cosine mean | min | top-1 agree | .pte cosine mean | min | top-1 agree "
          "| XNNPACK nodes |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            start = time.time()
            for row in measure(name, cal, test, args.ort, Path(tmp)):
                print(row, flush=True)
            print(f"<!-- {name}: {time.time() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
