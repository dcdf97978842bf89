"""The web pages: static HTML and a little JavaScript (no build step) that call the API; plotly.js and
Swagger UI come from their installed Python packages, never a CDN."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
import plotly
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from curate.service.context import JobId

PAGES = Path(__file__).parent / "pages"
STATIC = PAGES / "static"
SWAGGER = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5: OpenAPI 3.1 as FastAPI writes
PLOTLY = Path(plotly.__file__).parent / "package_data"  # plotly.min.js

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(PAGES / f"{name}.html", media_type="text/html")


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/runs")


@router.get("/runs")
def runs_page() -> FileResponse:
    return _page("runs")


@router.get("/runs/{job_id}")
def run_page(job_id: JobId) -> FileResponse:
    return _page("run")


@router.get("/datasets")
def datasets_page() -> FileResponse:
    return _page("datasets")


@router.get("/train")
def train_page() -> FileResponse:
    return _page("train")


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="curate API",
        swagger_js_url="/static/swagger/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger/swagger-ui.css",
        swagger_favicon_url="/favicon.ico",
    )


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
