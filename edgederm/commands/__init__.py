"""The CLI verbs, one module each; ``edgederm.cli`` adds each one's parser, in this order.

A module here defines ``register(sub)`` (adds its subparser and ``set_defaults(func=run)``)
and keeps heavy imports inside ``run``. A verb that prints a table prints it through
``common.emit`` and has ``common.add_json_option`` (``tests/test_json_option.py`` checks).
To add a verb, write the module and list it below.
"""

MODULES: tuple[str, ...] = (
    "edgederm.commands.demo",
    "edgederm.commands.export",
    "edgederm.commands.verify",
    "edgederm.commands.compat",
    "edgederm.commands.models",
    "edgederm.commands.data",
    "edgederm.commands.train",
    "edgederm.commands.eval",
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
