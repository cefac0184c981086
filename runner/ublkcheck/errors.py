"""Errors a user can fix: printed as one line, exit code 2, never a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite; the message says what to do."""
