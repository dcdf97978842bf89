"""What `curate serve` was started with; one object the app, jobs and path checks share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_BODY_BYTES = 1 << 20  # a recipe is a few KB; anything near a megabyte is a mistake or an attack


@dataclass(frozen=True)
class ServiceSettings:
    roots: tuple[Path, ...]  # resolved (symlinks followed); request paths must fall inside one
    token: str | None
    max_jobs: int
    state: Path  # jobs.sqlite3 and one folder per job
    max_body_bytes: int = MAX_BODY_BYTES
    # Engines the operator set up (`curate serve --engine RUNNER.yaml`): runner name -> the runner section
    # a request naming that runner gets, whatever runner options the request carried.
    engines: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        roots: list[str],
        token: str | None,
        max_jobs: int = 1,
        state: str | None = None,
        engines: dict[str, dict] | None = None,
    ) -> ServiceSettings:
        resolved = tuple(Path(os.path.realpath(root)) for root in roots)
        for root in resolved:
            root.mkdir(parents=True, exist_ok=True)
        state_dir = Path(os.path.realpath(state)) if state else resolved[0] / ".curate-service"
        (state_dir / "jobs").mkdir(parents=True, exist_ok=True)
        return cls(resolved, token or None, max_jobs, state_dir, engines=dict(engines or {}))

    @property
    def database(self) -> Path:
        return self.state / "jobs.sqlite3"

    def job_dir(self, job_id: str) -> Path:
        return self.state / "jobs" / job_id
