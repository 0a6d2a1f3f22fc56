"""``edgederm prune``: structured channel pruning of a checkpoint, with a measured before/after table."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit, non_negative_int, positive_int, thread_count

from pathlib import Path


def register(sub) -> None:
    sp = sub.add_parser("prune", help="remove whole channels (smaller, faster dense model); measured before/after")
    sp.add_argument("checkpoint", help="EdgeDerm checkpoint (.safetensors + model card)")
    target = sp.add_mutually_exclusive_group(required=True)
    target.add_argument("--sparsity", type=float, help="fraction of each prunable layer's output channels to remove, in (0, 1)")
    target.add_argument("--macs-budget", type=float, help="fraction of the original MACs to keep, in (0, 1), e.g. 0.6")
    sp.add_argument("--importance", default="l2", help="channel ranking: l1, l2, taylor, bn_scale (default l2)")
    sp.add_argument("--global", dest="global_pruning", action="store_true",
                    help="rank channels across all layers instead of pruning each layer by the same ratio")
    sp.add_argument("--round-to", type=positive_int, default=8, help="keep channel counts multiples of this (default 8)")
    sp.add_argument("--protect", nargs="+", default=[], metavar="NAME",
                    help="more module names whose output channels stay (stem and heads are kept by default)")
    sp.add_argument("--finetune-epochs", type=non_negative_int, default=0, help="fine-tune epochs after pruning (default 0)")
    sp.add_argument("--lr", type=float, default=5e-4, help="fine-tune learning rate")
    sp.add_argument("--batch-size", type=positive_int, default=32)
    sp.add_argument("--limit", type=positive_int, help="fine-tune on a class-stratified subset of this many training images")
    sp.add_argument("--distill", action="store_true", help="fine-tune against the unpruned model's outputs")
    sp.add_argument("--train-threads", type=thread_count, help="torch threads for scoring and fine-tuning (default: every "
                                                      "core; 1 is faster on a CPU shared with other jobs)")
    sp.add_argument("--bench", default="torch,onnx,tflite",
                    help="runtimes to time before/after at batch 1: torch, onnx, tflite, or none (default all three)")
    sp.add_argument("--threads", type=thread_count, default=2, help="threads for the latency measurement (default 2)")
    sp.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap resamples for the fine-tuned test CIs (0: none)")
    sp.add_argument("--seed", type=non_negative_int, default=0)
    sp.add_argument("--data", help="data root holding the checkpoint's dataset (default: $EDGEDERM_DATA, ../shared/data)")
    sp.add_argument("--out", required=True, help="pruned checkpoint path (.safetensors; the card is written beside it)")
    add_json_option(sp)
    sp.set_defaults(func=run)


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def rows_for(outcome, latency: dict) -> list[dict]:
    """The before/after table: sizes, validation metric, and measured batch-1 latency."""
    from edgederm.prune import speedup_text

    r = outcome.result
    rows = [
        {"figure": "params (M)", "before": _mb(r.params[0]), "after": _mb(r.params[1]),
         "change": f"{r.params[1] / r.params[0]:.2f}x"},
        {"figure": "MACs (M)", "before": _mb(r.macs[0]), "after": _mb(r.macs[1]),
         "change": f"{r.macs[1] / r.macs[0]:.2f}x"},
        {"figure": "checkpoint (MB)", "before": _mb(outcome.size_bytes[0]), "after": _mb(outcome.size_bytes[1]),
         "change": f"{outcome.size_bytes[1] / outcome.size_bytes[0]:.2f}x"},
    ]
    for key, before in outcome.val_before.items():
        after = outcome.val_after[key]
        rows.append({"figure": f"val {key}", "before": f"{before:.4f}", "after": f"{after:.4f}",
                     "change": f"{(after - before) * 100:+.1f} pt"})
    names = {"torch": "PyTorch eager", "onnx": "ONNX Runtime fp32", "tflite": "LiteRT fp32 (XNNPACK)"}
    for rt, m in latency.items():
        rows.append({"figure": f"{names[rt]} ms", "before": f"{m['before_ms']:.2f}", "after": f"{m['after_ms']:.2f}",
                     "change": speedup_text(m["before_ms"], m["after_ms"])})
    return rows


def run(args) -> int:
    from edgederm.paths import find_data_root
    from edgederm.errors import EdgeDermError
    from edgederm.prune import BENCH_RUNTIMES, PruneConfig, compare_latency, prune_checkpoint

    config = PruneConfig(sparsity=args.sparsity, macs_budget=args.macs_budget, importance=args.importance,
                         global_pruning=args.global_pruning, round_to=args.round_to, protect=list(args.protect),
                         finetune_epochs=args.finetune_epochs, finetune_lr=args.lr, batch_size=args.batch_size,
                         distill=args.distill, train_limit=args.limit, seed=args.seed,
                         threads=args.train_threads).validate()
    runtimes = [] if args.bench.strip() == "none" else [r.strip() for r in args.bench.split(",") if r.strip()]
    bad = [r for r in runtimes if r not in BENCH_RUNTIMES]
    if bad:  # before the slow work
        raise EdgeDermError(f"--bench {bad[0]!r}: choose from {', '.join(BENCH_RUNTIMES)}, comma-separated, or none")
    data_root = find_data_root(args.data)
    outcome = prune_checkpoint(args.checkpoint, args.out, config, data_root, n_boot=args.bootstrap)
    latency = compare_latency(outcome.original, outcome.path, runtimes, threads=args.threads,
                              data_root=data_root) if runtimes else {}
    r = outcome.result
    emit({"original": str(outcome.original), "pruned": str(outcome.path), "importance": config.importance,
          "sparsity": config.sparsity, "macs_budget": config.macs_budget, "steps": r.steps,
          "layers_resized": len(r.layout), "finetune_epochs": config.finetune_epochs, "distill": config.distill,
          "minutes": outcome.minutes, "protected": r.protected, "latency_threads": args.threads if latency else None,
          "rows": rows_for(outcome, latency)}, args, show)
    return 0


def show(s: dict) -> None:
    from edgederm.table import print_table

    target = f"sparsity {s['sparsity']}" if s["sparsity"] else f"MACs budget {s['macs_budget']}"
    print(f"{Path(s['original']).name} -> {s['pruned']}  ({s['importance']}, {target}, {s['steps']} step(s), "
          f"{s['layers_resized']} layers resized, fine-tune {s['finetune_epochs']} epoch(s)"
          f"{' + distillation' if s['distill'] else ''}; {s['minutes']:.1f} min)")
    print(f"protected: {', '.join(f'{n} ({why})' for n, why in s['protected'].items())}")
    if s["latency_threads"]:
        print(f"latency: batch 1, {s['latency_threads']} threads, median of alternating rounds")
    print_table(s["rows"])
