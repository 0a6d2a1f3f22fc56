"""``python -m edgederm``: the same as the ``edgederm`` script (for machines where it is not on PATH)."""

from edgederm.cli import main

raise SystemExit(main())
