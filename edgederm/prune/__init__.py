"""Structured (channel) pruning with torch-pruning's dependency graph, and pruned checkpoints.

``prune_model(model, example, PruneConfig(macs_budget=0.6))`` removes whole output channels
(and every coupled input channel: residual adds, depthwise convs, BN, concat skips) until the
target is met, so the result is a smaller dense network that every runtime runs faster -
unlike masks. Stem, output head and segmentation head keep their channels by default.

A pruned model's channel counts differ from the zoo's, so its model card records each
resized layer's shape attributes (``card.pruning["layers"]``). ``load_checkpoint`` builds
the zoo architecture, resizes those layers in place (``apply_pruned_shapes``) and loads the
weights strictly: no pickled code, no replay of the pruning, and no torch-pruning at load time.

One idea per module:

- ``importance``: the registry of channel-ranking criteria (l1, l2, taylor, bn_scale)
- ``config``: ``PruneConfig``, what to prune and how far
- ``layers``: run order, protected layers, index-coupled pairs, the recorded shape layout
- ``channels``: ``prune_model`` (in memory) and ``recalibrate_bn``
- ``pruned_checkpoint``: ``prune_checkpoint``, the whole job behind ``edgederm prune``
- ``latency``: ``compare_latency``, original vs pruned measured in alternating rounds
"""

from edgederm.models.deploy import apply_pruned_shapes
from edgederm.prune.channels import PruneResult, prune_model, recalibrate_bn
from edgederm.prune.config import PruneConfig
from edgederm.prune.importance import IMPORTANCES, ImportanceSpec
from edgederm.prune.latency import BENCH_RUNTIMES, compare_latency, deployable_twin, speedup_text
from edgederm.prune.layers import default_protected, execution_order, index_coupled_layers, pruned_layout
from edgederm.prune.pruned_checkpoint import PruneOutcome, prune_checkpoint

__all__ = ["BENCH_RUNTIMES", "IMPORTANCES", "ImportanceSpec", "PruneConfig", "PruneOutcome", "PruneResult",
           "apply_pruned_shapes", "compare_latency", "default_protected", "deployable_twin", "execution_order",
           "index_coupled_layers", "prune_checkpoint", "prune_model", "pruned_layout", "recalibrate_bn",
           "speedup_text"]
