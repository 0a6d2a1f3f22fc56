"""Training learns: on generated lesions (separable by colour) a short run beats chance clearly."""

from __future__ import annotations

import json

import numpy as np
import torch

from edgederm.tensors import augment
from edgederm.train import TrainConfig, _cosine, train


def test_classifier_learns_synthetic(synthetic_root, tmp_path):
    config = TrainConfig("efficientnet_lite0", "derm7", epochs=6, batch_size=16, lr=3e-3, warmup_steps=3,
                         input_size=(48, 64), pretrained="imagenet")
    path = train(config, synthetic_root, tmp_path / "cls", n_boot=20)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["metrics"]["balanced_accuracy"]["value"] > 0.4  # chance is 1/7
    assert len(card["training"]["history"]) == 6


def test_segmenter_learns_synthetic(synthetic_root, tmp_path):
    config = TrainConfig("unet_lite0", "lesionseg", epochs=8, batch_size=8, lr=3e-3, warmup_steps=3,
                         input_size=(64, 96), pretrained="imagenet", label_smoothing=0.0, class_weighting="none")
    path = train(config, synthetic_root, tmp_path / "seg", n_boot=20)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["metrics"]["dice"]["value"] > 0.6


def test_distillation_uses_teacher(synthetic_root, tmp_path):
    teacher = train(TrainConfig("mobilenetv3_small", "derm7", epochs=2, batch_size=16, lr=3e-3, warmup_steps=2,
                                input_size=(48, 64)), synthetic_root, tmp_path / "teacher", n_boot=0)
    student = train(TrainConfig("mobilenetv2", "derm7", epochs=1, batch_size=16, lr=3e-3, warmup_steps=2,
                                input_size=(32, 48), distill_from=str(teacher)), synthetic_root,
                    tmp_path / "student", n_boot=0)
    card = json.loads(student.with_suffix(".json").read_text())
    assert card["training"]["distill_from"] == str(teacher)


def test_augment_keeps_mask_aligned_with_image():
    # A bright square with its own mask: after any flip/rotation both must still coincide.
    img = torch.zeros(4, 3, 32, 48)
    img[:, :, 8:20, 10:30] = 1.0
    mask = img[:, :1].clone()
    out, m = augment(img, mask, generator=torch.Generator().manual_seed(1), jitter=0.0)
    bright = out[:, 0] > 0.5
    agree = (bright == (m[:, 0] > 0.5)).float().mean()
    assert agree > 0.97


def test_cosine_schedule_shape():
    assert _cosine(0, 100, 10) == 0.1
    assert _cosine(9, 100, 10) == 1.0
    assert abs(_cosine(100, 100, 10)) < 1e-9
    values = [_cosine(s, 100, 10) for s in range(10, 100)]
    assert np.all(np.diff(values) <= 1e-12)


def test_frozen_blocks_keep_their_weights_and_progressive_epochs_train_small(synthetic_root, tmp_path):
    from edgederm.checkpoint import load_checkpoint
    from edgederm.models import create_model

    config = TrainConfig("efficientnet_lite0", "derm7", epochs=2, batch_size=16, lr=3e-3, warmup_steps=2,
                         input_size=(48, 64), pretrained="imagenet", freeze_blocks=2,
                         progressive_size=(32, 48), progressive_epochs=1)
    path = train(config, synthetic_root, tmp_path / "frozen", n_boot=0)
    trained, _ = load_checkpoint(path)
    start = create_model("efficientnet_lite0", num_classes=7, pretrained="imagenet")
    before, after = start.state_dict(), trained.state_dict()
    for name in before:
        if name.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")):
            assert torch.equal(before[name], after[name]), f"{name} changed although frozen"
    changed = [n for n in before if n.startswith("blocks.3.") and before[n].is_floating_point()
               and not torch.equal(before[n], after[n])]
    assert changed, "unfrozen blocks must train"
    card = json.loads(path.with_suffix(".json").read_text())
    assert [h["train_size"] for h in card["training"]["history"]] == [[32, 48], [48, 64]]


def test_freeze_blocks_on_a_model_without_blocks_is_one_line():
    import pytest

    from edgederm.errors import EdgeDermError
    from edgederm.train import freeze_early_layers

    with pytest.raises(EdgeDermError, match="freeze_blocks"):
        freeze_early_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), 2)


def test_augment_resamples_to_out_size():
    img = torch.rand(2, 3, 32, 48)
    mask = (img[:, :1] > 0.5).float()
    out, m = augment(img, mask, generator=torch.Generator().manual_seed(0), out_size=(16, 24))
    assert out.shape == (2, 3, 16, 24) and m.shape == (2, 1, 16, 24)
