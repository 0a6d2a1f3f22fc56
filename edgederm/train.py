"""CPU-friendly fine-tuning of zoo models on derm data, with optional distillation.

Images are decoded once into memory (``data.arrays``); augmentation runs on whole batches in
torch; the model runs channels-last on every core. The loss is the task's (``edgederm.tasks``):
classification uses cross-entropy with inverse-frequency class weights and label smoothing
(balanced accuracy is the target, and nv is two thirds of derm7); segmentation uses BCE + soft
Dice. A teacher checkpoint turns on knowledge distillation (Hinton et al.: KL on
temperature-softened outputs).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log
from edgederm.tasks import task_of


@dataclass
class TrainConfig:
    """A training recipe. Serialised into the model card; ``edgederm train`` flags map onto it."""

    model: str
    dataset: str = "derm7"  # a folder name below the data root, or a path
    epochs: int = 7
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    class_weighting: str = "inverse_frequency"  # or "none"
    pretrained: str | bool = False  # False | "imagenet" | "online"
    input_size: tuple[int, int] | None = None  # default: the zoo entry's
    distill_from: str | None = None  # teacher checkpoint (same task, same classes)
    distill_alpha: float = 0.7  # weight of the distillation term
    distill_temperature: float = 2.0
    train_limit: int | None = None  # use a class-stratified subset of this many training images
    # Progressive resizing: the first ``progressive_epochs`` train at this (H, W), the rest at
    # input_size. Pixels set the CPU cost, and ending at full size removes the train/test gap.
    progressive_size: tuple[int, int] | None = None
    progressive_epochs: int = 0
    freeze_blocks: int = 0  # freeze the stem and the first N blocks (pretrained low-level features)
    sources: tuple[str, ...] = ()  # only images from these acquisition sources (metadata.csv); () = all
    seed: int = 0
    threads: int | None = None
    extra: dict = field(default_factory=dict)


def _resolve_dataset(config: TrainConfig, data_root: Path | None):
    from edgederm.data import load_dataset
    from edgederm.data.layouts import find_dataset

    ds = load_dataset(find_dataset(config.dataset, data_root), seed=config.seed)
    if config.sources:  # e.g. train on some clinics, test on another (docs/site-shift.md)
        from edgederm.data.sources import select_sources

        ds = select_sources(ds, list(config.sources))
    return ds


def keep_freed_memory() -> bool:
    """Stop glibc from returning big tensors' memory to the OS after every step.

    By default each activation buffer over 32 MB is mmap'd and unmapped per step, so every
    step page-faults its memory in again: measured here, half of a training process's CPU
    time went to the kernel. Serving all allocations from the heap and never trimming it
    brought that to under 1 %. glibc only; elsewhere a no-op.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 62))
    except (OSError, AttributeError):
        return False


def freeze_early_layers(model, n_blocks: int) -> list:
    """Freeze the stem and the first ``n_blocks`` stages of a timm EfficientNet/MobileNet.

    Their ImageNet edge and texture filters need no dermoscopy tuning, and they run at the
    highest resolution: without gradients they skip the backward pass, measured here 1.5x more
    Lite0 training images per second at 224 px with 2 stages frozen. Returns the frozen
    modules, which the training loop keeps in eval mode so their BatchNorm statistics stay put.
    """
    if n_blocks <= 0:
        return []
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "conv_stem"):
        raise EdgeDermError(f"freeze_blocks needs a timm EfficientNet/MobileNet (conv_stem + blocks); "
                            f"{type(model).__name__} has neither: set freeze_blocks to 0")
    if n_blocks >= len(blocks):
        raise EdgeDermError(f"freeze_blocks={n_blocks} would freeze all {len(blocks)} blocks: use fewer")
    frozen = [model.conv_stem, getattr(model, "bn1", None), *list(blocks)[:n_blocks]]
    frozen = [m for m in frozen if m is not None]
    for module in frozen:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


@dataclass
class _Run:
    """What every step of one training run shares."""

    config: TrainConfig
    spec: Any  # the task's TaskSpec
    prep: Any  # the student's Preprocessing
    model: Any
    frozen: list  # modules kept in eval mode (frozen BatchNorm statistics)
    teacher: Any
    teacher_prep: Any
    weight: Any  # class weights for the loss, or None
    opt: Any
    sched: Any
    gen: Any  # torch.Generator: batch order and augmentation
    images: Any  # uint8 NHWC train images (torch)
    targets: Any
    steps_per_epoch: int


def _load_data(config: TrainConfig, data_root: Path | None, entry):
    """(dataset, preprocessing, train arrays, val arrays), the task of data and model checked."""
    from edgederm.data.arrays import load_arrays

    prep = entry.preprocessing if config.input_size is None else entry.preprocessing.replace(input_size=list(config.input_size))
    ds = _resolve_dataset(config, data_root)
    if ds.task != entry.task:
        raise EdgeDermError(f"model {config.model!r} is a {entry.task} model but {ds.root} holds {ds.task} data")
    train_ds, val_ds = ds.split("train"), ds.split("val")
    if config.train_limit:
        train_ds = train_ds.subset(config.train_limit, seed=config.seed)
    log(ds.describe())
    return ds, prep, load_arrays(train_ds, prep, desc="decode train"), load_arrays(val_ds, prep, desc="decode val")


def _build_model(config: TrainConfig, spec, classes: list[str], initial_model):
    """(channels-last model in train mode, its frozen modules): a zoo build or ``initial_model``."""
    import torch

    from edgederm.models import create_model

    model = initial_model if initial_model is not None else create_model(
        config.model, num_classes=spec.output_channels(list(classes)), pretrained=config.pretrained)
    if spec.has_class_labels and config.pretrained and initial_model is None:
        # timm's Google-style head init gives logits of std ~8 on pretrained features; a small
        # head starts fine-tuning at loss ~ln(C) instead of wrecking the backbone in warm-up.
        head = model.get_classifier()
        torch.nn.init.normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)
    model = model.to(memory_format=torch.channels_last).train()
    return model, freeze_early_layers(model, config.freeze_blocks)


def _load_teacher(config: TrainConfig, spec, ds):
    """(teacher in eval mode, its preprocessing), or (None, None) without ``distill_from``."""
    import torch

    from edgederm.checkpoint import load_checkpoint

    if not config.distill_from:
        return None, None
    teacher, tcard = load_checkpoint(config.distill_from)
    if tcard.task != ds.task:
        raise EdgeDermError(f"teacher {config.distill_from} is a {tcard.task} model, data is {ds.task}")
    if spec.has_class_labels and tcard.classes != list(ds.classes):
        raise EdgeDermError(f"teacher {config.distill_from} has classes {tcard.classes}, data has {list(ds.classes)}")
    return teacher.to(memory_format=torch.channels_last).eval(), tcard.preprocessing


def _class_weights(config: TrainConfig, spec, targets: np.ndarray, n_classes: int):
    """Inverse-frequency class weights (mean 1) for a class-labelled task, else None."""
    import torch

    if not (spec.has_class_labels and config.class_weighting == "inverse_frequency"):
        return None
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / n_classes
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def _start(config: TrainConfig, spec, prep, ds, tr, initial_model) -> _Run:
    """Model, teacher, class weights, optimiser and cosine schedule for the run."""
    import torch

    model, frozen = _build_model(config, spec, ds.classes, initial_model)
    teacher, teacher_prep = _load_teacher(config, spec, ds)
    weight = _class_weights(config, spec, tr.targets, spec.output_channels(list(ds.classes)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(tr) // config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total, min(config.warmup_steps, total // 5)))
    return _Run(config, spec, prep, model, frozen, teacher, teacher_prep, weight, opt, sched,
                torch.Generator().manual_seed(config.seed), torch.from_numpy(tr.images), torch.from_numpy(tr.targets),
                steps_per_epoch)


def _step(run: _Run, idx, size) -> float:
    """One optimiser step on the batch ``idx`` (augmented, resampled to ``size``); returns the loss."""
    import torch
    import torch.nn.functional as F

    from edgederm.tensors import augment, normalize_float

    x01 = run.images[idx].permute(0, 3, 1, 2).float().div_(255.0)
    if run.spec.has_class_labels:
        x01, _ = augment(x01, generator=run.gen, out_size=size)
        y = run.targets[idx]
    else:  # per-pixel targets take the same geometry as their image
        x01, y = augment(x01, run.targets[idx].unsqueeze(1).float(), generator=run.gen, out_size=size)
    x = normalize_float(x01, run.prep)
    pred = run.model(x)
    t_logits = None
    if run.teacher is not None:
        with torch.no_grad():
            tx = x if run.teacher_prep == run.prep else normalize_float(
                F.interpolate(x01, size=tuple(run.teacher_prep.input_size), mode="bilinear"), run.teacher_prep)
            t_logits = run.teacher(tx)
    c = run.config
    loss = run.spec.loss(pred, y, weight=run.weight, label_smoothing=c.label_smoothing, teacher_logits=t_logits,
                         temperature=c.distill_temperature, alpha=c.distill_alpha)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    run.sched.step()
    return float(loss.detach())


def _epoch(run: _Run, epoch: int) -> tuple[tuple[int, int] | None, float]:
    """Train one epoch; returns (the training size when progressive, else None; mean loss)."""
    import torch

    c = run.config
    run.model.train()
    for module in run.frozen:
        module.eval()
    size = tuple(c.progressive_size) if c.progressive_size and epoch < c.progressive_epochs else None
    order = torch.randperm(len(run.images), generator=run.gen)
    t0, seen, loss_sum = time.perf_counter(), 0, 0.0
    for step in range(run.steps_per_epoch):
        idx = order[step * c.batch_size:(step + 1) * c.batch_size]
        loss_sum += _step(run, idx, size) * len(idx)
        seen += len(idx)
        if (step + 1) % 20 == 0 or step + 1 == run.steps_per_epoch:
            el = time.perf_counter() - t0
            eta = el / (step + 1) * (run.steps_per_epoch - step - 1)
            log(f"epoch {epoch + 1}/{c.epochs}{f' @{size[0]}x{size[1]}' if size else ''} step {step + 1}/{run.steps_per_epoch} "
                f"loss {loss_sum / seen:.4f} lr {run.sched.get_last_lr()[0]:.2e} ({seen / el:.1f} img/s, {eta:.0f}s left)")
    return size, loss_sum / seen


def _fit(run: _Run, va, classes: list[str]) -> tuple[int, list[dict]]:
    """Every epoch, scored on val; loads the best epoch's weights; returns (best epoch, history)."""
    from edgederm.evaluate import score_arrays

    key = run.spec.headline
    best = (-1.0, None, -1)
    history = []
    for epoch in range(run.config.epochs):
        t0 = time.perf_counter()
        size, train_loss = _epoch(run, epoch)
        score = score_arrays(run.model, va, run.prep, run.spec.scoring_classes(classes), n_boot=0)[key].value
        history.append({"epoch": epoch + 1, "train_size": list(size or run.prep.input_size),
                        "train_loss": train_loss, f"val_{key}": score,
                        "seconds": round(time.perf_counter() - t0, 1)})
        log(f"epoch {epoch + 1}: val {key} {score:.4f} ({time.perf_counter() - t0:.0f}s)")
        if score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in run.model.state_dict().items()}, epoch + 1)
    run.model.load_state_dict(best[1])
    return best[2], history


def train(config: TrainConfig, data_root: Path | None, out: str | os.PathLike, n_boot: int = 1000,
          initial_model=None, card_fields: dict | None = None) -> Path:
    """Train, pick the epoch with the best validation score, evaluate on test, save; returns the weights path.

    ``initial_model`` starts from an in-memory model instead of a fresh zoo build (a pruned
    model, whose shapes the zoo cannot rebuild); ``card_fields`` adds model card fields
    (e.g. ``pruning``, which lets ``load_checkpoint`` rebuild those shapes).
    """
    import torch

    from edgederm.checkpoint import ModelCard, save_checkpoint
    from edgederm.data.arrays import load_arrays
    from edgederm.evaluate import score_arrays
    from edgederm.models import get_entry

    torch.set_num_threads(config.threads or os.cpu_count() or 2)
    torch.manual_seed(config.seed)
    keep_freed_memory()
    entry = get_entry(config.model)
    spec = task_of(entry.task)
    ds, prep, tr, va = _load_data(config, data_root, entry)
    run = _start(config, spec, prep, ds, tr, initial_model)
    started = time.perf_counter()
    best_epoch, history = _fit(run, va, ds.classes)
    train_minutes = (time.perf_counter() - started) / 60

    te = load_arrays(ds.split("test"), prep, desc="decode test")
    test_metrics = score_arrays(run.model, te, prep, spec.scoring_classes(ds.classes), n_boot=n_boot)
    card = ModelCard(
        architecture=config.model, task=entry.task, classes=list(ds.classes), preprocessing=prep,
        data={"dataset": ds.name, "root": str(ds.root), "layout": ds.layout, "split": ds.split_source,
              "train_images": len(tr), "val_images": len(va), "test_images": len(te)},
        training={**asdict(config), "best_epoch": best_epoch, "minutes": round(train_minutes, 2),
                  "threads": torch.get_num_threads(), "history": history},
        metrics={"split": "test", "n_bootstrap": n_boot, **{k: v.to_dict() for k, v in test_metrics.items()}},
        **(card_fields or {}),
    )
    path = save_checkpoint(run.model, card, out)
    log(f"saved {path} (best val epoch {best_epoch}, {train_minutes:.1f} min)")
    return path

