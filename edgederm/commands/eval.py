"""``edgederm eval CHECKPOINT``: every metric with a bootstrap 95% CI (per source with ``--by``)."""

from __future__ import annotations

from edgederm.commands.common import (JSON_STDOUT, add_data_option, add_json_option, data_root, emit, json_stream,
                                      non_negative_int, positive_int)
from edgederm.errors import EdgeDermError


def register(sub) -> None:
    sp = sub.add_parser("eval", help="evaluate a checkpoint with bootstrap 95%% CIs")
    sp.add_argument("checkpoint")
    add_data_option(sp)
    sp.add_argument("--dataset", help="dataset folder (default: the one in the model card)")
    sp.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                    help="all: every image (an external set without splits)")
    sp.add_argument("--limit", type=positive_int)
    sp.add_argument("--bootstrap", type=non_negative_int, default=1000)
    add_json_option(sp)
    sp.add_argument("--arch", help="load the weights into this architecture instead of the card's (e.g. segnet_mobile)")
    sp.add_argument("--by", choices=["source"], help="also report each acquisition source (metadata.csv) with CIs")
    sp.add_argument("--reliability", metavar="PNG", help="write the reliability diagram (with --by: a line per source)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.evaluate import evaluate_checkpoint
    from edgederm.metrics import format_metrics

    if args.by or args.reliability:  # per-source scoring and calibration plots: edgederm.shift
        from contextlib import redirect_stdout

        from edgederm.shift import eval_command

        if args.json not in (None, JSON_STDOUT):  # shift prints its JSON on stdout, or its tables
            raise EdgeDermError(f"--json {args.json}: with --by or --reliability the JSON goes to stdout "
                                "(give --json without a file)")
        with redirect_stdout(json_stream()):  # shift prints its own JSON
            return eval_command(args, data_root(args))
    metrics, card, n = evaluate_checkpoint(args.checkpoint, data_root(args), split=args.split,
                                           dataset=args.dataset, n_boot=args.bootstrap, limit=args.limit,
                                           architecture=args.arch)

    def show(_payload) -> None:
        print(f"{card.architecture} on {n} {args.split} images (95% bootstrap CI, {args.bootstrap} resamples)")
        print(format_metrics(metrics))

    emit({"checkpoint": str(args.checkpoint), "architecture": card.architecture, "split": args.split,
          "images": n, "metrics": {k: v.to_dict() for k, v in metrics.items()}}, args, show)
    return 0
