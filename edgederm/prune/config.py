"""``PruneConfig``: what to prune and how far, checked into one-line errors before any work."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgederm.errors import EdgeDermError
from edgederm.prune.importance import IMPORTANCES


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
