"""The HTTP service: JSON API under /api (OpenAPI at /openapi.json, docs at /docs), run reports, and
the web pages. Built by `create_app(settings)`; `curate serve` runs it with uvicorn.

Safety: with a token, every /api route and every report requires it (``Authorization: Bearer T`` or the
``curate_token`` cookie the pages set), else 401. Bodies over the size cap get 413 before they are read
whole; invalid bodies get 422 naming the field; any path outside the roots gets 403. Job ids, dataset
names and refs are matched against patterns before anything touches the filesystem.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from curate import __version__
from curate.service import api_datasets, api_runs, api_train, pages
from curate.service.context import ServiceContext
from curate.service.jobs import JobRecords, JobRunner
from curate.service.paths import PathOutsideRoots
from curate.service.requests import RequestProblem
from curate.service.settings import ServiceSettings


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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    app.state.context = ServiceContext(settings, records, runner)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_exception_handler(RequestProblem, _problem)  # type: ignore[arg-type]
    app.add_exception_handler(PathOutsideRoots, _outside)  # type: ignore[arg-type]
    for router in (api_runs.api, api_runs.reports, api_train.api, api_datasets.api, api_datasets.reports):
        app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static/swagger", StaticFiles(directory=pages.SWAGGER), name="swagger")
    app.mount("/static/plotly", StaticFiles(directory=pages.PLOTLY), name="plotly")
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


async def _problem(request: Request, error: RequestProblem) -> JSONResponse:
    return JSONResponse({"detail": error.detail()}, status_code=422)


async def _outside(request: Request, error: PathOutsideRoots) -> JSONResponse:
    return JSONResponse({"detail": str(error), "field": error.field}, status_code=403)
