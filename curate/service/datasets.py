"""The service's view of dataset versions: the few store calls it makes, in one place.

Every call goes through these functions (the store's backends may change: embedded today, lakeFS next);
names and refs are validated by the app before they reach here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.versions import EmbeddedRepository, LocalStore
from curate.versions.compare import compare

REPORT_FILE = "report.html"


def _store() -> LocalStore:
    return LocalStore()


def _commit_record(commit: Any) -> dict[str, Any]:
    return {
        "id": commit.id,
        "parent": commit.parent,
        "message": commit.message,
        "created": commit.created,
        "stats": commit.stats,
        "files": len(commit.files),
        "has_report": REPORT_FILE in commit.files,
    }


def list_datasets() -> list[dict[str, Any]]:
    store = _store()
    return [
        {"name": name, "branches": store.branches(name), "tags": store.tags(name)}
        for name in store.datasets()
    ]


def log(name: str, ref: str, limit: int = 100) -> list[dict[str, Any]]:
    return [_commit_record(commit) for commit in _store().log(name, ref, limit)]


def diff(name: str, ref_a: str, ref_b: str) -> dict[str, Any]:
    """The comparison `curate versions diff --json` prints, each side with its commit's record."""
    store = _store()
    result = compare(EmbeddedRepository(name, store), ref_a, ref_b)
    for side, ref in (("a", ref_a), ("b", ref_b)):
        result[side] = {**result[side], **_commit_record(store.resolve(name, ref))}
    return result


def commit_report(name: str, commit_id: str) -> Path | None:
    """The stored report.html of a commit (a content-addressed object), if the commit has one."""
    store = _store()
    commit = store.resolve(name, commit_id)
    entry = commit.files.get(REPORT_FILE)
    if entry is None:
        return None
    return Path(store.object_path(entry["sha256"]))
