"""Reference training recipes, registered by name; each finishes in about 20 minutes on 2 CPU cores.

``edgederm train --recipe NAME`` runs one; ``edgederm train --recipe all`` runs them in
dependency order (the MobileNetV3 student needs the Lite0 teacher). Weights go to
``$EDGEDERM_HOME/checkpoints/NAME.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgederm.registry import Registry
from edgederm.train import TrainConfig


@dataclass(frozen=True)
class TrainingRecipe:
    """A reference training run: its ``TrainConfig``, why it is set so, and its teacher if it distils."""

    name: str
    config: TrainConfig
    why: str
    teacher: str | None = None  # recipe whose checkpoint is the distillation teacher


RECIPES: Registry[TrainingRecipe] = Registry("recipe")


def _add(recipe: TrainingRecipe) -> None:
    RECIPES.register(recipe.name, recipe)


_add(TrainingRecipe("lite0_derm7", TrainConfig(
    "efficientnet_lite0", "derm7", epochs=9, batch_size=32, lr=1e-3, warmup_steps=150, pretrained="imagenet",
    progressive_size=(112, 150), progressive_epochs=6, freeze_blocks=2),
    "EfficientNet-Lite0 from the offline ImageNet weights; the only family with pretraining offline. "
    "Six epochs at 112x150 then three at 144x192, stem and first two stages frozen (docs/benchmarks.md)."))
_add(TrainingRecipe("lite0_vienna", TrainConfig(
    "efficientnet_lite0", "derm7", epochs=4, batch_size=32, lr=1e-3, warmup_steps=30, pretrained="imagenet",
    input_size=(112, 150), freeze_blocks=2, train_limit=1200, sources=("vidir_modern", "vidir_molemax", "vienna_dias")),
    "Site-shift experiment (docs/site-shift.md): Lite0 on the three Vienna sources only, a short CPU budget "
    "(1,200 train images, 4 epochs at 112x150); evaluate on derm7 test --by source to see rosendahl."))
_add(TrainingRecipe("mnv3l_derm7", TrainConfig(
    "mobilenetv3_large", "derm7", epochs=8, batch_size=32, lr=2e-3, warmup_steps=200,
    distill_alpha=0.8, distill_temperature=2.0, progressive_size=(112, 150), progressive_epochs=6),
    "MobileNetV3-Large from random init, distilled from the Lite0 reference: from scratch it collapses toward nv "
    "in this budget (calibration.md). Six epochs at 112x150 (teacher included), two at 144x192.",
    teacher="lite0_derm7"))
_add(TrainingRecipe("unet_lite0_lesionseg", TrainConfig(
    "unet_lite0", "lesionseg", epochs=4, batch_size=16, lr=2e-3, warmup_steps=50, pretrained="imagenet",
    input_size=(128, 192),
    label_smoothing=0.0, class_weighting="none"), "U-Net whose encoder starts from the Lite0 ImageNet weights."))
_add(TrainingRecipe("segnet_lesionseg", TrainConfig(
    "segnet", "lesionseg", epochs=3, batch_size=16, lr=3e-3, warmup_steps=30, label_smoothing=0.0,
    input_size=(128, 192),
    class_weighting="none"), "The paper's index-unpooling SegNet, light widths, random init."))
