"""The error every training CLI turns into one line on stderr and exit code 2 (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a missing file, a flag out of range, checkpoints that do not fit."""
