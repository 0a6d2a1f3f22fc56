"""Structured (channel) pruning with torch-pruning's dependency graph, and pruned checkpoints.

``prune_model(model, example, PruneConfig(macs_budget=0.6))`` removes whole output channels
(and every coupled input channel: residual adds, depthwise convs, BN, concat skips) until the
target is met, so the result is a smaller dense network that every runtime runs faster -
unlike masks. Stem, output head and segmentation head keep their channels by default.

A pruned model's channel counts differ from the zoo's, so its model card records each
resized layer's shape attributes (``card.pruning["layers"]``). ``load_checkpoint`` builds
the zoo architecture, resizes those layers in place (``apply_pruned_shapes``) and loads the
weights strictly: no pickled code, no replay of the pruning, and no torch-pruning at load time.

``prune_checkpoint`` is the whole job behind ``edgederm prune``: prune, re-estimate BN
statistics, optionally fine-tune (with distillation from the unpruned model) through
``edgederm.train``, save, and score the validation split before and after.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from edgederm.errors import EdgeDermError
from edgederm.models.deploy import apply_pruned_shapes
from edgederm.progress import log
from edgederm.registry import Registry


# --- importance criteria -------------------------------------------------------------------
@dataclass(frozen=True)
class ImportanceSpec:
    build: Callable[[], Any]  # -> a torch_pruning importance object
    description: str
    needs_gradients: bool = False  # Taylor: weight * grad, from a loss on calibration images


IMPORTANCES: Registry[ImportanceSpec] = Registry("importance")


def _tp():
    import torch_pruning as tp

    return tp


IMPORTANCES.register("l1", ImportanceSpec(lambda: _tp().importance.GroupMagnitudeImportance(p=1),
                                          "L1 norm of each channel's weights, summed over its coupled layers"))
IMPORTANCES.register("l2", ImportanceSpec(lambda: _tp().importance.GroupMagnitudeImportance(p=2),
                                          "L2 norm of each channel's weights, summed over its coupled layers"))
IMPORTANCES.register("taylor", ImportanceSpec(lambda: _tp().importance.GroupTaylorImportance(),
                                              "first-order Taylor: |weight x gradient| of the task loss",
                                              needs_gradients=True))
IMPORTANCES.register("bn_scale", ImportanceSpec(lambda: _tp().importance.BNScaleImportance(),
                                                "|gamma| of the BatchNorm after each channel (network slimming)"))


# --- configuration -------------------------------------------------------------------------
@dataclass
class PruneConfig:
    """What to prune and how far; serialised into the pruned model's card.

    Give exactly one target: ``sparsity`` (fraction of each prunable layer's output channels
    removed) or ``macs_budget`` (fraction of the original MACs to keep, reached by iterative
    steps of growing channel ratio until MACs <= budget).
    """

    sparsity: float | None = None
    macs_budget: float | None = None
    importance: str = "l2"
    global_pruning: bool = False  # rank channels across layers instead of per layer
    round_to: int | None = 8  # mobile kernels (XNNPACK, NEON) like channel counts in multiples of 8
    protect: list[str] = field(default_factory=list)  # extra module names whose output channels stay
    protect_defaults: bool = True  # stem conv, classifier / segmentation head
    steps: int = 1  # iterative steps towards ``sparsity``
    max_steps: int = 50  # granularity of the MACs-budget search (channel ratio grows by max_ratio/max_steps)
    max_ratio: float = 0.9  # no layer loses more than this fraction of its channels
    bn_recalibration_images: int = 256  # re-estimate BN statistics on this many training images
    calibration_images: int = 32  # for gradient-based importance
    finetune_epochs: int = 0
    finetune_lr: float = 5e-4
    batch_size: int = 32
    distill: bool = False  # fine-tune against the unpruned model's soft outputs
    train_limit: int | None = None  # fine-tune on a class-stratified subset
    threads: int | None = None  # torch threads for scoring and fine-tuning (default: every core)
    seed: int = 0

    def validate(self) -> "PruneConfig":
        if (self.sparsity is None) == (self.macs_budget is None):
            raise EdgeDermError("give exactly one pruning target: --sparsity RATIO or --macs-budget FRACTION")
        if self.sparsity is not None and not 0 < self.sparsity < 1:
            raise EdgeDermError(f"--sparsity {self.sparsity} must be between 0 and 1 (exclusive), "
                                "e.g. 0.3 removes 30 % of each layer's channels")
        if self.macs_budget is not None and not 0 < self.macs_budget < 1:
            raise EdgeDermError(f"--macs-budget {self.macs_budget} must be between 0 and 1 (exclusive): "
                                "the fraction of the original MACs to keep, e.g. 0.6")
        IMPORTANCES.get(self.importance)  # unknown name: one line with "did you mean"
        if self.round_to is not None and self.round_to < 1:
            raise EdgeDermError(f"--round-to {self.round_to} must be a positive channel multiple (8 suits mobile CPUs)")
        if self.finetune_epochs < 0:
            raise EdgeDermError(f"--finetune-epochs {self.finetune_epochs} must be 0 or more")
        if self.distill and self.finetune_epochs == 0:
            raise EdgeDermError("--distill needs fine-tuning: add --finetune-epochs N (N >= 1)")
        if self.steps < 1 or self.max_steps < 1:
            raise EdgeDermError("pruning steps must be 1 or more")
        return self


# --- which layers keep their channels ------------------------------------------------------
def _prunable_types():
    import torch.nn as nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def execution_order(model, example) -> list[str]:
    """Names of the conv/linear layers in the order a forward pass runs them."""
    import torch

    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(names[mod]))
             for m in model.modules() if isinstance(m, _prunable_types())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def default_protected(model, example) -> dict[str, str]:
    """name -> reason for the layers whose output channels pruning must keep by default.

    Found generically: the first conv run (the stem, whose few channels carry everything),
    and the output head (smp's ``segmentation_head``, timm's ``get_classifier()``, or else
    the last conv/linear run) - the head's outputs are the classes or the mask.
    """
    order = execution_order(model, example)
    if not order:
        raise EdgeDermError(f"{type(model).__name__} has no conv or linear layers to prune")
    protected = {order[0]: "stem (first conv)"}
    names = {m: n for n, m in model.named_modules()}
    head = getattr(model, "segmentation_head", None)
    if head is None and callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()
    head_layers = [names[m] for m in head.modules() if isinstance(m, _prunable_types())] if head is not None else []
    for name in head_layers or [order[-1]]:
        protected[name] = "output head"
    return protected


def index_coupled_layers(model, example) -> list[tuple[str, str]]:
    """(encoder layer, decoder layer) pairs whose output channels must stay aligned.

    ``max_unpool2d(x, indices)`` needs ``x`` to have exactly the channels of the pooled
    encoder map that produced ``indices``. The indices carry no gradient, so torch-pruning's
    graph does not see this coupling (SegNet). Found by watching one forward pass: the
    nearest conv behind the pooled map and behind the unpooled input form a pair.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    pool_inputs: dict[int, Any] = {}
    pairs_t: list[tuple[Any, Any]] = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            if name.startswith("max_pool") and name.endswith("with_indices") and isinstance(out, tuple):
                pool_inputs[id(out[1])] = (args[0], out[1])  # keep the indices alive so ids stay unique
            elif name.startswith("max_unpool"):
                indices = args[1] if len(args) > 1 else kwargs.get("indices")
                if id(indices) in pool_inputs:
                    pairs_t.append((pool_inputs[id(indices)][0], args[0]))
            return out

    with torch.enable_grad(), Watch():
        model(example)
    if not pairs_t:
        return []
    param_owner = {id(p): n for n, m in model.named_modules() if isinstance(m, _prunable_types())
                   for p in m.parameters(recurse=False)}

    def nearest_layer(t) -> str | None:
        seen, queue = set(), [t.grad_fn]
        while queue:
            fn = queue.pop(0)
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if type(fn).__name__.startswith("Convolution") or type(fn).__name__.startswith("Addmm"):
                for nxt, _ in fn.next_functions:
                    var = getattr(nxt, "variable", None)
                    if var is not None and id(var) in param_owner and var.dim() > 1:
                        return param_owner[id(var)]
            queue.extend(nxt for nxt, _ in fn.next_functions)
        return None

    pairs = []
    for source, follower in pairs_t:
        a, b = nearest_layer(source), nearest_layer(follower)
        if a and b and a != b:
            pairs.append((a, b))
    return pairs


# --- recording and restoring pruned shapes -------------------------------------------------
def _shape_attrs(module) -> tuple[str, ...]:
    import torch.nn as nn

    if isinstance(module, nn.modules.conv._ConvNd):
        return ("in_channels", "out_channels", "groups")
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return ("num_features",)
    if isinstance(module, nn.Linear):
        return ("in_features", "out_features")
    if isinstance(module, nn.GroupNorm):
        return ("num_groups", "num_channels")
    return ()


def pruned_layout(pruned, reference) -> dict[str, dict[str, int]]:
    """Shape attributes of every layer of ``pruned`` that differ from ``reference`` (the zoo build)."""
    ref = dict(reference.named_modules())
    layout = {}
    for name, m in pruned.named_modules():
        attrs = _shape_attrs(m)
        if attrs and name in ref:
            now = {a: int(getattr(m, a)) for a in attrs}
            if now != {a: int(getattr(ref[name], a)) for a in attrs}:
                layout[name] = now
    return layout


# --- pruning -------------------------------------------------------------------------------
@dataclass
class PruneResult:
    layout: dict[str, dict[str, int]]
    protected: dict[str, str]
    coupled: list[tuple[str, str]]
    params: tuple[float, float]  # before, after
    macs: tuple[float, float]
    steps: int

    def record(self, config: PruneConfig, architecture: str, source: dict) -> dict:
        """What the model card keeps: enough to rebuild the network, and how it was made."""
        return {"base_architecture": architecture, "layers": self.layout, "config": asdict(config),
                "protected": self.protected, "index_coupled": [list(p) for p in self.coupled],
                "params": list(self.params), "macs": list(self.macs), "steps": self.steps, "source": source}


def _stats(model, example) -> tuple[float, float]:
    from edgederm.models import model_stats

    s = model_stats(model, tuple(example.shape[-2:]))
    return s["params"], s["macs"]


def prune_model(model, example, config: PruneConfig, loss_fn: Callable | None = None) -> PruneResult:
    """Prune ``model`` in place (it must be in the zoo's shapes or already pruned).

    Args:
        example: one input batch [1, 3, H, W] for tracing and MAC counting.
        loss_fn: ``model -> scalar loss`` on calibration data; needed by gradient-based importance.
    """
    import copy

    import torch

    tp = _tp()
    config.validate()
    spec = IMPORTANCES.get(config.importance)
    if spec.needs_gradients and loss_fn is None:
        raise EdgeDermError(f"importance {config.importance!r} needs calibration images (training split): "
                            "pass --data DIR, or use --importance l2")
    model.eval()
    reference = copy.deepcopy(model)
    modules = dict(model.named_modules())
    protected = default_protected(model, example) if config.protect_defaults else {}
    for name in config.protect:
        if name not in modules or not name:
            import difflib

            close = difflib.get_close_matches(name, [n for n in modules if n], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else " (module names as in model.named_modules())"
            raise EdgeDermError(f"--protect {name!r}: no such layer in {type(model).__name__}{hint}")
        protected[name] = "--protect"
    coupled = index_coupled_layers(model, example)
    followers: dict[Any, list[Any]] = {}
    for source, follower in coupled:
        if source in protected or follower in protected:  # a pair keeps its channels together
            protected.setdefault(source, f"index-coupled with {follower}")
            protected.setdefault(follower, f"index-coupled with {source}")
        else:
            followers.setdefault(modules[source], []).append(modules[follower])
    ignored = [modules[n] for n in protected] + [f for fs in followers.values() for f in fs]

    params0, macs0 = _stats(model, example)
    by_budget = config.macs_budget is not None
    pruner = tp.pruner.MetaPruner(
        model, example, importance=spec.build(), global_pruning=config.global_pruning,
        pruning_ratio=config.max_ratio if by_budget else config.sparsity,
        iterative_steps=config.max_steps if by_budget else config.steps,
        max_pruning_ratio=config.max_ratio if by_budget else max(config.max_ratio, config.sparsity),
        ignored_layers=ignored, round_to=config.round_to)
    DG = pruner.DG
    steps, macs = 0, macs0
    for _ in range(pruner.iterative_steps):
        if spec.needs_gradients:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss_fn(model).backward()
        for group in pruner.step(interactive=True):
            root_dep, root_idxs = group[0]
            group.prune()
            for follower in followers.get(root_dep.target.module, ()):
                idxs = [getattr(i, "idx", i) for i in root_idxs]  # the pair has the same channel count
                fn = DG.get_pruner_of_module(follower).prune_out_channels
                DG.get_pruning_group(follower, fn, idxs).prune()
        steps += 1
        macs = _stats(model, example)[1]
        if by_budget and macs <= config.macs_budget * macs0:
            break
    model.zero_grad(set_to_none=True)
    if by_budget and macs > config.macs_budget * macs0:
        raise EdgeDermError(f"--macs-budget {config.macs_budget}: reached only {macs / macs0:.2f} of the original MACs "
                            f"with each layer pruned by up to {config.max_ratio:.0%}; protect fewer layers or raise the budget")
    try:
        with torch.no_grad():
            out_after = model(example)
            out_before = reference(example)
    except RuntimeError as e:
        raise EdgeDermError(f"pruning broke the forward pass of {type(model).__name__} ({str(e).splitlines()[0][:120]}): "
                            "two layers are coupled in a way the dependency graph missed; --protect one of them") from None
    if out_after.shape != out_before.shape:
        raise EdgeDermError(f"pruning changed the output shape {tuple(out_before.shape)} -> {tuple(out_after.shape)}; "
                            "--protect the output layer")
    params1 = _stats(model, example)[0]
    layout = pruned_layout(model, reference)
    _check_layout_rebuilds(model, reference, layout)
    return PruneResult(layout, protected, coupled, (params0, params1), (macs0, macs), steps)


def _check_layout_rebuilds(pruned, reference, layout) -> None:
    """The recorded layout must rebuild exactly the pruned tensors' shapes, or the checkpoint would not load."""
    import copy

    rebuilt = copy.deepcopy(reference)
    apply_pruned_shapes(rebuilt, layout)
    want = {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    bad = [k for k in want if got.get(k) != want[k]] + [k for k in got if k not in want]
    if bad:
        raise EdgeDermError(f"pruning resized tensors EdgeDerm cannot record ({bad[:2]}): protect the layers they "
                            "belong to with --protect")


def recalibrate_bn(model, images_nchw, batch_size: int = 32) -> None:
    """Re-estimate BatchNorm running statistics (exact averages) on ``images_nchw``, weights unchanged."""
    import torch
    import torch.nn as nn

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or len(images_nchw) == 0:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(images_nchw), batch_size):
            model(images_nchw[i:i + batch_size])
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()


# --- the whole job -------------------------------------------------------------------------
@dataclass
class PruneOutcome:
    path: Path
    original: Path
    result: PruneResult
    val_before: dict[str, float]  # metric name -> value on the val split
    val_after: dict[str, float]
    size_bytes: tuple[int, int]
    minutes: float


def _val_metric(model, arrays, card) -> dict[str, float]:
    from edgederm.evaluate import score_arrays

    classify = card.task == "classification"
    m = score_arrays(model, arrays, card.preprocessing, card.classes if classify else None, n_boot=0, desc="val")
    key = "balanced_accuracy" if classify else "dice"
    return {key: float(m[key].value)}


def prune_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, config: PruneConfig,
                     data_root: Path | None = None, n_boot: int = 1000) -> PruneOutcome:
    """Load, prune, recalibrate, fine-tune (optional), save to ``out``; scores val before and after."""
    import time

    import torch

    from edgederm.checkpoint import load_checkpoint, save_checkpoint, sha256_file
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset
    from edgederm.tensors import to_input

    config.validate()
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = Path(checkpoint).with_suffix(".safetensors")
    out = Path(out).with_suffix(".safetensors")
    if out.resolve() == checkpoint.resolve():
        raise EdgeDermError(f"--out {out} would overwrite the checkpoint being pruned: choose another name")
    torch.manual_seed(config.seed)
    model, card = load_checkpoint(checkpoint)
    prep = card.preprocessing
    root = find_dataset(card.data.get("dataset"), data_root, f"dataset of {checkpoint}")
    ds = load_dataset(root, seed=config.seed)
    val = load_arrays(ds.split("val"), prep, desc="decode val")
    val_before = _val_metric(model, val, card)
    calib_n = max(config.bn_recalibration_images, config.calibration_images)
    calib = load_arrays(ds.split("train").subset(calib_n, seed=config.seed), prep, desc="decode calibration")
    calib_x = to_input(torch.from_numpy(calib.images), prep)
    calib_y = torch.from_numpy(calib.targets)

    def loss_fn(m):
        import torch.nn.functional as F

        x, y = calib_x[:config.calibration_images], calib_y[:config.calibration_images]
        if card.task == "classification":
            return F.cross_entropy(m(x), y)
        return F.binary_cross_entropy_with_logits(m(x), y.unsqueeze(1).float())

    example = torch.zeros(1, 3, *prep.input_size)
    result = prune_model(model, example, config, loss_fn=loss_fn)
    log(f"prune: MACs {result.macs[0] / 1e6:.1f}M -> {result.macs[1] / 1e6:.1f}M "
        f"({result.macs[1] / result.macs[0]:.1%}) in {result.steps} step(s); "
        f"{len(result.layout)} layers resized, protected: {', '.join(result.protected)}")
    recalibrate_bn(model, calib_x[:config.bn_recalibration_images])
    # pruning an already pruned checkpoint: its layout is relative to that one, the card's to the zoo build
    result.layout = {**card.pruning.get("layers", {}), **result.layout}
    record = result.record(config, card.architecture, {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint),
                                                       "val": val_before})
    if config.finetune_epochs:
        from edgederm.train import TrainConfig, train

        t = card.training
        tc = TrainConfig(card.architecture, str(root), epochs=config.finetune_epochs,
                         batch_size=config.batch_size, lr=config.finetune_lr, warmup_steps=30,
                         label_smoothing=t.get("label_smoothing", 0.1 if card.task == "classification" else 0.0),
                         class_weighting=t.get("class_weighting", "inverse_frequency"),
                         input_size=tuple(prep.input_size), seed=config.seed, train_limit=config.train_limit,
                         threads=config.threads,
                         distill_from=str(checkpoint) if config.distill else None,
                         distill_alpha=t.get("distill_alpha", 0.7), distill_temperature=t.get("distill_temperature", 2.0),
                         extra={"pruned_from": str(checkpoint)})
        path = train(tc, None, out, n_boot=n_boot,
                     initial_model=model, card_fields={"pruning": record})
        model, card_out = load_checkpoint(path)  # also proves the saved checkpoint reloads
    else:
        card_out = replace(card, pruning=record, metrics={},
                           training={**card.training, "pruned_without_finetune": True})
        path = save_checkpoint(model, card_out, out)
    val_after = _val_metric(model.eval(), val, card_out)
    return PruneOutcome(path, checkpoint, result, val_before, val_after,
                        (checkpoint.stat().st_size, path.stat().st_size), (time.perf_counter() - started) / 60)


# --- latency: measured, original and pruned alternating ------------------------------------
BENCH_RUNTIMES = ("torch", "onnx", "tflite")


def deployable_twin(model, card):
    """``export.deployable`` with the card renamed to the twin's architecture (for the latency bench)."""
    from edgederm.models.deploy import deployable

    twin, note = deployable(model, card)
    if not note:
        return model, card
    from edgederm.models import MODELS

    return twin, replace(card, architecture=MODELS.get(card.architecture).deploy_variant)


def compare_latency(original: Path, pruned: Path, runtimes=BENCH_RUNTIMES, threads: int = 2, rounds: int = 3,
                    runs: int = 10, data_root=None, workdir: Path | None = None) -> dict[str, dict]:
    """runtime -> {"before_ms", "after_ms", "artifact_bytes"}: batch-1 medians, original and pruned
    measured in alternating rounds so that load from other jobs hits both alike."""
    import numpy as np
    import torch

    from device_bench.runners import open_runner
    from device_bench.timing import measure_interleaved
    from edgederm.checkpoint import load_checkpoint

    unknown = [r for r in runtimes if r not in BENCH_RUNTIMES]
    if unknown:
        raise EdgeDermError(f"--bench {unknown[0]!r}: choose from {', '.join(BENCH_RUNTIMES)} or none")
    loaded = [load_checkpoint(p) for p in (original, pruned)]
    prep = loaded[0][1].preprocessing
    fns: dict[str, list] = {}
    sizes: dict[str, list] = {}
    inputs: dict[str, list] = {}
    if "torch" in runtimes:
        torch.set_num_threads(threads)

        def eager(m):
            m = m.eval().to(memory_format=torch.channels_last)

            def run(x):
                with torch.inference_mode():
                    return m(x)
            return run
        fns["torch"] = [eager(m) for m, _ in loaded]
        x = torch.randn(1, 3, *prep.input_size).contiguous(memory_format=torch.channels_last)
        inputs["torch"] = [x, x]
    formats = [f for f in ("onnx", "tflite") if f in runtimes]
    tmp = None
    if formats:
        from edgederm.export import export

        tmp = tempfile.TemporaryDirectory(dir=workdir, prefix="edgederm-prune-bench-")
        for fmt in formats:
            fns[fmt], sizes[fmt], inputs[fmt] = [], [], []
        for label, (m, c), src in zip(("original", "pruned"), loaded, (original, pruned)):
            folder = Path(tmp.name) / label
            twin, twin_card = deployable_twin(m, c)
            log(f"prune bench: exporting the {label} model to {', '.join(formats)} (fp32) ...")
            outcome = export(src, folder, formats=["onnx"] + (["tflite"] if "tflite" in formats else []),
                             tflite_precisions=("fp32",), verify=False, data_root=data_root, model=twin,
                             card=twin_card)
            if outcome.failures:
                raise EdgeDermError(f"export of the {label} model for latency failed: {outcome.failures[0]['error']}")
            files = {"onnx": folder / "model.onnx", "tflite": folder / "model_fp32.tflite"}
            for fmt in formats:
                runner = open_runner(files[fmt], fmt, threads=threads)
                fns[fmt].append(runner)
                sizes[fmt].append(files[fmt].stat().st_size)
                inputs[fmt].append(np.random.default_rng(0).standard_normal(runner.input_shape).astype(np.float32))
    results = {}
    try:
        for rt, (fa, fb) in fns.items():
            (xa, xb) = inputs[rt]
            lat = measure_interleaved({"before": lambda: fa(xa), "after": lambda: fb(xb)}, warmup=3,
                                      runs=rounds * runs, rounds=rounds, max_seconds=10 * rounds)
            results[rt] = {"before_ms": lat["before"]["median_ms"], "after_ms": lat["after"]["median_ms"],
                           "artifact_bytes": sizes.get(rt)}
    finally:
        fns.clear()
        if tmp is not None:
            tmp.cleanup()
    return results


def speedup_text(before_ms: float, after_ms: float) -> str:
    ratio = before_ms / after_ms if after_ms > 0 else float("inf")
    return f"{ratio:.2f}x faster" if ratio > 1.02 else f"not faster ({ratio:.2f}x)"
