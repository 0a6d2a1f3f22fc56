"""``edgederm recalibrate EXPORT --data LOCAL_SAMPLE``: temperature and operating points for a site."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_json_option, emit


def register(sub) -> None:
    sp = sub.add_parser("recalibrate", help="fit a temperature and re-tune the operating points on a site's "
                                            "labelled sample; new manifest revision, artifacts unchanged")
    sp.add_argument("folder", help="export folder (or its manifest.json)")
    sp.add_argument("--data", required=True, help="the site's labelled images (a dataset folder of any layout)")
    sp.add_argument("--checkpoint", help="the PyTorch original (default: the one the manifest names)")
    sp.add_argument("--fit-split", default="train", choices=["train", "val", "test", "all"],
                    help="the sample to fit on (default train)")
    sp.add_argument("--holdout-split", default="test", choices=["train", "val", "test", "none"],
                    help="held-out images of the site for the before/after figures (default test)")
    sp.add_argument("--fit-limit", type=int, help="use a class-stratified subset of this many sample images")
    sp.add_argument("--source", action="append", help="only images from this acquisition source (repeatable)")
    sp.add_argument("--rule", action="append", metavar="NAME:CLASS:specificity=S",
                    help="operating point to (re)fit, e.g. refer_mel:mel:specificity=0.8 (default: the manifest's, "
                         "or refer_mel at 80%% specificity)")
    sp.add_argument("--no-temperature", action="store_true", help="keep the temperature; re-tune thresholds only")
    sp.add_argument("--min-images", type=int, default=100, help="smaller samples change nothing unless --force")
    sp.add_argument("--min-positives", type=int, default=10, help="a rule with fewer positives keeps its threshold")
    sp.add_argument("--force", action="store_true", help="write even when the sample is judged too small")
    sp.add_argument("--dry-run", action="store_true", help="measure and show; do not write the manifest")
    sp.add_argument("--bootstrap", type=int, default=1000)
    add_json_option(sp)
    sp.set_defaults(func=run)


def _validate(args):
    from edgederm.errors import EdgeDermError
    from edgederm.recalibrate import RecalConfig, parse_rule

    if args.fit_limit is not None and args.fit_limit < 2:
        raise EdgeDermError("--fit-limit must be at least 2")
    if args.holdout_split == args.fit_split:
        raise EdgeDermError(f"--holdout-split {args.holdout_split} equals --fit-split: hold out other images "
                            "(or --holdout-split none)")
    if not Path(args.data).is_dir():
        raise EdgeDermError(f"--data {args.data} is not a folder: pass the site's labelled images")
    return RecalConfig(fit_split=args.fit_split,
                       holdout_split=None if args.holdout_split == "none" else args.holdout_split,
                       fit_limit=args.fit_limit, sources=tuple(args.source or ()),
                       rules=[parse_rule(r) for r in args.rule or []], temperature=not args.no_temperature,
                       min_images=args.min_images, min_positives=args.min_positives, force=args.force,
                       n_boot=args.bootstrap)


def _fmt(e) -> str:
    if e is None or e.get("value") is None or e["value"] != e["value"]:
        return "-"
    lo, hi = e.get("low"), e.get("high")
    if lo is None or lo != lo:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def run(args) -> int:
    from edgederm.recalibrate import recalibrate

    config = _validate(args)
    model = None
    if args.checkpoint:
        from edgederm.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint)[0]
    out = recalibrate(Path(args.folder), Path(args.data), config, model=model, dry_run=args.dry_run)
    emit(out, args, lambda o: show(o, args.dry_run))
    return 0


def show(out: dict, dry_run: bool) -> None:
    import json

    from device_bench.console import say
    from edgederm.table import print_table

    t = out["temperature"]
    print(f"fitted on {out['fit_images']} sample images; temperature {t['before']:.3f} -> {t['after']:.3f}")
    for r in out["rules"]:
        ci = (r.get("ci") or {}).get("threshold")
        thr = "-" if r.get("threshold") is None else f"{r['threshold']:.4f}"
        print(f"  {r['name']}: refer if P({r['class']}) >= {thr}"
              + (f" (95% CI [{ci[0]:.4f}, {ci[1]:.4f}])" if ci else "") + f", target {r['target']}")
    print(f"\non {out['evaluated_on']} (95% bootstrap CI):")
    keys = sorted(set(out["before"]) | set(out["after"]), key=lambda k: (k != "ece", k))
    print_table([{"figure": k, "before": _fmt(out["before"].get(k)), "after": _fmt(out["after"].get(k))}
                 for k in keys])
    for w in out["warnings"]:
        say(f"edgederm: warning: {w}")  # our own line on the real stderr (third-party chatter goes to the log)
    if out["written"]:
        print(f"\nmanifest: {out['written']} (revision {json.loads(Path(out['written']).read_text())['output']['revision']};"
              " artifacts unchanged, sha256 re-proven)")
    elif not dry_run:
        print("\nnothing written: the sample is too small (see the warnings; --force overrides)")
