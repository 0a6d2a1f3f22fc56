"""The one error type of device_bench: a problem the user can fix, printed on one line (exit 2)."""


class DeviceBenchError(Exception):
    """Names the file or flag at fault and the fix; ``python -m device_bench`` prints it without a traceback."""
