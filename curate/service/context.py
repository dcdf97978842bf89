"""What every route needs: the settings, the job records and the job runner (one per app), and the
token check that guards the API and the reports."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam

from curate.service.jobs import Job, JobRecords, JobRunner, log_tail
from curate.service.requests import JOB_ID, NAME
from curate.service.settings import ServiceSettings

REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a branch, tag or commit id
JobId = Annotated[str, PathParam(pattern=JOB_ID, description="A job id (16 hex digits).")]
DatasetName = Annotated[str, PathParam(pattern=NAME.pattern, description="A dataset name.")]


@dataclass(frozen=True)
class ServiceContext:
    settings: ServiceSettings
    records: JobRecords
    runner: JobRunner

    def job(self, job_id: str, kind: str) -> Job:
        job = self.records.get(job_id)
        if job is None or job.kind != kind:
            raise HTTPException(404, f"no {kind} job {job_id}")
        return job

    def failure_log(self, job: Job) -> str | None:
        """The end of a failed job's console.log: what went wrong when the error line does not say."""
        return log_tail(self.settings.job_dir(job.id) / "console.log") if job.status == "failed" else None


def context(request: Request) -> ServiceContext:
    return request.app.state.context


Context = Annotated[ServiceContext, Depends(context)]


def require_token(request: Request, ctx: Context) -> None:
    """With a token configured: ``Authorization: Bearer T`` or the pages' ``curate_token`` cookie."""
    token = ctx.settings.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else request.cookies.get("curate_token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "a valid token is required", headers={"WWW-Authenticate": "Bearer"})


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
