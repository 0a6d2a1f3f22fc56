"""Model entries, the registry, and ``create_model``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from edgederm.errors import EdgeDermError
from edgederm.preprocessing import Preprocessing
from edgederm.registry import Registry
from edgederm.tasks import task_of


@dataclass(frozen=True)
class ModelEntry:
    """What the zoo knows about one architecture before building it.

    Attributes:
        builder: ``"module:function"`` called as ``function(entry, num_classes, pretrained, **kwargs)``.
        preprocessing: the default input record (size, normalisation) for this architecture.
        offline_weights: description of ImageNet weights available without network, if any.
        online_weights: what ``pretrained="online"`` downloads (timm / smp hub weights).
        input_divisor: spatial sizes must be multiples of this.
        unsupported: format -> reason, for export routes known not to work (checked by tests).
    """

    name: str
    task: str  # a task name of edgederm.tasks.TASKS
    family: str
    builder: str
    description: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    builder_args: dict[str, Any] = field(default_factory=dict)
    offline_weights: str | None = None
    online_weights: str | None = None
    input_divisor: int = 32
    unsupported: dict[str, str] = field(default_factory=dict)
    reference: bool = False  # one of the reference models trained by a recipe
    deploy_variant: str | None = None  # same weights, convertible ops: what export converts

    @property
    def is_classifier(self) -> bool:
        """Its outputs are class scores (a segmenter's are per-pixel logits)."""
        return task_of(self.task).has_class_labels


MODELS: Registry[ModelEntry] = Registry("model")


def register(entry: ModelEntry) -> ModelEntry:
    return MODELS.register(entry.name, entry)


def get_entry(name: str) -> ModelEntry:
    return MODELS.get(name)  # the package imports zoo.py, which fills the registry


def create_model(name: str, num_classes: int | None = None, pretrained: bool | str = False, **kwargs):
    """Build a zoo model.

    Args:
        num_classes: classifier outputs (default 7, the HAM10000 classes); segmenters give one
            lesion logit per pixel and ignore it.
        pretrained: False (random init); "imagenet" (offline ImageNet weights where the entry has
            them); "online" or True (download the timm / smp hub weights; needs network).
    """
    entry = get_entry(name)
    if pretrained == "imagenet" and not entry.offline_weights:
        raise EdgeDermError(f"model {name!r} has no offline ImageNet weights: use --pretrained online "
                            "(needs network) or none")
    module_name, _, fn = entry.builder.partition(":")
    build = getattr(importlib.import_module(module_name), fn)
    n = num_classes if num_classes is not None else (7 if entry.is_classifier else 1)
    return build(entry, n, pretrained, **{**entry.builder_args, **kwargs})


def model_stats(model, input_size: tuple[int, int]) -> dict[str, float]:
    """Parameter count and multiply-accumulates of one forward pass at batch 1 (torch's FLOP counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return {"params": float(params), "macs": counter.get_total_flops() / 2.0}
