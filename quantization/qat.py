"""Quantization-aware training with NNCF (torch): insert int8 fake-quantizers, fine-tune, export QDQ ONNX.

1. ``nncf.quantize`` on the PyTorch model with calibration images sets every quantizer's range
   (the same int8 scheme as post-training quantization: int8 weights per channel, int8 activations);
2. a short fine-tune on the train split (the training pipeline's batch augmentation,
   the task's training loss: class-weighted cross-entropy or BCE + Dice) lets weights and ranges
   adapt to the rounding;
3. every quantizer is switched to ``ONNX_QUANTIZE_DEQUANTIZE_PAIRS`` export mode and the model is
   exported by the TorchScript exporter (opset 17) to standard QDQ ONNX that ONNX Runtime runs
   (NNCF's default export emits ``org.openvinotoolkit:FakeQuantize``, which ORT refuses;
   ``dynamo=True`` fails on NNCF's data-dependent guards: docs/toolchain.md);
4. for TFLite, ``qat_float_model`` puts the tuned weights back into the float model instead,
   which the TFLite converter quantizes (it takes float graphs only).

CPU notes: NNCF's CPU quantize kernels are a C++ extension compiled on first use, which on a
2-core machine takes longer than NNCF's 60 s load timeout and leaves a lock file behind; and its
pure-torch fallback is wrapped in ``torch.compile``, which recompiles on every new shape. The
plain (uncompiled) torch reference functions are installed instead: same numbers, no build.
Keep it short with ``steps`` and ``train_images``.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log
from edgederm.tasks import task_of


@dataclass(frozen=True)
class QATConfig:
    """Attributes:
        steps: optimizer steps of fine-tuning (0: NNCF post-training quantization only).
        batch_size: images per step.
        lr: AdamW learning rate (small: the weights are already trained).
        train_images: class-stratified train images decoded for fine-tuning.
        calibration_images: images NNCF sets the initial ranges from.
        seed: data order and augmentation seed.
        threads: torch threads (default: every core).
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-5
    train_images: int = 1024
    calibration_images: int = 128
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        for name in ("batch_size", "train_images", "calibration_images"):
            if getattr(self, name) < 1:
                raise EdgeDermError(f"QAT {name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.steps < 0:
            raise EdgeDermError(f"QAT steps {self.steps} must be 0 or more")

    def to_dict(self) -> dict:
        return asdict(self)


def use_reference_kernels() -> None:
    """NNCF's fake-quantize in plain torch: no C++ build, no torch.compile (see the module docstring)."""
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
    from nncf.torch.quantization.reference import torch_executor

    class _Reference:
        Quantize_forward = staticmethod(torch_executor.forward)
        Quantize_backward = staticmethod(torch_executor.backward)

    QuantizedFunctionsCPU._loaded_namespace = _Reference


def insert_quantizers(model, calib_x: np.ndarray, subset: int | None = None):
    """``nncf.quantize`` on ``model`` with normalised NCHW calibration inputs; returns the fake-quantized model."""
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    import torch

    use_reference_kernels()
    model = model.eval().to(memory_format=torch.contiguous_format)
    data = [torch.from_numpy(np.ascontiguousarray(calib_x[i:i + 1])) for i in range(len(calib_x))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(model, nncf.Dataset(data), subset_size=len(data) if subset is None else subset,
                             fast_bias_correction=True)


def class_weights(targets: np.ndarray, n_classes: int | None = None):
    """Inverse-frequency class weights with mean 1 (a class absent from ``targets`` counts once)."""
    import torch

    counts = np.bincount(targets, minlength=n_classes or int(targets.max()) + 1).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / len(counts)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def batch_indices(n: int, batch_size: int, steps: int, gen):
    """``steps`` batches of indices into ``n`` items, reshuffled whenever a batch would run past the end."""
    import torch

    order, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(n, generator=gen), 0
        yield order[pos:pos + batch_size]
        pos += batch_size


def augmented_batch(images_t, targets_t, idx, has_class_labels: bool, prep, gen):
    """(normalised NCHW inputs, targets) of one batch; masks go through the same geometric augmentation."""
    from edgederm.tensors import augment, normalize_float

    x01 = images_t[idx].permute(0, 3, 1, 2).float().div_(255.0)
    if has_class_labels:
        x01, _ = augment(x01, generator=gen)
        y = targets_t[idx]
    else:
        x01, y = augment(x01, targets_t[idx].unsqueeze(1).float(), generator=gen)
    return normalize_float(x01, prep).contiguous(), y


def fine_tune(qmodel, task: str, images_uint8: np.ndarray, targets: np.ndarray, prep, config: QATConfig,
              n_classes: int | None = None) -> list[float]:
    """``config.steps`` steps of the task's training loss (``TaskSpec.loss``, class-weighted where the task
    has class labels, the task's label smoothing) on augmented batches; returns the loss per step."""
    import torch

    if config.steps == 0:
        return []
    spec = task_of(task)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    weight = class_weights(targets, n_classes) if spec.has_class_labels else None
    opt = torch.optim.AdamW([p for p in qmodel.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0)
    images_t, targets_t = torch.from_numpy(images_uint8), torch.from_numpy(targets)
    qmodel.train()
    # BatchNorm statistics stay frozen: a few small batches would only add noise to them.
    for m in qmodel.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    losses, t0 = [], time.perf_counter()
    for step, idx in enumerate(batch_indices(len(images_t), config.batch_size, config.steps, gen)):
        x, y = augmented_batch(images_t, targets_t, idx, spec.has_class_labels, prep, gen)
        loss = spec.loss(qmodel(x), y, weight=weight, label_smoothing=spec.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 10 == 0 or step + 1 == config.steps:
            el = time.perf_counter() - t0
            log(f"qat: step {step + 1}/{config.steps} loss {np.mean(losses[-10:]):.4f} "
                f"({el / (step + 1):.2f} s/step, {el / (step + 1) * (config.steps - step - 1):.0f}s left)")
    qmodel.eval()
    return losses


def export_qdq(qmodel, input_size, out_path: Path, output_name: str) -> Path:
    """Standard QDQ ONNX (opset 17, TorchScript exporter) from an NNCF fake-quantized model, atomically."""
    import onnx
    import torch
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    from converters.common import atomic_output

    qmodel = qmodel.eval()
    n = 0
    for m in qmodel.modules():
        if isinstance(m, BaseQuantizer):
            m.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
            n += 1
    if n == 0:
        raise EdgeDermError("the QAT model holds no NNCF quantizer: nothing to export as int8")
    h, w = input_size
    with atomic_output(Path(out_path)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(qmodel, (torch.zeros(1, 3, h, w),), str(tmp), dynamo=False, opset_version=17,
                          do_constant_folding=True, input_names=["input"], output_names=[output_name])
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        ops = {nd.op_type for nd in proto.graph.node}
        if "QuantizeLinear" not in ops or any(nd.domain not in ("", "ai.onnx") for nd in proto.graph.node):
            raise EdgeDermError("the QAT export is not standard QDQ ONNX (NNCF export mode not applied)")
    return Path(out_path)


@dataclass
class QATResult:
    onnx_path: Path
    losses: list[float]
    seconds: float
    config: QATConfig

    def record(self) -> dict:
        return {"config": self.config.to_dict(), "steps": len(self.losses), "seconds": round(self.seconds, 1),
                "loss_first": self.losses[0] if self.losses else None,
                "loss_last10": float(np.mean(self.losses[-10:])) if self.losses else None}


def qat(model, manifest, out_path: str | os.PathLike, config: QATConfig = QATConfig(), data_root=None,
        calibration=None) -> QATResult:
    """QAT of ``model`` (the PyTorch original of ``manifest``) to a QDQ ONNX file at ``out_path``.

    ``calibration`` is a ``quantization.calibration.CalibrationSet`` (default: train images).
    """
    t0 = time.perf_counter()
    qmodel, losses = quantize_and_fine_tune(model, manifest, config, data_root, calibration)
    export_qdq(qmodel, manifest.preprocessing.input_size, Path(out_path), task_of(manifest.task).output_name)
    return QATResult(Path(out_path), losses, time.perf_counter() - t0, config)


def qat_float_model(model, manifest, config: QATConfig = QATConfig(), data_root=None, calibration=None):
    """(float model with the QAT-tuned weights, QATResult without a file) for converters that quantize again.

    The TFLite converter takes float graphs only, and onnx2tf turns a QDQ file into float
    arithmetic; so the weights QAT tuned against int8 rounding go into a copy of the float
    original, which the TFLite converter then quantizes with its own calibration. The
    weights' adaptation carries over (same per-channel symmetric int8 grid); the activation
    ranges QAT learned do not.
    """
    import copy

    t0 = time.perf_counter()
    float_model = copy.deepcopy(model).eval()  # before NNCF touches the original
    qmodel, losses = quantize_and_fine_tune(model, manifest, config, data_root, calibration)
    tuned = qmodel.state_dict()
    own = float_model.state_dict()
    missing = [k for k in own if k not in tuned or tuned[k].shape != own[k].shape]
    if missing:
        raise EdgeDermError(f"the QAT model does not carry the float model's tensors ({', '.join(missing[:3])} ...): "
                            "cannot hand its weights to the TFLite converter")
    float_model.load_state_dict({k: tuned[k].detach().clone() for k in own})
    return float_model, QATResult(Path(), losses, time.perf_counter() - t0, config)


def quantize_and_fine_tune(model, manifest, config: QATConfig, data_root=None, calibration=None):
    """(NNCF fake-quantized model after ``config.steps`` steps, losses)."""
    import torch

    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset
    from quantization.calibration import CalibrationConfig, load_calibration

    torch.set_num_threads(config.threads or os.cpu_count() or 2)
    if calibration is None:
        calibration = load_calibration(manifest, CalibrationConfig(size=config.calibration_images, seed=config.seed),
                                       data_root)
    log(f"qat: inserting int8 quantizers (NNCF), ranges from {len(calibration)} images ...")
    qmodel = insert_quantizers(model, calibration.inputs("NCHW"))
    losses: list[float] = []
    if config.steps:
        root = find_dataset(manifest.model.get("dataset"), data_root, "QAT training data")
        ds = load_dataset(root, seed=config.seed).split("train").subset(config.train_images, seed=config.seed)
        arrays = load_arrays(ds, manifest.preprocessing, desc="qat: decode train images")
        losses = fine_tune(qmodel, manifest.task, arrays.images, arrays.targets, manifest.preprocessing, config,
                           len(manifest.classes) if task_of(manifest.task).has_class_labels else None)
    return qmodel, losses
