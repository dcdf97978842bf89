"""/api/train: training jobs (`curate train`) on a run, a dataset version or an output folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from curate.service.context import REF, Context, JobId, ServiceContext, require_token
from curate.service.jobs import Job, new_job_id
from curate.service.paths import confine
from curate.service.progress import train_series
from curate.service.requests import JOB_ID, NAME, RequestProblem, TrainRequest

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
    view = {"data": body.data, "preset": body.preset, "steps": body.steps}
    ctx.records.add(job_id, "train", str(output), argv, view)
    ctx.runner.wake()
    return {"id": job_id}


@api.get("/train", summary="All training jobs with their loss series")
def list_train(ctx: Context) -> dict[str, Any]:
    return {"jobs": [train_view(ctx, job) for job in ctx.records.list("train")]}


@api.get("/train/{job_id}", summary="A training job: status, loss, eval loss and tokens/s so far")
def get_train(job_id: JobId, ctx: Context) -> dict[str, Any]:
    return train_view(ctx, ctx.job(job_id, "train"))


@api.post("/train/{job_id}/cancel", status_code=202, summary="Cancel a training job")
def cancel_train(job_id: JobId, ctx: Context) -> dict[str, Any]:
    ctx.job(job_id, "train")
    job = ctx.runner.cancel(job_id)
    return {"id": job_id, "status": job.status if job else None}
