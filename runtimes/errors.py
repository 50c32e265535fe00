class UserError(ValueError):
    """Bad input: the CLI reports it as one line and exits non-zero, no traceback."""
