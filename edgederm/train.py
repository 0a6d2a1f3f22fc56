"""CPU-friendly fine-tuning of zoo models on derm data, with optional distillation.

Images are decoded once into memory (``data.arrays``); augmentation runs on whole batches in
torch; the model runs channels-last on every core. Classification uses cross-entropy with
inverse-frequency class weights and label smoothing (balanced accuracy is the target, and
nv is two thirds of derm7); segmentation uses BCE + soft Dice. A teacher checkpoint turns
on knowledge distillation (Hinton et al.: KL on temperature-softened outputs).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log


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


def train(config: TrainConfig, data_root: Path | None, out: str | os.PathLike, n_boot: int = 1000,
          initial_model=None, card_fields: dict | None = None) -> Path:
    """Train, pick the epoch with the best validation score, evaluate on test, save; returns the weights path.

    ``initial_model`` starts from an in-memory model instead of a fresh zoo build (a pruned
    model, whose shapes the zoo cannot rebuild); ``card_fields`` adds model card fields
    (e.g. ``pruning``, which lets ``load_checkpoint`` rebuild those shapes).
    """
    import torch
    import torch.nn.functional as F

    from edgederm.checkpoint import ModelCard, load_checkpoint, save_checkpoint
    from edgederm.data.arrays import load_arrays
    from edgederm.evaluate import score_arrays
    from edgederm.models import create_model, get_entry
    from edgederm.tensors import augment, normalize_float

    torch.set_num_threads(config.threads or os.cpu_count() or 2)
    torch.manual_seed(config.seed)
    keep_freed_memory()
    entry = get_entry(config.model)
    prep = entry.preprocessing if config.input_size is None else entry.preprocessing.replace(input_size=list(config.input_size))
    ds = _resolve_dataset(config, data_root)
    if ds.task != entry.task:
        raise EdgeDermError(f"model {config.model!r} is a {entry.task} model but {ds.root} holds {ds.task} data")
    train_ds, val_ds = ds.split("train"), ds.split("val")
    if config.train_limit:
        train_ds = train_ds.subset(config.train_limit, seed=config.seed)
    log(ds.describe())
    tr = load_arrays(train_ds, prep, desc="decode train")
    va = load_arrays(val_ds, prep, desc="decode val")

    classify = entry.is_classifier
    n_classes = len(ds.classes) if classify else 1
    model = initial_model if initial_model is not None else create_model(config.model, num_classes=n_classes,
                                                                          pretrained=config.pretrained)
    if classify and config.pretrained and initial_model is None:
        # timm's Google-style head init gives logits of std ~8 on pretrained features; a small
        # head starts fine-tuning at loss ~ln(C) instead of wrecking the backbone in warm-up.
        head = model.get_classifier()
        torch.nn.init.normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)
    model = model.to(memory_format=torch.channels_last).train()
    frozen = freeze_early_layers(model, config.freeze_blocks)
    teacher = teacher_prep = None
    if config.distill_from:
        teacher, tcard = load_checkpoint(config.distill_from)
        if tcard.task != ds.task:
            raise EdgeDermError(f"teacher {config.distill_from} is a {tcard.task} model, data is {ds.task}")
        if classify and tcard.classes != list(ds.classes):
            raise EdgeDermError(f"teacher {config.distill_from} has classes {tcard.classes}, data has {list(ds.classes)}")
        teacher, teacher_prep = teacher.to(memory_format=torch.channels_last).eval(), tcard.preprocessing

    weight = None
    if classify and config.class_weighting == "inverse_frequency":
        counts = np.bincount(tr.targets, minlength=n_classes).astype(np.float64)
        w = counts.sum() / np.maximum(counts, 1) / n_classes
        weight = torch.tensor(w / w.mean(), dtype=torch.float32)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(tr) // config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total, min(config.warmup_steps, total // 5)))
    gen = torch.Generator().manual_seed(config.seed)
    images_t = torch.from_numpy(tr.images)
    targets_t = torch.from_numpy(tr.targets)

    best = (-1.0, None, -1)
    history = []
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        for module in frozen:
            module.eval()
        size = tuple(config.progressive_size) if config.progressive_size and epoch < config.progressive_epochs else None
        order = torch.randperm(len(tr), generator=gen)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            x01 = images_t[idx].permute(0, 3, 1, 2).float().div_(255.0)
            if classify:
                x01, _ = augment(x01, generator=gen, out_size=size)
                y = targets_t[idx]
            else:
                x01, m = augment(x01, targets_t[idx].unsqueeze(1).float(), generator=gen, out_size=size)
                y = m
            x = normalize_float(x01, prep)
            pred = model(x)
            t_logits = None
            if teacher is not None:
                with torch.no_grad():
                    tx = x if teacher_prep == prep else normalize_float(
                        F.interpolate(x01, size=tuple(teacher_prep.input_size), mode="bilinear"), teacher_prep)
                    t_logits = teacher(tx)
            T = config.distill_temperature
            if classify:
                loss = F.cross_entropy(pred, y, weight=weight, label_smoothing=config.label_smoothing)
                if t_logits is not None:
                    kd = F.kl_div(F.log_softmax(pred / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T
                    loss = config.distill_alpha * kd + (1 - config.distill_alpha) * loss
            else:
                loss = segmentation_loss(pred, y)
                if t_logits is not None:  # per-pixel soft targets: the teacher's tempered lesion probability
                    if t_logits.shape[-2:] != pred.shape[-2:]:
                        t_logits = F.interpolate(t_logits, size=pred.shape[-2:], mode="bilinear")
                    kd = F.binary_cross_entropy_with_logits(pred / T, torch.sigmoid(t_logits / T)) * T * T
                    loss = config.distill_alpha * kd + (1 - config.distill_alpha) * loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            if (step + 1) % 20 == 0 or step + 1 == steps_per_epoch:
                el = time.perf_counter() - t0
                eta = el / (step + 1) * (steps_per_epoch - step - 1)
                log(f"epoch {epoch + 1}/{config.epochs}{f' @{size[0]}x{size[1]}' if size else ''} step {step + 1}/{steps_per_epoch} "
                    f"loss {loss_sum / seen:.4f} lr {sched.get_last_lr()[0]:.2e} ({seen / el:.1f} img/s, {eta:.0f}s left)")
        val = score_arrays(model, va, prep, ds.classes if classify else None, n_boot=0)
        key = "balanced_accuracy" if classify else "dice"
        score = val[key].value
        history.append({"epoch": epoch + 1, "train_size": list(size or prep.input_size),
                        "train_loss": loss_sum / seen, f"val_{key}": score,
                        "seconds": round(time.perf_counter() - t0, 1)})
        log(f"epoch {epoch + 1}: val {key} {score:.4f} ({time.perf_counter() - t0:.0f}s)")
        if score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
    model.load_state_dict(best[1])
    train_minutes = (time.perf_counter() - started) / 60

    te_ds = ds.split("test")
    te = load_arrays(te_ds, prep, desc="decode test")
    test_metrics = score_arrays(model, te, prep, ds.classes if classify else None, n_boot=n_boot)
    card = ModelCard(
        architecture=config.model, task=entry.task, classes=list(ds.classes), preprocessing=prep,
        data={"dataset": ds.name, "root": str(ds.root), "layout": ds.layout, "split": ds.split_source,
              "train_images": len(tr), "val_images": len(va), "test_images": len(te)},
        training={**asdict(config), "best_epoch": best[2], "minutes": round(train_minutes, 2),
                  "threads": torch.get_num_threads(), "history": history},
        metrics={"split": "test", "n_bootstrap": n_boot, **{k: v.to_dict() for k, v in test_metrics.items()}},
        **(card_fields or {}),
    )
    path = save_checkpoint(model, card, out)
    log(f"saved {path} (best val epoch {best[2]}, {train_minutes:.1f} min)")
    return path


def segmentation_loss(logits, masks):
    """BCE + soft Dice on [N, 1, H, W] mask logits: BCE alone under-weights the thin lesion border."""
    import torch.nn.functional as F

    prob = logits.sigmoid()
    inter = (prob * masks).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2, 3)) + masks.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, masks) + dice.mean()
