"""Jobs: records in SQLite, each run in its own worker process group, at most ``max_jobs`` at once.

One supervisor thread starts queued jobs, reaps finished ones and carries out cancels; request handlers
only read and write records, so the web server never waits on a job. A job's worker is
``python -m curate.service.worker`` running the `curate` command line in a new session (its own process
group, so a cancel stops Beam's worker processes too). Records survive restarts: a job that was running
when the service died is marked failed with that reason, and its leftover processes are ended.
A run that did not succeed never leaves an output that looks complete: its manifest.json, stats.json
and report.html are removed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.core.files import CONFINE_ENV
from curate.publish import abandon
from curate.service.settings import ServiceSettings

ACTIVE = ("queued", "running")
JOB_ENV = "CURATE_SERVICE_JOB"  # set on a job's processes, so a restarted service can find leftovers
COMPLETE_MARKERS = ("manifest.json", "stats.json", "report.html")
KILL_GRACE_S = 3.0
TICK_S = 0.3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- run | train
    status TEXT NOT NULL,          -- queued | running | succeeded | failed | cancelled
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    output TEXT NOT NULL,
    argv TEXT NOT NULL,            -- JSON list: the `curate` command line
    request TEXT NOT NULL,         -- JSON: what was submitted (for display)
    total_bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT
)
"""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    cancel_requested: bool
    output: str
    argv: list[str]
    request: dict[str, Any]
    total_bytes: int
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["argv"] = json.loads(data["argv"])
        data["request"] = json.loads(data["request"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "output": self.output,
            "error": self.error,
            "request": self.request,
        }


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class JobRecords:
    """The jobs table; every method is one short transaction (safe from any thread)."""

    def __init__(self, path: Path):
        self._path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self._path, timeout=30)
            db.row_factory = sqlite3.Row
            try:
                with db:
                    yield db
            finally:
                db.close()

    def add(
        self,
        job_id: str,
        kind: str,
        output: str,
        argv: list[str],
        request: dict[str, Any],
        total_bytes: int = 0,
    ) -> Job:
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, status, created, output, argv, request, total_bytes)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, kind, time.time(), output, json.dumps(argv), json.dumps(request), total_bytes),
            )
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list(self, kind: str | None = None, status: tuple[str, ...] | None = None) -> list[Job]:
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        if status:
            query += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created DESC", args).fetchall()
        return [Job.from_row(row) for row in rows]

    def update(self, job_id: str, only_if: tuple[str, ...] | None = None, **fields: Any) -> bool:
        """Set ``fields``; with ``only_if``, only while the job's status is one of those. True if changed."""
        assignments = ", ".join(f"{key} = ?" for key in fields)
        query, args = f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id]
        if only_if:
            query += f" AND status IN ({','.join('?' * len(only_if))})"
            args += list(only_if)
        with self._connect() as db:
            return db.execute(query, args).rowcount == 1


LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 16_384


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a job's console.log (read from its end: a log may be large)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    if size > LOG_TAIL_BYTES:
        text = text.partition("\n")[2]  # drop the partial first line
    tail = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(tail) if tail else None


def _last_error(log: Path) -> str | None:
    """The one-line error the `curate` command printed, else a Python exception's last line."""
    lines = (log_tail(log) or "").splitlines()
    for line in reversed(lines):
        if line.startswith("curate: error: "):
            return line[len("curate: error: ") :]
    for line in reversed(lines):
        if line and not line[0].isspace() and ("Error: " in line or "Exception: " in line):
            return line  # e.g. ImportError: ... (the traceback above it is in the log tail)
    return None


def processes_of(job_id: str) -> list[int]:
    """Processes (of this user) still carrying the job's marker in their environment."""
    marker = f"{JOB_ENV}={job_id}".encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


class JobRunner:
    """Owns the worker processes; the only code that starts, signals or reaps them."""

    def __init__(self, settings: ServiceSettings, records: JobRecords):
        self.settings = settings
        self.records = records
        self._processes: dict[str, subprocess.Popen] = {}
        self._kill_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="curate-jobs", daemon=True)

    # --------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._recover()
        self._thread.start()

    def stop(self) -> None:
        """Service shutdown: end running jobs (they cannot finish without us) and record why."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for job_id, process in list(self._processes.items()):
            self._signal(process, signal.SIGKILL)
            process.wait(timeout=10)
            self._finish(job_id, "failed", "the service stopped while this job was running")

    def wake(self) -> None:
        self._wake.set()

    def _recover(self) -> None:
        for job in self.records.list(status=("running",)):
            for pid in processes_of(job.id):
                with suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self._finish(
                job.id,
                "cancelled" if job.cancel_requested else "failed",
                "the service stopped while this job was running (its process was ended at restart)",
            )

    # ------------------------------------------------------------------------------------- loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._cancel_requested()
                self._start_queued()
            except Exception as error:  # noqa: BLE001 (the supervisor must outlive one bad tick)
                print(f"curate serve: job supervisor: {error!r}", file=sys.stderr)
            self._wake.wait(TICK_S)
            self._wake.clear()

    def _start_queued(self) -> None:
        while len(self._processes) < self.settings.max_jobs:
            queued = self.records.list(status=("queued",))
            if not queued:
                return
            job = queued[-1]  # oldest first
            if job.cancel_requested:
                self._finish(job.id, "cancelled", "cancelled before it started")
                continue
            self._launch(job)

    def _launch(self, job: Job) -> None:
        directory = self.settings.job_dir(job.id)
        (directory / "progress").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env[JOB_ENV] = job.id
        env["CURATE_PROGRESS_DIR"] = str(directory / "progress")
        env["CURATE_SERVICE_PID"] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        # No working directory may shadow the installed package (a checkout named `curate` in a root):
        # Python puts neither the working directory nor a script's folder on sys.path (-P, and the
        # environment for every Python the job starts, Beam's workers too), and jobs start in an empty
        # folder of their own. The recipe's paths are absolute already.
        env["PYTHONSAFEPATH"] = "1"
        # What the job may open: the roots, and its own folder (where its default output goes).
        env[CONFINE_ENV] = os.pathsep.join([*map(str, self.settings.roots), os.path.realpath(directory)])
        workdir = directory / "cwd"
        workdir.mkdir(exist_ok=True)
        if job.kind == "run":
            _remove_markers(Path(job.output))  # a stale manifest must not look like this job's
        with open(directory / "console.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "curate.service.worker", *job.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(workdir),
                env=env,
                start_new_session=True,  # its own process group: a cancel reaches every process of it
            )
        self._processes[job.id] = process
        self.records.update(
            job.id, only_if=("queued",), status="running", started=time.time(), pid=process.pid
        )

    def _cancel_requested(self) -> None:
        now = time.monotonic()
        for job_id, process in list(self._processes.items()):
            if job_id in self._kill_at:
                if now >= self._kill_at[job_id]:
                    self._signal(process, signal.SIGKILL)
                continue
            job = self.records.get(job_id)
            if job is not None and job.cancel_requested:
                self._signal(process, signal.SIGTERM)
                self._kill_at[job_id] = now + KILL_GRACE_S

    @staticmethod
    def _signal(process: subprocess.Popen, sig: int) -> None:
        with suppress(OSError):
            os.killpg(process.pid, sig)

    def _reap(self) -> None:
        for job_id, process in list(self._processes.items()):
            code = process.poll()
            if code is None:
                continue
            self._signal(process, signal.SIGKILL)  # any straggler of its group
            del self._processes[job_id]
            self._kill_at.pop(job_id, None)
            job = self.records.get(job_id)
            if job is None:
                continue
            if job.cancel_requested:
                self._finish(job_id, "cancelled", "cancelled by request")
            elif code == 0:
                self._finish(job_id, "succeeded", None)
            else:
                log = self.settings.job_dir(job_id) / "console.log"
                reason = _last_error(log) or f"the worker exited with code {code} (see {log})"
                self._finish(job_id, "failed", reason)

    def _finish(self, job_id: str, status: str, error: str | None) -> None:
        job = self.records.get(job_id)
        if job is None:
            return
        if status != "succeeded" and job.kind == "run":
            _remove_markers(Path(job.output))
            if status == "cancelled" and job.pid is not None:
                abandon(job.output, job.pid)  # what its workers staged after the run's own cleanup
        self.records.update(job_id, only_if=ACTIVE, status=status, finished=time.time(), error=error)

    # ------------------------------------------------------------------------------- requests

    def cancel(self, job_id: str) -> Job | None:
        """Ask for a cancel; the supervisor stops the process group within a tick."""
        job = self.records.get(job_id)
        if job is None or job.status not in ACTIVE:
            return job
        self.records.update(job_id, only_if=ACTIVE, cancel_requested=1)
        if job.status == "queued":
            self.records.update(job_id, only_if=("queued",), status="cancelled", finished=time.time(),
                                error="cancelled before it started")  # fmt: skip
        self.wake()
        return self.records.get(job_id)


def _remove_markers(output: Path) -> None:
    for name in COMPLETE_MARKERS:
        with suppress(FileNotFoundError):
            (output / name).unlink()
