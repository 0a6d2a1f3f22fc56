"""Removing channels from a model in memory with torch-pruning's dependency graph.

``prune_model(model, example, PruneConfig(macs_budget=0.6))`` removes whole output channels
(and every coupled input channel: residual adds, depthwise convs, BN, concat skips) until the
target is met, so the result is a smaller dense network; ``recalibrate_bn`` then re-estimates
the BatchNorm statistics the removed channels disturbed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from edgederm.errors import EdgeDermError
from edgederm.models.deploy import apply_pruned_shapes
from edgederm.prune.config import PruneConfig
from edgederm.prune.importance import IMPORTANCES, ImportanceSpec
from edgederm.prune.layers import index_coupled_layers, protected_layers, pruned_layout


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


def _split_coupled(modules: dict, protected: dict[str, str], coupled: list[tuple[str, str]]):
    """(followers, ignored): index-coupled pairs either stay whole (one side protected) or the
    follower is pruned with its source's indices; ``ignored`` are the modules torch-pruning must skip."""
    followers: dict[Any, list[Any]] = {}
    for source, follower in coupled:
        if source in protected or follower in protected:  # a pair keeps its channels together
            protected.setdefault(source, f"index-coupled with {follower}")
            protected.setdefault(follower, f"index-coupled with {source}")
        else:
            followers.setdefault(modules[source], []).append(modules[follower])
    ignored = [modules[n] for n in protected] + [f for fs in followers.values() for f in fs]
    return followers, ignored


def _make_pruner(model, example, config: PruneConfig, spec: ImportanceSpec, ignored: list):
    import torch_pruning as tp

    by_budget = config.macs_budget is not None
    return tp.pruner.MetaPruner(
        model, example, importance=spec.build(), global_pruning=config.global_pruning,
        pruning_ratio=config.max_ratio if by_budget else config.sparsity,
        iterative_steps=config.max_steps if by_budget else config.steps,
        max_pruning_ratio=config.max_ratio if by_budget else max(config.max_ratio, config.sparsity),
        ignored_layers=ignored, round_to=config.round_to)


def _prune_steps(model, example, pruner, followers: dict, config: PruneConfig, spec: ImportanceSpec,
                 loss_fn: Callable | None, macs0: float) -> tuple[int, float]:
    """Step the pruner (each index-coupled follower pruned alike) until the target; returns (steps, MACs)."""
    import torch

    graph = pruner.DG
    by_budget = config.macs_budget is not None
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
                fn = graph.get_pruner_of_module(follower).prune_out_channels
                graph.get_pruning_group(follower, fn, idxs).prune()
        steps += 1
        macs = _stats(model, example)[1]
        if by_budget and macs <= config.macs_budget * macs0:
            break
    model.zero_grad(set_to_none=True)
    if by_budget and macs > config.macs_budget * macs0:
        raise EdgeDermError(f"--macs-budget {config.macs_budget}: reached only {macs / macs0:.2f} of the original MACs "
                            f"with each layer pruned by up to {config.max_ratio:.0%}; protect fewer layers or raise the budget")
    return steps, macs


def _check_forward(model, reference, example) -> None:
    """The pruned model still runs and gives the original's output shape, or a one-line hint."""
    import torch

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


def prune_model(model, example, config: PruneConfig, loss_fn: Callable | None = None) -> PruneResult:
    """Prune ``model`` in place (it must be in the zoo's shapes or already pruned).

    Stem, output head and segmentation head keep their channels by default (``protect_defaults``).

    Args:
        example: one input batch [1, 3, H, W] for tracing and MAC counting.
        loss_fn: ``model -> scalar loss`` on calibration data; needed by gradient-based importance.
    """
    import copy

    config.validate()
    spec = IMPORTANCES.get(config.importance)
    if spec.needs_gradients and loss_fn is None:
        raise EdgeDermError(f"importance {config.importance!r} needs calibration images (training split): "
                            "pass --data DIR, or use --importance l2")
    model.eval()
    reference = copy.deepcopy(model)
    protected = protected_layers(model, example, config.protect_defaults, config.protect)
    coupled = index_coupled_layers(model, example)
    followers, ignored = _split_coupled(dict(model.named_modules()), protected, coupled)
    params0, macs0 = _stats(model, example)
    pruner = _make_pruner(model, example, config, spec, ignored)
    steps, macs = _prune_steps(model, example, pruner, followers, config, spec, loss_fn, macs0)
    _check_forward(model, reference, example)
    params1 = _stats(model, example)[0]
    layout = pruned_layout(model, reference)
    _check_layout_rebuilds(model, reference, layout)
    return PruneResult(layout, protected, coupled, (params0, params1), (macs0, macs), steps)


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
