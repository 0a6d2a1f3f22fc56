"""The whole job behind ``edgederm prune``: a checkpoint in, a pruned checkpoint out.

Prune, re-estimate BN statistics, optionally fine-tune (with distillation from the unpruned
model) through ``edgederm.train``, save, and score the validation split before and after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.progress import log
from edgederm.prune.channels import PruneResult, prune_model, recalibrate_bn
from edgederm.prune.config import PruneConfig
from edgederm.tasks import task_of


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
    """The task's headline metric on the val split (no bootstrap)."""
    from edgederm.evaluate import score_arrays

    spec = task_of(card.task)
    m = score_arrays(model, arrays, card.preprocessing, spec.scoring_classes(card.classes), n_boot=0, desc="val")
    return {spec.headline: float(m[spec.headline].value)}


def _calibration(ds, prep, config: PruneConfig):
    """(images as model input, targets) of a train subset, for BN recalibration and Taylor importance."""
    import torch

    from edgederm.data.arrays import load_arrays
    from edgederm.tensors import to_input

    n = max(config.bn_recalibration_images, config.calibration_images)
    calib = load_arrays(ds.split("train").subset(n, seed=config.seed), prep, desc="decode calibration")
    return to_input(torch.from_numpy(calib.images), prep), torch.from_numpy(calib.targets)


def _finetune(model, card, root: Path, checkpoint: Path, out: Path, config: PruneConfig, record: dict,
              n_boot: int):
    """Fine-tune the pruned in-memory model with the source's training settings; returns (model, card, path)."""
    from edgederm.checkpoint import load_checkpoint
    from edgederm.train import TrainConfig, train

    t = card.training
    tc = TrainConfig(card.architecture, str(root), epochs=config.finetune_epochs,
                     batch_size=config.batch_size, lr=config.finetune_lr, warmup_steps=30,
                     label_smoothing=t.get("label_smoothing", task_of(card.task).label_smoothing),
                     class_weighting=t.get("class_weighting", "inverse_frequency"),
                     input_size=tuple(card.preprocessing.input_size), seed=config.seed,
                     train_limit=config.train_limit, threads=config.threads,
                     distill_from=str(checkpoint) if config.distill else None,
                     distill_alpha=t.get("distill_alpha", 0.7), distill_temperature=t.get("distill_temperature", 2.0),
                     extra={"pruned_from": str(checkpoint)})
    path = train(tc, None, out, n_boot=n_boot, initial_model=model, card_fields={"pruning": record})
    model, card_out = load_checkpoint(path)  # also proves the saved checkpoint reloads
    return model, card_out, path


def _prune_and_record(model, card, checkpoint: Path, config: PruneConfig, calib, val_before: dict):
    """Prune with the task's loss for gradient importance, recalibrate BN; returns (result, card record)."""
    import torch

    from edgederm.checkpoint import sha256_file

    calib_x, calib_y = calib
    spec = task_of(card.task)

    def loss_fn(m):
        return spec.loss(m(calib_x[:config.calibration_images]), calib_y[:config.calibration_images])

    result = prune_model(model, torch.zeros(1, 3, *card.preprocessing.input_size), config, loss_fn=loss_fn)
    log(f"prune: MACs {result.macs[0] / 1e6:.1f}M -> {result.macs[1] / 1e6:.1f}M "
        f"({result.macs[1] / result.macs[0]:.1%}) in {result.steps} step(s); "
        f"{len(result.layout)} layers resized, protected: {', '.join(result.protected)}")
    recalibrate_bn(model, calib_x[:config.bn_recalibration_images])
    # pruning an already pruned checkpoint: its layout is relative to that one, the card's to the zoo build
    result.layout = {**card.pruning.get("layers", {}), **result.layout}
    source = {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "val": val_before}
    return result, result.record(config, card.architecture, source)


def prune_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, config: PruneConfig,
                     data_root: Path | None = None, n_boot: int = 1000) -> PruneOutcome:
    """Load, prune, recalibrate, fine-tune (optional), save to ``out``; scores val before and after."""
    import time

    import torch

    from edgederm.checkpoint import load_checkpoint, save_checkpoint
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

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
    root = find_dataset(card.data.get("dataset"), data_root, f"dataset of {checkpoint}")
    ds = load_dataset(root, seed=config.seed)
    val = load_arrays(ds.split("val"), card.preprocessing, desc="decode val")
    val_before = _val_metric(model, val, card)
    calib = _calibration(ds, card.preprocessing, config)
    result, record = _prune_and_record(model, card, checkpoint, config, calib, val_before)
    if config.finetune_epochs:
        model, card_out, path = _finetune(model, card, root, checkpoint, out, config, record, n_boot)
    else:
        card_out = replace(card, pruning=record, metrics={},
                           training={**card.training, "pruned_without_finetune": True})
        path = save_checkpoint(model, card_out, out)
    val_after = _val_metric(model.eval(), val, card_out)
    return PruneOutcome(path, checkpoint, result, val_before, val_after,
                        (checkpoint.stat().st_size, path.stat().st_size), (time.perf_counter() - started) / 60)
