"""/api/datasets: dataset versions (branches, commits with metadata, diffs) and each version's report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from curate.core.errors import CurateError
from curate.service import datasets
from curate.service.context import REF, DatasetName, require_token

api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["datasets"])
reports = APIRouter(dependencies=[Depends(require_token)], tags=["reports"])
Ref = Annotated[str, Query(pattern=REF, description="A branch, tag or commit id.")]


def _from_store(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except CurateError as error:  # unknown dataset or ref: the store's message says which
        raise HTTPException(404, str(error)) from None


def _with_report_url(name: str, commit: dict[str, Any]) -> dict[str, Any]:
    commit["report_url"] = f"/datasets/{name}/commits/{commit['id']}/report" if commit["has_report"] else None
    return commit


@api.get("/datasets", summary="Datasets with their branches and tags")
def list_datasets() -> dict[str, Any]:
    return {"datasets": datasets.list_datasets()}


@api.get("/datasets/{name}/log", summary="Commits of a branch, newest first, with their metadata")
def dataset_log(name: DatasetName, ref: Ref = "main") -> dict[str, Any]:
    commits = _from_store(datasets.log, name, ref)
    return {"dataset": name, "ref": ref, "commits": [_with_report_url(name, c) for c in commits]}


@api.get("/datasets/{name}/diff", summary="Files and counts that differ between two versions")
def dataset_diff(name: DatasetName, a: Ref, b: Ref) -> dict[str, Any]:
    result = _from_store(datasets.diff, name, a, b)
    for side in ("a", "b"):
        _with_report_url(name, result[side])
    return result


@reports.get(
    "/datasets/{name}/commits/{commit}/report", response_class=HTMLResponse, summary="A version's report"
)
def commit_report(
    name: DatasetName, commit: Annotated[str, PathParam(pattern=r"^[0-9a-f]{6,64}$")]
) -> FileResponse:
    path = _from_store(datasets.commit_report, name, commit)
    if path is None or not path.is_file():
        raise HTTPException(404, f"{name}@{commit} has no report.html")
    return FileResponse(path, media_type="text/html")
