"""One exception type for every user-facing failure: the CLI prints its message on one line."""


class EdgeDermError(Exception):
    """A problem with the user's input or environment, worded so the user can fix it.

    The message names the file or flag at fault and the fix; the CLI prints it without a
    traceback and exits with status 2.
    """
