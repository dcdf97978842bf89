"""A job's process: `python -P -m curate.service.worker ARGS...` becomes `python -P -m curate ARGS...`
(-P: the working directory is not on sys.path, so nothing there can shadow the installed package).

It first asks Linux to kill it when the service dies (PR_SET_PDEATHSIG, which survives the exec), so no
job keeps running unwatched after a crash; the restarted service then marks that job failed and ends any
leftover of its process group.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the restarted service still ends leftovers
    expected = os.environ.get("CURATE_SERVICE_PID")
    if expected and os.getppid() != int(expected):
        os._exit(1)  # the service died before prctl took effect


def main() -> int:
    _die_with_parent()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "curate", *sys.argv[1:]])
    return 1  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
