"""Reference recipes: each registered recipe is a training run that can start (checked without training).

Training one takes about 20 minutes, so this checks what would make it fail or mislead before its
first step: the model is in the zoo, the dataset is its task's, every input size fits the model's
stride, the schedule and the options are in range, and a teacher is a recipe of the same task.
"""

from __future__ import annotations

import pytest

from edgederm.models import get_entry
from edgederm.recipes import RECIPES
from edgederm.tasks import task_of

RECIPE_NAMES = RECIPES.names()


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_recipe_is_well_formed(name):
    recipe = RECIPES.get(name)
    c = recipe.config
    assert recipe.name == name and recipe.why
    entry = get_entry(c.model)  # an unknown model fails here with "did you mean"
    assert c.dataset == task_of(entry.task).default_dataset
    sizes = [tuple(c.input_size or entry.preprocessing.input_size)] + ([tuple(c.progressive_size)] if c.progressive_size else [])
    for h, w in sizes:
        assert h % entry.input_divisor == 0 and w % entry.input_divisor == 0, (name, (h, w), entry.input_divisor)
    assert c.epochs > 0 and 0 <= c.progressive_epochs < c.epochs and (c.progressive_epochs > 0) == bool(c.progressive_size)
    assert c.lr > 0 and c.batch_size > 0 and c.warmup_steps >= 0 and 0 <= c.label_smoothing < 1
    assert c.class_weighting in ("inverse_frequency", "none") and c.pretrained in (False, "imagenet", "online")
    if not task_of(entry.task).has_class_labels:
        assert c.label_smoothing == 0.0  # a mask has no classes to smooth
    if recipe.teacher:
        teacher = RECIPES.get(recipe.teacher)
        assert teacher.name != name
        assert get_entry(teacher.config.model).task == entry.task and teacher.config.dataset == c.dataset
        assert 0 < c.distill_alpha <= 1 and c.distill_temperature > 0
