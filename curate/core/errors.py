"""User-facing errors: the CLI prints their message as one line and exits 2, with no traceback."""


class CurateError(Exception):
    """Something the user can fix: the message says what, where (file, record, key) and what to do."""
