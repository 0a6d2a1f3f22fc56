"""CLI verbs that live in their own module; ``edgederm.cli`` adds each one's parser.

A module here defines ``register(sub)`` (adds its subparser and ``set_defaults(func=run)``)
and keeps heavy imports inside ``run``. To add a verb, write the module and list it below.
"""

MODULES: tuple[str, ...] = (
    "edgederm.commands.bench",
    "edgederm.commands.report",
    "edgederm.commands.run",
    "edgederm.commands.prune",
    "edgederm.commands.diagnose",
    "edgederm.commands.bundle", "edgederm.commands.device", "edgederm.commands.results",
    "edgederm.commands.embed",
    "edgederm.commands.quantize",
    "edgederm.commands.recalibrate",
    "edgederm.commands.profile",
)
