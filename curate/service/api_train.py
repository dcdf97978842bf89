"""/api/train: training jobs (`curate train`) on a run, a dataset version or an output folder."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from curate import train_runs
from curate.service.context import REF, Context, JobId, ServiceContext, require_token
from curate.service.jobs import Job, new_job_id
from curate.service.paths import confine
from curate.service.progress import train_series
from curate.service.requests import JOB_ID, NAME, AblationRequest, RequestProblem, TrainRequest

api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["training"])


def train_view(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    view = job.summary()
    view["series"] = train_series(Path(job.output))
    view["log_tail"] = ctx.failure_log(job)
    return view


def train_data(ctx: ServiceContext, data: str) -> str:
    """What `curate train --data` gets: a succeeded run's output, a checked name@ref, or a confined folder."""
    if re.match(JOB_ID, data):
        run = ctx.records.get(data)
        if run is None or run.kind != "run":
            raise RequestProblem(["data"], f"no run {data}")
        if run.status != "succeeded":
            raise RequestProblem(["data"], f"run {data} has not succeeded (status {run.status})")
        return run.output
    if "@" in data:
        name, _, ref = data.partition("@")
        if not NAME.match(name) or not re.match(REF, ref):
            raise RequestProblem(["data"], "name@ref: use letters, digits, '.', '_' and '-'")
        return data
    folder = confine(data, ctx.settings.roots, "data")
    if not (folder / "manifest.json").is_file():
        raise RequestProblem(["data"], f"{data}: not a `curate run` output folder (no manifest.json)")
    return str(folder)


@api.post("/train", status_code=201, summary="Start a training job")
def start_train(body: TrainRequest, ctx: Context) -> dict[str, str]:
    data = train_data(ctx, body.data)
    job_id = new_job_id()
    output = ctx.settings.job_dir(job_id) / "train-out"
    argv = ["train", "--data", data, "--preset", body.preset, "--steps", str(body.steps),
            "--device", body.device, "--eval-every", str(body.eval_every),
            "--eval-fraction", str(body.eval_fraction), "--log-every", str(body.log_every),
            "--output", str(output)]  # fmt: skip
    if body.eval_tasks:
        argv += ["--eval-tasks", *body.eval_tasks, "--eval-limit", str(body.eval_limit)]
    view = {"data": body.data, "preset": body.preset, "steps": body.steps}
    ctx.records.add(job_id, "train", str(output), argv, view)
    ctx.runner.wake()
    return {"id": job_id}


@api.get("/train", summary="All training jobs with their loss series, and command-line runs under the roots")
def list_train(ctx: Context) -> dict[str, Any]:
    jobs = ctx.records.list("train")
    outside = command_line_runs(ctx, {job.output for job in jobs})
    return {"jobs": [*outside, *(train_view(ctx, job) for job in jobs)]}


def command_line_runs(ctx: ServiceContext, known: set[str]) -> list[dict[str, Any]]:
    """`curate train` runs started outside the service (train_runs' list) whose output is under a root."""
    views = []
    for entry in train_runs.registered():
        output = Path(entry["output"])
        if str(output) in known or not any(output.is_relative_to(root) for root in ctx.settings.roots):
            continue
        series = train_series(output)
        if not series["step"]:
            continue
        steps = int((entry.get("request") or {}).get("steps") or 0)
        done = bool(steps) and series["step"][-1] >= steps
        views.append(
            {
                "id": "cli-" + hashlib.sha256(str(output).encode()).hexdigest()[:12],
                "kind": "train",
                "status": "succeeded" if done else "running",
                "created": entry.get("started"),
                "output": str(output),
                "request": {**(entry.get("request") or {}), "source": "command line"},
                "series": series,
            }
        )
    return views


@api.get("/train/{job_id}", summary="A training job: status, loss, eval loss and tokens/s so far")
def get_train(job_id: JobId, ctx: Context) -> dict[str, Any]:
    return train_view(ctx, ctx.job(job_id, "train"))


@api.post("/train/{job_id}/cancel", status_code=202, summary="Cancel a training job")
def cancel_train(job_id: JobId, ctx: Context) -> dict[str, Any]:
    ctx.job(job_id, "train")
    job = ctx.runner.cancel(job_id)
    return {"id": job_id, "status": job.status if job else None}


# ------------------------------------------------------------------------------------------ ablations


def ablation_view(job: Job) -> dict[str, Any]:
    view = job.summary()
    view["progress"] = train_runs.read_progress(Path(job.output))
    result = Path(job.output) / "ablation.json"
    view["verdicts"] = json.loads(result.read_text()).get("verdicts") if result.is_file() else None
    return view


@api.post("/ablations", status_code=201, summary="Start an ablation (`curate ablate`) of dataset versions")
def start_ablation(body: AblationRequest, ctx: Context) -> dict[str, str]:
    for version in body.versions:
        name, _, ref = version.partition("@")
        if not NAME.match(name) or not re.match(REF, ref or "main"):
            raise RequestProblem(["versions"], f"{version}: give name@ref (letters, digits, '.', '_', '-')")
    job_id = new_job_id()
    output = ctx.settings.job_dir(job_id) / "ablation"
    argv = ["ablate", *body.versions, "--preset", body.preset, "--seeds", str(body.seeds), "--tasks",
            *body.tasks, "--device", body.device, "--output", str(output)]  # fmt: skip
    argv += ["--tokens", str(body.tokens)] if body.tokens else []
    argv += ["--limit", str(body.limit)] if body.limit else []
    ctx.records.add(job_id, "ablate", str(output), argv, body.model_dump())
    ctx.runner.wake()
    return {"id": job_id}


@api.get("/ablations", summary="All ablation jobs with their progress (runs done of all) and verdicts")
def list_ablations(ctx: Context) -> dict[str, Any]:
    return {"jobs": [ablation_view(job) for job in ctx.records.list("ablate")]}


@api.get("/ablations/{job_id}", summary="An ablation job: status, progress, verdicts")
def get_ablation(job_id: JobId, ctx: Context) -> dict[str, Any]:
    return ablation_view(ctx.job(job_id, "ablate"))
