"""The HTTP service: JSON API under /api (OpenAPI at /openapi.json, docs at /docs), run reports, and
the web pages. Built by `create_app(settings)`; `curate serve` runs it with uvicorn.

Safety: with a token, every /api route and every report requires it (``Authorization: Bearer T`` or the
``curate_token`` cookie the pages set), else 401. Bodies over the size cap get 413 before they are read
whole; invalid bodies get 422 naming the field; any path outside the roots gets 403. Job ids, dataset
names and refs are matched against patterns before anything touches the filesystem.
"""

from __future__ import annotations

import hmac
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from curate import __version__
from curate.config import config_to_yaml
from curate.core.errors import CurateError
from curate.service import datasets
from curate.service.jobs import ACTIVE, Job, JobRecords, JobRunner, new_job_id
from curate.service.paths import PathOutsideRoots, confine
from curate.service.progress import finished_progress, run_progress, train_series
from curate.service.requests import JOB_ID, NAME, RequestProblem, RunRequest, TrainRequest, checked_config
from curate.service.settings import ServiceSettings

PAGES = Path(__file__).parent / "pages"
REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
JobId = Annotated[str, PathParam(pattern=JOB_ID, description="A job id (16 hex digits).")]
DatasetName = Annotated[str, PathParam(pattern=NAME.pattern, description="A dataset name.")]


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def _too_large(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body over {self.limit:,} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(send)
            if not message.get("more_body"):
                break
        body, sent = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(settings: ServiceSettings) -> FastAPI:
    records = JobRecords(settings.database)
    runner = JobRunner(settings, records)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        yield
        runner.stop()

    app = FastAPI(
        title="curate",
        version=__version__,
        description="Run and track curation and training jobs; read their reports and dataset versions.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings, app.state.records, app.state.runner = settings, records, runner
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(RequestProblem)
    async def _problem(request: Request, error: RequestProblem) -> JSONResponse:
        return JSONResponse({"detail": error.detail()}, status_code=422)

    @app.exception_handler(PathOutsideRoots)
    async def _outside(request: Request, error: PathOutsideRoots) -> JSONResponse:
        return JSONResponse({"detail": str(error), "field": error.field}, status_code=403)

    def require_token(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        given = (
            header[7:] if header.lower().startswith("bearer ") else request.cookies.get("curate_token", "")
        )
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPException(401, "a valid token is required", headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
    guarded = APIRouter(dependencies=[Depends(require_token)])

    def job_or_404(job_id: str, kind: str) -> Job:
        job = records.get(job_id)
        if job is None or job.kind != kind:
            raise HTTPException(404, f"no {kind} job {job_id}")
        return job

    # ---------------------------------------------------------------------------------- runs

    def run_view(job: Job) -> dict[str, Any]:
        view = job.summary()
        output = Path(job.output)
        progress: dict[str, Any] | None = None
        if job.status == "succeeded":
            stats = _read_json(output / "stats.json") or {}
            progress = finished_progress(stats, stats.get("seconds", 0.0))
        elif job.status != "queued":
            end = job.finished or time.time()
            progress = run_progress(
                settings.job_dir(job.id) / "progress", job.total_bytes, end - (job.started or end)
            )
        view["progress"] = progress
        has_report = job.status == "succeeded" and (output / "report.html").is_file()
        view["report_url"] = f"/runs/{job.id}/report" if has_report else None
        return view

    @api.post("/runs", status_code=201, summary="Start a curation run")
    def start_run(body: RunRequest) -> dict[str, str]:
        job_id = new_job_id()
        directory = settings.job_dir(job_id)
        config, total_bytes = checked_config(body, settings.roots, directory / "out")
        output = config.output.path
        busy = [job for job in records.list("run", ACTIVE) if job.output == output]
        if busy:
            raise HTTPException(409, f"output {output} is in use by run {busy[0].id}; wait or cancel it")
        directory.mkdir(parents=True, exist_ok=True)
        recipe_path = directory / "recipe.yaml"
        recipe_path.write_text(config_to_yaml(config))
        view = {"input": config.input.paths, "output": output, "dataset": config.output.dataset}
        records.add(job_id, "run", output, ["run", str(recipe_path)], view, total_bytes)
        runner.wake()
        return {"id": job_id}

    @api.get("/runs", summary="All runs, newest first")
    def list_runs() -> dict[str, Any]:
        return {"runs": [run_view(job) for job in records.list("run")]}

    @api.get("/runs/{job_id}", summary="A run: status, per-stage progress, error")
    def get_run(job_id: JobId) -> dict[str, Any]:
        return run_view(job_or_404(job_id, "run"))

    @api.post("/runs/{job_id}/cancel", status_code=202, summary="Cancel a queued or running run")
    def cancel_run(job_id: JobId) -> dict[str, Any]:
        job_or_404(job_id, "run")
        job = runner.cancel(job_id)
        return {"id": job_id, "status": job.status if job else None}

    @api.get("/runs/{job_id}/stats", summary="The run's stats.json")
    def run_stats(job_id: JobId) -> dict[str, Any]:
        job = job_or_404(job_id, "run")
        stats = _read_json(Path(job.output) / "stats.json") if job.status == "succeeded" else None
        if stats is None:
            raise HTTPException(404, f"run {job_id} has no stats (status {job.status})")
        return stats

    @api.get("/runs/{job_id}/recipe", summary="The recipe the run was started with (YAML)")
    def run_recipe(job_id: JobId) -> dict[str, Any]:
        job_or_404(job_id, "run")
        path = settings.job_dir(job_id) / "recipe.yaml"
        return {"recipe": path.read_text() if path.is_file() else None}

    @guarded.get("/runs/{job_id}/report", response_class=HTMLResponse, summary="The run's report (HTML)")
    def run_report(job_id: JobId) -> FileResponse:
        job = job_or_404(job_id, "run")
        path = Path(job.output) / "report.html"
        if job.status != "succeeded" or not path.is_file():
            raise HTTPException(404, f"run {job_id} has no report (status {job.status})")
        return FileResponse(path, media_type="text/html")

    @guarded.get(
        "/reports/{path:path}", response_class=HTMLResponse, summary="report.html of an output folder"
    )
    def folder_report(path: str) -> FileResponse:
        resolved = confine(path, settings.roots, "path")
        report = resolved if resolved.name == "report.html" else resolved / "report.html"
        report = confine(str(report), settings.roots, "path")  # a symlinked report.html too
        if not report.is_file():
            raise HTTPException(404, f"no report.html at {path}")
        return FileResponse(report, media_type="text/html")

    # ------------------------------------------------------------------------------- training

    def train_view(job: Job) -> dict[str, Any]:
        view = job.summary()
        view["series"] = train_series(Path(job.output))
        return view

    def train_data(data: str) -> str:
        if records.get(data) is not None or _matches(JOB_ID, data):
            run = records.get(data)
            if run is None or run.kind != "run":
                raise RequestProblem(["data"], f"no run {data}")
            if run.status != "succeeded":
                raise RequestProblem(["data"], f"run {data} has not succeeded (status {run.status})")
            return run.output
        if "@" in data:
            name, _, ref = data.partition("@")
            if not NAME.match(name) or not _matches(REF, ref):
                raise RequestProblem(["data"], "name@ref: use letters, digits, '.', '_' and '-'")
            return data
        folder = confine(data, settings.roots, "data")
        if not (folder / "manifest.json").is_file():
            raise RequestProblem(["data"], f"{data}: not a `curate run` output folder (no manifest.json)")
        return str(folder)

    @api.post("/train", status_code=201, summary="Start a training job")
    def start_train(body: TrainRequest) -> dict[str, str]:
        data = train_data(body.data)
        job_id = new_job_id()
        output = settings.job_dir(job_id) / "train-out"
        argv = ["train", "--data", data, "--preset", body.preset, "--steps", str(body.steps),
                "--device", body.device, "--eval-every", str(body.eval_every),
                "--eval-fraction", str(body.eval_fraction),
                "--log-every", str(body.log_every), "--output", str(output)]  # fmt: skip
        view = {"data": body.data, "preset": body.preset, "steps": body.steps}
        records.add(job_id, "train", str(output), argv, view)
        runner.wake()
        return {"id": job_id}

    @api.get("/train", summary="All training jobs with their loss series")
    def list_train() -> dict[str, Any]:
        return {"jobs": [train_view(job) for job in records.list("train")]}

    @api.get("/train/{job_id}", summary="A training job: status, loss, eval loss and tokens/s so far")
    def get_train(job_id: JobId) -> dict[str, Any]:
        return train_view(job_or_404(job_id, "train"))

    @api.post("/train/{job_id}/cancel", status_code=202, summary="Cancel a training job")
    def cancel_train(job_id: JobId) -> dict[str, Any]:
        job_or_404(job_id, "train")
        job = runner.cancel(job_id)
        return {"id": job_id, "status": job.status if job else None}

    # ------------------------------------------------------------------------------- datasets

    def from_store(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except CurateError as error:
            raise HTTPException(404, str(error)) from None

    @api.get("/datasets", summary="Datasets with their branches and tags")
    def list_datasets() -> dict[str, Any]:
        return {"datasets": datasets.list_datasets()}

    @api.get("/datasets/{name}/log", summary="Commits of a branch, newest first, with their metadata")
    def dataset_log(name: DatasetName, ref: Annotated[str, Query(pattern=REF)] = "main") -> dict[str, Any]:
        commits = from_store(datasets.log, name, ref)
        for commit in commits:
            commit["report_url"] = (
                f"/datasets/{name}/commits/{commit['id']}/report" if commit["has_report"] else None
            )
        return {"dataset": name, "ref": ref, "commits": commits}

    @api.get("/datasets/{name}/diff", summary="Files and counts that differ between two versions")
    def dataset_diff(
        name: DatasetName, a: Annotated[str, Query(pattern=REF)], b: Annotated[str, Query(pattern=REF)]
    ) -> dict[str, Any]:
        result = from_store(datasets.diff, name, a, b)
        for side in ("a", "b"):
            commit = result[side]
            commit["report_url"] = (
                f"/datasets/{name}/commits/{commit['id']}/report" if commit["has_report"] else None
            )
        return result

    @guarded.get(
        "/datasets/{name}/commits/{commit}/report", response_class=HTMLResponse, summary="A version's report"
    )
    def commit_report(name: DatasetName, commit: Annotated[str, PathParam(pattern=r"^[0-9a-f]{6,64}$")]):
        path = from_store(datasets.commit_report, name, commit)
        if path is None or not path.is_file():
            raise HTTPException(404, f"{name}@{commit} has no report.html")
        return FileResponse(path, media_type="text/html")

    # ---------------------------------------------------------------------------------- pages

    def page(name: str) -> Any:
        return lambda: FileResponse(PAGES / f"{name}.html", media_type="text/html")

    app.get("/", include_in_schema=False)(lambda: RedirectResponse("/runs"))
    app.get("/runs", include_in_schema=False)(page("runs"))
    app.get("/datasets", include_in_schema=False)(page("datasets"))
    app.get("/train", include_in_schema=False)(page("train"))

    @app.get("/runs/{job_id}", include_in_schema=False)
    def run_page(job_id: JobId) -> FileResponse:
        return FileResponse(PAGES / "run.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="curate API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    app.include_router(api)
    app.include_router(guarded)
    app.mount("/static/swagger", StaticFiles(directory=_swagger_dir()), name="swagger")
    app.mount("/static/plotly", StaticFiles(directory=_plotly_dir()), name="plotly")
    app.mount("/static", StaticFiles(directory=PAGES / "static"), name="static")
    return app


def _matches(pattern: str, value: str) -> bool:
    import re

    return re.match(pattern, value) is not None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _swagger_dir() -> str:
    """Swagger UI's files from the swagger-ui-bundle package (FastAPI's default /docs uses a CDN)."""
    import swagger_ui_bundle

    return swagger_ui_bundle.swagger_ui_path


def _plotly_dir() -> str:
    """plotly.min.js from the installed plotly package, for the pages' live charts."""
    import plotly

    return str(Path(plotly.__file__).parent / "package_data")
