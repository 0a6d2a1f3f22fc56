"""The ``edgederm`` command line: the core verbs here, the others one module each in
``edgederm/commands/`` (listed in ``commands.MODULES``), shared option types in ``commands/common.py``.

Every command ends through ``device_bench.console.run_command``: one line and exit 2 for input to
fix, 1 for a verdict, 3 for an internal error (traceback in the named log); other tools' stderr
goes to that log unless ``--verbose`` (``docs/reliability.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgederm.commands.common import csv_list, gates_from_args, non_negative_int, positive_int, print_export
from edgederm.errors import EdgeDermError


def _data_root(args) -> Path | None:
    from edgederm.paths import find_data_root

    return find_data_root(getattr(args, "data", None))


# --- verbs ---------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from edgederm.models import MODELS, get_entry, model_stats
    from edgederm.table import print_table

    get_entry("efficientnet_lite0")  # fills the registry
    rows = []
    for name in MODELS.names(args.pattern):
        e = MODELS.get(name)
        if args.task and e.task != args.task:
            continue
        row = {"name": name, "task": e.task, "family": e.family,
               "input HxW": "x".join(map(str, e.preprocessing.input_size)),
               "offline weights": "ImageNet" if e.offline_weights else "-", "description": e.description}
        if args.stats:
            from edgederm.models import create_model

            s = model_stats(create_model(name), e.preprocessing.input_size)
            row["params M"] = f"{s['params'] / 1e6:.2f}"
            row["GMACs"] = f"{s['macs'] / 1e9:.3f}"
        rows.append(row)
    print_table(rows)
    return 0


def cmd_data(args) -> int:
    from edgederm.data import load_dataset

    if args.action == "download":
        from edgederm.data import download

        out = Path(args.out)
        if args.source == "dermamnist":
            download.download_dermamnist(out, size=args.size)
        else:
            download.download_isic(out, search=args.search, collections=args.collections, limit=args.limit)
        print(f"downloaded to {out}")
        return 0
    root = _data_root(args)
    if root is None:
        raise EdgeDermError("no data found: pass --data DIR or set EDGEDERM_DATA")
    targets = [Path(args.dataset)] if args.dataset else [d for d in sorted(root.iterdir()) if d.is_dir()]
    for t in targets:
        ds = load_dataset(t if t.is_absolute() or t.exists() else root / t, layout=args.layout)
        print(ds.describe())
    return 0


def cmd_train(args) -> int:
    from edgederm.paths import home
    from edgederm.recipes import RECIPES
    from edgederm.train import TrainConfig, train

    root = _data_root(args)
    ckpt_dir = Path(args.out_dir) if args.out_dir else home() / "checkpoints"
    if args.recipe:
        names = RECIPES.names() if args.recipe == "all" else [args.recipe]
        recipes = [RECIPES.get(n) for n in names]
        recipes.sort(key=lambda r: r.teacher is not None)  # teachers first
        for r in recipes:
            config = r.config
            if args.epochs:
                config.epochs = args.epochs
            if args.limit:
                config.train_limit = args.limit
            if r.teacher:
                config.distill_from = str(ckpt_dir / f"{r.teacher}.safetensors")
                if not Path(config.distill_from).exists():
                    raise EdgeDermError(f"recipe {r.name} distils from {config.distill_from}, which does not exist: "
                                        f"run edgederm train --recipe {r.teacher} first")
            path = train(config, root, ckpt_dir / r.name, n_boot=args.bootstrap)
            print(f"{r.name}: {path}")
        return 0
    initial = card_fields = None
    input_size = tuple(args.input_size) if args.input_size else None
    if args.init:  # a checkpoint's weights and (pruned) shapes; its card's pruning record goes forward
        from edgederm.checkpoint import load_checkpoint

        initial, init_card = load_checkpoint(args.init)
        if args.model and args.model != init_card.architecture:
            raise EdgeDermError(f"--init {args.init} is a {init_card.architecture}, not --model {args.model}: "
                                "drop --model or pass the matching checkpoint")
        args.model = init_card.architecture
        input_size = input_size or tuple(init_card.preprocessing.input_size)
        card_fields = {"pruning": init_card.pruning} if init_card.pruning else None
    if not args.model:
        raise EdgeDermError("give --recipe NAME (see edgederm train --list), --model NAME or --init CHECKPOINT")
    config = TrainConfig(args.model, args.dataset or "derm7", epochs=args.epochs or 5, batch_size=args.batch_size,
                         lr=args.lr, pretrained=args.pretrained if args.pretrained != "none" else False,
                         distill_from=args.distill_from, train_limit=args.limit, seed=args.seed,
                         input_size=input_size, freeze_blocks=args.freeze_blocks,
                         progressive_size=tuple(args.progressive_size[:2]) if args.progressive_size else None,
                         progressive_epochs=args.progressive_size[2] if args.progressive_size else 0,
                         extra={"init_from": str(args.init)} if args.init else {})
    out = Path(args.out) if args.out else ckpt_dir / args.model
    print(train(config, root, out, n_boot=args.bootstrap, initial_model=initial, card_fields=card_fields))
    return 0


def cmd_eval(args) -> int:
    from device_bench.integrity import dumps as strict_json
    from edgederm.evaluate import evaluate_checkpoint
    from edgederm.metrics import format_metrics

    if args.by or args.reliability:  # per-source scoring and calibration plots: edgederm.shift
        from edgederm.shift import eval_command

        return eval_command(args, _data_root(args))
    metrics, card, n = evaluate_checkpoint(args.checkpoint, _data_root(args), split=args.split,
                                           dataset=args.dataset, n_boot=args.bootstrap, limit=args.limit,
                                           architecture=args.arch)
    if args.json:
        print(strict_json({"checkpoint": str(args.checkpoint), "architecture": card.architecture, "split": args.split,
                          "images": n, "metrics": {k: v.to_dict() for k, v in metrics.items()}}))
    else:
        print(f"{card.architecture} on {n} {args.split} images (95% bootstrap CI, {args.bootstrap} resamples)")
        print(format_metrics(metrics))
    return 0


def cmd_export(args) -> int:
    from edgederm.export import export

    out = Path(args.out) if args.out else Path("exports") / Path(args.checkpoint).stem
    coreml = csv_list(args.coreml_precision, "--coreml-precision")
    if set(coreml) - {"fp16", "fp32"}:
        raise EdgeDermError(f"--coreml-precision {args.coreml_precision!r}: use fp16, fp32 or fp16,fp32")
    outcome = export(args.checkpoint, out, formats=csv_list(args.to, "--to"), verify=not args.no_verify,
                     data_root=_data_root(args), n_verify=args.verify_images, gates=gates_from_args(args),
                     coreml_precisions=tuple(coreml), meta=args.meta, weights=args.weights,
                     dynamic_batch=args.dynamic_batch, quantize=args.quantize, force=args.force,
                     trust_source=args.trust_source)
    return print_export(outcome)


def cmd_verify(args) -> int:
    from edgederm.byom import original_from_manifest
    from edgederm.export import ExportOutcome, verification_data
    from edgederm.manifest import Manifest
    from edgederm.verify import verify_manifest

    folder = Path(args.folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    manifest.require_complete(folder)
    gates = gates_from_args(args)
    model, _ = original_from_manifest(manifest, folder, args.checkpoint, args.meta, args.weights, trust=args.trust_source)
    images, targets = verification_data(manifest, _data_root(args), args.verify_images)
    results = verify_manifest(manifest, folder, model, images, targets, gates)
    manifest.add_step("verify", images=int(len(images)), results={r.artifact: r.status for r in results})
    manifest.save(folder)
    return print_export(ExportOutcome(manifest, folder, verify=results))


def cmd_compat(args) -> int:
    from edgederm.compat import markdown, rows
    from edgederm.table import print_table

    if args.write:
        import os

        from edgederm.paths import atomic_path

        target = Path(args.write)
        tmp = atomic_path(target)
        tmp.write_text(markdown(previous=target.read_text() if target.exists() else None))  # keeps the conformance section
        os.replace(tmp, target)
        print(f"wrote {target}")
    else:
        print_table(rows())
    return 0


def cmd_demo(args) -> int:
    from edgederm.demo import run_demo

    return run_demo(data=args.data, synthetic=args.synthetic, quick=args.quick)


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from edgederm import __version__

    from device_bench.console import OneLineParser

    p = OneLineParser(prog="edgederm", description="Skin-lesion models from PyTorch to phones, verified.")
    p.add_argument("--version", action="version", version=f"edgederm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    def data_flag(sp):
        sp.add_argument("--data", help="data root holding derm7/ and lesionseg/ (default: $EDGEDERM_DATA, ../shared/data)")

    sp = sub.add_parser("demo", help="the main job on an offline default: real data if found, else synthetic")
    data_flag(sp)
    sp.add_argument("--synthetic", action="store_true", help="use the generated image set even if real data exists")
    sp.add_argument("--quick", action="store_true", help="smallest run (for tests)")
    sp.set_defaults(func=cmd_demo)

    def trust_flag(sp):
        sp.add_argument("--trust-source", action="store_true",
                        help="load a TorchScript file, or a .pt2 with pickled entries (they run code): only for files you made")

    def gate_flags(sp):
        sp.add_argument("--verify-images", type=positive_int, default=128, help="real test images for the parity gates")
        sp.add_argument("--gate", action="append", metavar="PRECISION:FIGURE:VALUE",
                        help="override a gate, e.g. fp16:min_top1_agreement:0.98 (repeatable)")

    sp = sub.add_parser("export", help="checkpoint -> ONNX / TFLite / Core ML artifacts + manifest, verified")
    sp.add_argument("checkpoint", help="EdgeDerm checkpoint (.safetensors + card), model.pt2, TorchScript file, "
                                       "or module.path:factory (with --weights)")
    sp.add_argument("--to", default="onnx,tflite,coreml", help="formats, comma-separated: onnx, tflite, coreml, executorch")
    sp.add_argument("--out", help="output folder (default exports/<checkpoint name>)")
    sp.add_argument("--coreml-precision", default="fp16", help="fp16, fp32 or fp16,fp32")
    sp.add_argument("--meta", help="YAML/JSON with task, classes, preprocessing (foreign models; docs/byom.md)")
    sp.add_argument("--weights", help="weights for a module.path:factory source (.safetensors or tensors-only pickle)")
    sp.add_argument("--no-verify", action="store_true", help="skip the parity gates (recorded in the manifest)")
    sp.add_argument("--quantize", metavar="SCHEMES",
                    help="then quantize, e.g. int8 or int8,dynamic (edgederm quantize --list); calibrated on train images")
    sp.add_argument("--dynamic-batch", action="store_true", help="ONNX with a free batch dimension (only with --to onnx: onnx2tf and TensorRT INT8 want static shapes)")
    sp.add_argument("--force", action="store_true", help="write into a non-empty --out folder that is not an EdgeDerm export")
    trust_flag(sp)
    data_flag(sp)
    gate_flags(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("verify", help="re-run the parity gates on an export folder")
    sp.add_argument("folder", help="export folder or its manifest.json")
    sp.add_argument("--checkpoint", help="the PyTorch original (default: the one the manifest names)")
    sp.add_argument("--meta", help="for a foreign original: its YAML/JSON description")
    sp.add_argument("--weights", help="for a module.path:factory original")
    trust_flag(sp)
    data_flag(sp)
    gate_flags(sp)
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("compat", help="which zoo model converts to which format")
    sp.add_argument("--write", metavar="FILE", help="write the Markdown table (docs/compatibility.md)")
    sp.set_defaults(func=cmd_compat)

    sp = sub.add_parser("models", help="list the model zoo")
    sp.add_argument("pattern", nargs="?", default="*")
    sp.add_argument("--task", choices=["classification", "segmentation"])
    sp.add_argument("--stats", action="store_true", help="build each model and count params and MACs")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("data", help="describe or download datasets")
    sp.add_argument("action", choices=["info", "download"])
    sp.add_argument("source", nargs="?", choices=["dermamnist", "isic"], help="for download")
    data_flag(sp)
    sp.add_argument("--dataset", help="one dataset folder (default: every folder in the data root)")
    sp.add_argument("--layout", help="force a layout: derm7, lesionseg, ham10000, isic_task1, folder")
    sp.add_argument("--out", default="derm-download", help="download destination")
    sp.add_argument("--size", type=positive_int, default=224, help="DermaMNIST image size (28, 64, 128, 224)")
    sp.add_argument("--search", default="", help="ISIC Archive search query")
    sp.add_argument("--collections", default="", help="ISIC Archive collection ids")
    sp.add_argument("--limit", type=non_negative_int, default=0)
    sp.set_defaults(func=cmd_data)

    sp = sub.add_parser("train", help="train a zoo model (a reference recipe or your own settings)")
    data_flag(sp)
    sp.add_argument("--recipe", help="a reference recipe, or 'all'")
    sp.add_argument("--list", action="store_true", help="list the recipes")
    sp.add_argument("--model")
    sp.add_argument("--dataset", help="folder name below the data root, or a path (default derm7)")
    sp.add_argument("--epochs", type=positive_int)
    sp.add_argument("--batch-size", type=positive_int, default=32)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--pretrained", default="none", choices=["none", "imagenet", "online"])
    sp.add_argument("--distill-from", help="teacher checkpoint (.safetensors)")
    sp.add_argument("--init", help="start from this checkpoint's weights and shapes, e.g. to fine-tune a pruned "
                                   "model further (--model defaults to its architecture)")
    sp.add_argument("--input-size", type=positive_int, nargs=2, metavar=("H", "W"))
    sp.add_argument("--limit", type=positive_int, help="train on a class-stratified subset of this many images")
    sp.add_argument("--freeze-blocks", type=non_negative_int, default=0,
                    help="freeze the stem and the first N blocks of a pretrained EfficientNet/MobileNet")
    sp.add_argument("--progressive-size", type=positive_int, nargs=3, metavar=("H", "W", "EPOCHS"),
                    help="train the first EPOCHS epochs at H x W, the rest at the input size")
    sp.add_argument("--seed", type=non_negative_int, default=0)
    sp.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap resamples for the test CIs (0: none)")
    sp.add_argument("--out", help="checkpoint path (.safetensors)")
    sp.add_argument("--out-dir", help="folder for recipe checkpoints (default $EDGEDERM_HOME/checkpoints)")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("eval", help="evaluate a checkpoint with bootstrap 95%% CIs")
    sp.add_argument("checkpoint")
    data_flag(sp)
    sp.add_argument("--dataset", help="dataset folder (default: the one in the model card)")
    sp.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                    help="all: every image (an external set without splits)")
    sp.add_argument("--limit", type=positive_int)
    sp.add_argument("--bootstrap", type=non_negative_int, default=1000)
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--arch", help="load the weights into this architecture instead of the card's (e.g. segnet_mobile)")
    sp.add_argument("--by", choices=["source"], help="also report each acquisition source (metadata.csv) with CIs")
    sp.add_argument("--reliability", metavar="PNG", help="write the reliability diagram (with --by: a line per source)")
    sp.set_defaults(func=cmd_eval)

    import importlib

    from edgederm.commands import MODULES

    for module in MODULES:
        importlib.import_module(module).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 1 a verdict (gate or benchmark row failed), 2 fix your input, 3 internal error
    (traceback in the log file the line names), 130/143 interrupted (``device_bench.console``)."""
    from device_bench.console import run_command
    from device_bench.errors import DeviceBenchError
    from device_bench.lifecycle import run_scope
    from device_bench.results import ResultsError
    from edgederm.paths import home

    os.environ.setdefault("NNCF_CI", "1")  # NNCF telemetry would try the network
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (its one line is printed): the code, not an exception
        return e.code if isinstance(e.code, int) else 2
    if getattr(args, "list", False):
        from edgederm.recipes import RECIPES

        for name, r in RECIPES.items():
            print(f"{name:<24} {r.config.model:<20} {r.why}")
        return 0
    logs = home() / "logs"
    with run_scope(logs=logs):
        return run_command("edgederm", lambda: args.func(args), (EdgeDermError, DeviceBenchError, ResultsError),
                           logs, verbose=args.verbose, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
