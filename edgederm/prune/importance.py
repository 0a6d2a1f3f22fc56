"""How channels are ranked for removal: the registry of torch-pruning importance criteria."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgederm.registry import Registry


@dataclass(frozen=True)
class ImportanceSpec:
    build: Callable[[], Any]  # -> a torch_pruning importance object
    description: str
    needs_gradients: bool = False  # Taylor: weight * grad, from a loss on calibration images


IMPORTANCES: Registry[ImportanceSpec] = Registry("importance")


def _importance_module():
    import torch_pruning as tp  # heavy: only when a criterion is built

    return tp.importance


IMPORTANCES.register("l1", ImportanceSpec(lambda: _importance_module().GroupMagnitudeImportance(p=1),
                                          "L1 norm of each channel's weights, summed over its coupled layers"))
IMPORTANCES.register("l2", ImportanceSpec(lambda: _importance_module().GroupMagnitudeImportance(p=2),
                                          "L2 norm of each channel's weights, summed over its coupled layers"))
IMPORTANCES.register("taylor", ImportanceSpec(lambda: _importance_module().GroupTaylorImportance(),
                                              "first-order Taylor: |weight x gradient| of the task loss",
                                              needs_gradients=True))
IMPORTANCES.register("bn_scale", ImportanceSpec(lambda: _importance_module().BNScaleImportance(),
                                                "|gamma| of the BatchNorm after each channel (network slimming)"))
