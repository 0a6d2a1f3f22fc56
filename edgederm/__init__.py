"""EdgeDerm: skin-lesion models from PyTorch to phones and edge boxes, with proof that they still work.

Importing this package is cheap on purpose: torch, tensorflow and coremltools are imported
inside the functions that need them, so ``device_bench`` and the CLI's ``--help`` stay light.
"""

__version__ = "0.1.0"

from edgederm.errors import EdgeDermError  # noqa: E402
from edgederm.preprocessing import Preprocessing  # noqa: E402

__all__ = ["EdgeDermError", "Preprocessing", "__version__"]
