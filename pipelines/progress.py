"""Live progress from workers to the console, without relying on a runner's metrics API.

Workers count what they read and what they keep in process-local counters and, at most once a second,
write them to one small JSON file per process in the directory named by ``CURATE_PROGRESS_DIR``. The
driver (curate.run) sums those files, and so does `curate serve` for its per-stage progress bars. Where
the variable is unset (Dataflow, Flink, Spark: the runner's own UI shows progress) this is a no-op.

A file holds ``{"read": n, "kept": n, "bytes": n, "stages": {stage: {"out": n, "rejected": n}}}``:
``bytes`` counts input files read to their end, so a reader of the files can estimate time left.
"""

from __future__ import annotations

import json
import os
import socket
import time

PROGRESS_ENV = "CURATE_PROGRESS_DIR"
_counts: dict = {"read": 0, "kept": 0, "bytes": 0, "stages": {}}
_last_flush = 0.0


def _maybe_flush(force: bool = False) -> None:
    global _last_flush
    now = time.monotonic()
    if not force and now - _last_flush < 1.0:
        return  # the per-document path: a clock read and nothing else
    _last_flush = now
    directory = os.environ.get(PROGRESS_ENV)
    if not directory:
        return
    path = os.path.join(directory, f"{socket.gethostname()}-{os.getpid()}.json")
    try:
        with open(path + ".tmp", "w") as handle:
            json.dump(_counts, handle)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # progress is best-effort; the stats at the end are exact


def report_read(n: int = 1) -> None:
    _counts["read"] += n
    _maybe_flush()


def report_kept(n: int = 1) -> None:
    _counts["kept"] += n
    _maybe_flush(force=False)


def report_bytes(n: int) -> None:
    _counts["bytes"] += n
    _maybe_flush()


def report_stage(stage: str, side: str, n: int = 1) -> None:
    """``side`` is "out" (kept by the stage) or "rejected"; a stage's input so far is their sum."""
    entry = _counts["stages"].get(stage)
    if entry is None:
        entry = _counts["stages"][stage] = {"out": 0, "rejected": 0}
    entry[side] += n
    _maybe_flush()


def flush() -> None:
    _maybe_flush(force=True)
