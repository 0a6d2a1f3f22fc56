"""``edgederm models [PATTERN]``: the model zoo, with params and MACs on ``--stats``."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit


def register(sub) -> None:
    from edgederm.tasks import TASKS

    sp = sub.add_parser("models", help="list the model zoo")
    sp.add_argument("pattern", nargs="?", default="*")
    sp.add_argument("--task", choices=list(TASKS.names()))
    sp.add_argument("--stats", action="store_true", help="build each model and count params and MACs")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.models import MODELS, create_model, get_entry, model_stats

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
            s = model_stats(create_model(name), e.preprocessing.input_size)
            row["params M"] = f"{s['params'] / 1e6:.2f}"
            row["GMACs"] = f"{s['macs'] / 1e9:.3f}"
        rows.append(row)
    emit(rows, args)
    return 0
