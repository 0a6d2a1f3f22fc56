"""The task registry: everything that differs between classifying a lesion and outlining it.

A task is one :class:`TaskSpec` registered in :data:`TASKS` (``classification.py``,
``segmentation.py``). Stages ask the spec — the headline metric, the output tensor, how
outputs become predictions, parity figures and their gates, scoring, the training loss —
instead of comparing task names. A new task is a new module here with its tests
(``tests/test_tasks.py`` fails for a registered task without one).
"""

from edgederm.tasks import classification, segmentation  # noqa: F401  (registers the built-in tasks)
from edgederm.tasks.spec import TASKS, TaskSpec, task_of

__all__ = ["TASKS", "TaskSpec", "task_of"]
