"""The model zoo: a name-keyed registry of classifiers and segmenters with capability flags.

``create_model("efficientnet_lite0", num_classes=7, pretrained="imagenet")`` builds a model;
``MODELS.names()`` lists them; ``get_entry(name)`` gives the entry with its default
preprocessing and flags. Entries are declared in ``zoo.py`` without importing torch; each
family's builder lives in its own module and is imported only when a model is built.
"""

from edgederm.models import zoo  # noqa: F401,E402  (declares the entries: fills MODELS)
from edgederm.models.entry import MODELS, ModelEntry, create_model, get_entry, model_stats

__all__ = ["MODELS", "ModelEntry", "create_model", "get_entry", "model_stats"]
