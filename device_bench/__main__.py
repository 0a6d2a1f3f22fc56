"""``python -m device_bench run BUNDLE``: see ``device_bench.cli``."""

import sys

from device_bench.cli import main

sys.exit(main())
