"""``edgederm train``: a reference recipe (``--recipe NAME|all``, ``--list``) or your own settings."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_data_option, data_root, non_negative_int, positive_int
from edgederm.errors import EdgeDermError


def register(sub) -> None:
    sp = sub.add_parser("train", help="train a zoo model (a reference recipe or your own settings)")
    add_data_option(sp)
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
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.paths import home

    if args.list:
        return list_recipes()
    root = data_root(args)
    ckpt_dir = Path(args.out_dir) if args.out_dir else home() / "checkpoints"
    if args.recipe:
        return train_recipes(args, root, ckpt_dir)
    return train_one(args, root, ckpt_dir)


def list_recipes() -> int:
    from edgederm.recipes import RECIPES

    for name, r in RECIPES.items():
        print(f"{name:<24} {r.config.model:<20} {r.why}")
    return 0


def train_recipes(args, root: Path | None, ckpt_dir: Path) -> int:
    """``--recipe NAME|all``: teachers first, each student distilled from its teacher's checkpoint."""
    from edgederm.recipes import RECIPES
    from edgederm.train import train

    names = RECIPES.names() if args.recipe == "all" else [args.recipe]
    recipes = sorted((RECIPES.get(n) for n in names), key=lambda r: r.teacher is not None)  # teachers first
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


def train_one(args, root: Path | None, ckpt_dir: Path) -> int:
    """``--model``/``--init`` with the flags' settings; ``--init`` brings its weights, shapes and pruning record."""
    from edgederm.train import TrainConfig, train

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
