"""What a version records about how it was made, and the run driver's commit hook.

Lineage: the full recipe (secrets in runner options dropped), curate's version and git commit, every
input file with its size and sha256 (local) or the object store's checksum/ETag, the runner, the run's
stats summary and its token totals. Both backends store it with the commit; `curate versions show`
prints it and `curate run --recipe-from NAME@REF` reruns its recipe.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError

LINEAGE_FORMAT = "curate.lineage/1"
_SECRET = re.compile(r"secret|password|passwd|token|credential|private_key|access_key", re.IGNORECASE)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def _redacted(recipe: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    options = dict((recipe.get("runner") or {}).get("options") or {})
    dropped = sorted(key for key in options if _SECRET.search(key))
    if dropped:
        recipe = {
            **recipe,
            "runner": {**recipe["runner"], "options": {k: v for k, v in options.items() if k not in dropped}},
        }
    return recipe, [f"runner.options.{key}" for key in dropped]


def collect(config: Any, inputs: list[dict[str, Any]], stats: dict[str, Any], output: str) -> dict[str, Any]:
    """The lineage of the run whose results are in ``output`` (where they are read now: the run's
    staging folder, before it is published); it records the recipe's ``output.path``. ``inputs`` are the
    run's input identities (curate.core.files.identify: each input is hashed once per run)."""
    import curate
    from curate.shards import _git_commit
    from curate.versions.base import MANIFEST, is_remote, read_source_json

    recipe, dropped = _redacted(config.model_dump(mode="json"))
    manifest_path = f"{output.rstrip('/')}/{MANIFEST}"
    if is_remote(output):
        from apache_beam.io.filesystems import FileSystems

        manifest = read_source_json(manifest_path) if FileSystems.exists(manifest_path) else {}
    else:
        manifest = json.loads(Path(manifest_path).read_text()) if Path(manifest_path).is_file() else {}
    return {
        "format": LINEAGE_FORMAT,
        "recipe": recipe,
        "redacted": dropped,
        "code": {"curate": curate.__version__, "git_commit": _git_commit()},
        "runner": {k: v for k, v in recipe.get("runner", {}).items() if k != "options"},
        "inputs": [{k: entry[k] for k in ("path", "size", "checksum")} for entry in inputs],
        "stats": {
            **{
                k: stats[k]
                for k in ("documents_read", "documents_kept", "documents_rejected", "balanced")
                if k in stats
            },
            "stages": {
                name: {"in": s["in"], "out": s["out"], "rejected": s.get("rejected", {})}
                for name, s in stats.get("stages", {}).items()
            },
            "total_tokens": manifest.get("total_tokens"),
            "shards": len(manifest.get("shards", [])),
        },
        "output": config.output.path,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_commit_target(config: Any) -> None:
    """Before a run starts: the repository of ``output.dataset`` exists and answers, the branch name is valid
    (lakeFS: the server is reachable and accepts the credentials)."""
    from curate.versions import open_repository
    from curate.versions.embedded import _check_name

    _check_name("branch", config.output.branch)
    repository = open_repository(config.output.dataset)
    if hasattr(repository, "repository"):
        repository.repository()
    root = config.output.path.rstrip("/")
    if hasattr(repository, "importable") and repository.importable(root):
        _refuse_overwriting_imported(repository, config.output.branch, root)


def _refuse_overwriting_imported(repository: Any, branch: str, root: str) -> None:
    """An imported version reads its bytes where the run wrote them: a new run into the same folder would
    replace them under it, so it must write somewhere else."""
    if branch not in repository.branches():
        return
    imported = repository.imported_from(branch, root)
    if imported:
        raise CurateError(
            f"{root}: {repository.name}@{branch} was imported from this folder ({len(imported)} file(s), e.g."
            f" {imported[0]}) and lakeFS reads them there; write this run to a new folder (one per run)"
        )


def commit_run(config: Any, output: str, inputs: list[dict[str, Any]], stats: dict[str, Any]) -> str:
    """The run driver's hook, called after the manifest is written: commit the results in ``output`` with
    their lineage to ``output.dataset`` (a dataset name or lakefs://REPO) on ``output.branch``; returns a
    summary."""
    from curate.versions import open_repository

    repository = open_repository(config.output.dataset)
    lineage = collect(config, inputs, stats, output)
    run_id = new_run_id()
    version = repository.commit_output(output, config.output.branch, f"curate run {run_id}", lineage, run_id)
    moved = getattr(repository, "last_transfer", {})
    how = ", ".join(f"{n} {kind}" for kind, n in moved.items() if n)
    return f"{repository.name}@{version.id} (branch {config.output.branch}{'; files ' + how if how else ''})"


def recipe_of(spec: str, repo: str | None = None) -> tuple[dict[str, Any], str]:
    """The recipe recorded in a version's lineage (for `curate run --recipe-from`)."""
    from curate.versions import locate

    store, ref = locate(spec, repo)
    version = store.resolve(ref)
    recipe = version.lineage.get("recipe")
    if not recipe:
        raise CurateError(
            f"{store.name}@{ref}: commit {version.id[:12]} records no recipe (not made by a run)"
        )
    return recipe, f"{store.name}@{version.id[:12]}"
