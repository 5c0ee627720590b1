class CommandError(Exception):
    """A failure to report to the user in one line, without a traceback."""
