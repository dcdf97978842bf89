"""User-facing errors: the CLI prints their message as one line and exits 2, with no traceback.

What went wrong is said by the type, never found by matching messages: a CurateError raised while a
pipeline is built is the user's to fix as it stands; anything raised once the pipeline runs arrives as
a PipelineFailed (naming the stage when a worker raised a CurateError); a cancelled run is Cancelled.
"""

from __future__ import annotations

import re

# How Beam appends the step to an error raised in a worker: "... [while running 'stage/Step']".
_BEAM_STEP = r"(?: \[while running '([^/']+)[^']*'\])?$"


class CurateError(Exception):
    """Something the user can fix: the message says what, where (file, record, key) and what to do."""


class PipelineFailed(CurateError):
    """A pipeline that failed while it ran. ``stage``: the stage whose worker raised a CurateError (a
    model or list file it could not open), else None (then the message names the log)."""

    def __init__(self, message: str, stage: str | None = None):
        super().__init__(message)
        self.stage = stage

    @classmethod
    def of(cls, error: Exception, log_path: str) -> PipelineFailed:
        """One line for ``error``: a CurateError raised in a worker reads as if raised here (with its
        stage); anything else names its last line and the log that has the traceback."""
        lines = str(error).strip().splitlines() or [type(error).__name__]
        last = lines[-1]
        # From worker processes the error arrives as text ("...CurateError: msg"); in-process, as itself.
        prefix = "" if isinstance(error, CurateError) else r".*?CurateError: "
        user_error = re.search(prefix + r"(.*?)" + _BEAM_STEP, last)
        if user_error:
            stage = user_error.group(2)
            return cls(f"{user_error.group(1)}{f' (stage {stage})' if stage else ''}", stage)
        return cls(f"the pipeline failed: {last} (traceback in {log_path})")


class Cancelled(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM or SIGINT); it ends as Ctrl-C does, after cleaning up."""
