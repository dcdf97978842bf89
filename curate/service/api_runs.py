"""/api/runs: start, list, watch, cancel curation runs; their stats; and the run reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from curate.config import config_to_yaml
from curate.service.context import Context, JobId, ServiceContext, read_json, require_token
from curate.service.jobs import ACTIVE, Job, new_job_id
from curate.service.paths import confine
from curate.service.progress import finished_progress, run_progress
from curate.service.requests import RunRequest, checked_config

api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["runs"])
reports = APIRouter(dependencies=[Depends(require_token)], tags=["reports"])


def run_view(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    """A run's record with its progress: exact counts once it succeeded, live counters before."""
    view = job.summary()
    output = Path(job.output)
    progress: dict[str, Any] | None = None
    if job.status == "succeeded":
        stats = read_json(output / "stats.json") or {}
        progress = finished_progress(stats, stats.get("seconds", 0.0))
    elif job.status != "queued":
        end = job.finished or time.time()
        elapsed = end - (job.started or end)
        progress = run_progress(ctx.settings.job_dir(job.id) / "progress", job.total_bytes, elapsed)
    view["progress"] = progress
    view["log_tail"] = ctx.failure_log(job)
    has_report = job.status == "succeeded" and (output / "report.html").is_file()
    view["report_url"] = f"/runs/{job.id}/report" if has_report else None
    return view


@api.post("/runs", status_code=201, summary="Start a curation run")
def start_run(body: RunRequest, ctx: Context) -> dict[str, str]:
    job_id = new_job_id()
    directory = ctx.settings.job_dir(job_id)
    config, total_bytes = checked_config(body, ctx.settings.roots, directory / "out", ctx.settings.engines)
    output = config.output.path
    busy = [job for job in ctx.records.list("run", ACTIVE) if job.output == output]
    if busy:
        raise HTTPException(409, f"output {output} is in use by run {busy[0].id}; wait or cancel it")
    directory.mkdir(parents=True, exist_ok=True)
    recipe_path = directory / "recipe.yaml"
    recipe_path.write_text(config_to_yaml(config))
    submitted = body.input if body.input is not None else config.input.paths
    view = {"input": submitted, "output": output, "dataset": config.output.dataset}
    ctx.records.add(job_id, "run", output, ["run", str(recipe_path)], view, total_bytes)
    ctx.runner.wake()
    return {"id": job_id}


@api.get("/runs", summary="All runs, newest first")
def list_runs(ctx: Context) -> dict[str, Any]:
    return {"runs": [run_view(ctx, job) for job in ctx.records.list("run")]}


@api.get("/runs/{job_id}", summary="A run: status, per-stage progress (in, out, rate, ETA), error")
def get_run(job_id: JobId, ctx: Context) -> dict[str, Any]:
    return run_view(ctx, ctx.job(job_id, "run"))


@api.post("/runs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running run")
def cancel_run(job_id: JobId, ctx: Context) -> dict[str, Any]:
    ctx.job(job_id, "run")
    job = ctx.runner.cancel(job_id)
    return {"id": job_id, "status": job.status if job else None}


@api.get("/runs/{job_id}/stats", summary="The run's stats.json")
def run_stats(job_id: JobId, ctx: Context) -> dict[str, Any]:
    job = ctx.job(job_id, "run")
    stats = read_json(Path(job.output) / "stats.json") if job.status == "succeeded" else None
    if stats is None:
        raise HTTPException(404, f"run {job_id} has no stats (status {job.status})")
    return stats


@api.get("/runs/{job_id}/recipe", summary="The recipe the run was started with (YAML)")
def run_recipe(job_id: JobId, ctx: Context) -> dict[str, Any]:
    ctx.job(job_id, "run")
    path = ctx.settings.job_dir(job_id) / "recipe.yaml"
    return {"recipe": path.read_text() if path.is_file() else None}


@reports.get("/runs/{job_id}/report", response_class=HTMLResponse, summary="The run's report (HTML)")
def run_report(job_id: JobId, ctx: Context) -> FileResponse:
    job = ctx.job(job_id, "run")
    path = Path(job.output) / "report.html"
    if job.status != "succeeded" or not path.is_file():
        raise HTTPException(404, f"run {job_id} has no report (status {job.status})")
    return FileResponse(path, media_type="text/html")


@reports.get("/reports/{path:path}", response_class=HTMLResponse, summary="report.html of an output folder")
def folder_report(path: str, ctx: Context) -> FileResponse:
    """An absolute path, or one relative to any root (the first root that holds a report there wins)."""
    roots = ctx.settings.roots
    candidates = [path] if Path(path).is_absolute() else [str(root / path) for root in roots]
    for candidate in candidates:
        resolved = confine(candidate, roots, "path")
        report = resolved if resolved.name == "report.html" else resolved / "report.html"
        report = confine(str(report), roots, "path")  # a symlinked report.html too
        if report.is_file():
            return FileResponse(report, media_type="text/html")
    raise HTTPException(404, f"no report.html at {path}")
