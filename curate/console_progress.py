"""The console while a run goes: Beam's log goes to a file, and the progress line 'read N records · kept
M · R records/s' comes from the counters the workers write (read by pipelines/progress_files.py, as the
service reads them)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from curate.pipelines.progress_files import read_counters


class FileProgress:
    """Prints the line every few seconds (in place on a terminal) and once more at the end."""

    def __init__(self, directory: str, stream: TextIO):
        self._directory = directory
        self._stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()
        self._interactive = stream.isatty()
        self._last_line = ""

    def _show(self) -> None:
        counters = read_counters(self._directory)
        read, kept = counters.read, counters.kept
        elapsed = time.monotonic() - self._start
        line = f"  read {read:,} records · kept {kept:,} · {read / max(elapsed, 1e-9):,.0f} records/s"
        if line != self._last_line and read:
            end = "\r" if self._interactive else "\n"
            print(line.ljust(70), end=end, file=self._stream, flush=True)
            self._last_line = line

    def _loop(self) -> None:
        interval = 0.5 if self._interactive else 5.0
        while not self._stop.wait(interval):
            self._show()

    def __enter__(self) -> FileProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show()  # the final counts (workers flush at bundle end), however short the run
        if self._interactive and self._last_line:
            print(file=self._stream)


@contextlib.contextmanager
def worker_logs_to(path: str) -> Iterator[TextIO]:
    """Send everything written to file descriptor 2 (Beam's and its worker processes' logs) to ``path``
    while the run lasts, and hand back a stream to the real console for progress and the summary."""
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 2)
    console = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)
        console.close()
