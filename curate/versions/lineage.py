"""What a version records about how it was made, and the run driver's commit hook.

Lineage: the full recipe (secrets in runner options dropped), curate's version and git commit, every
input file with its size and sha256 (local) or the object store's checksum/ETag, the runner, the run's
stats summary and its token totals. Both backends store it with the commit; `curate versions show`
prints it and `curate run --recipe-from NAME@REF` reruns its recipe.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError
from curate.versions.base import redact_recipe
from curate.versions.compare import commit_message

LINEAGE_FORMAT = "curate.lineage/1"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def describe_inputs(files: list[str]) -> list[dict[str, Any]]:
    """Each input with its size and checksum: sha256 for a local file, the store's checksum otherwise."""
    from curate.versions.base import hash_file

    described = []
    for name in files:
        if "://" not in name:
            sha, _, size = hash_file(Path(name))
            described.append({"path": str(Path(name).resolve()), "size": size, "sha256": sha})
            continue
        from apache_beam.io.filesystems import FileSystems

        entry: dict[str, Any] = {"path": name}
        try:
            entry["size"] = FileSystems.match([name])[0].metadata_list[0].size_in_bytes
            entry["checksum"] = FileSystems.checksum(name)
        except Exception as error:  # lineage must not fail a finished run; say what is missing
            entry["checksum_error"] = f"{type(error).__name__}: {error}"[:200]
        described.append(entry)
    return described


def collect(config: Any, files: list[str], stats: dict[str, Any], output: str) -> dict[str, Any]:
    import curate
    from curate.shards import git_commit
    from curate.versions.base import MANIFEST, is_remote, read_source_json

    recipe, dropped = redact_recipe(config.model_dump(mode="json"))
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
        "code": {"curate": curate.__version__, "git_commit": git_commit()},
        "runner": {k: v for k, v in recipe.get("runner", {}).items() if k != "options"},
        "inputs": describe_inputs(files),
        "stats": _stats_summary(stats, manifest),
        "output": output,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _stats_summary(stats: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    return {
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
    }


def of_output_folder(folder: str) -> dict[str, Any]:
    """The lineage of an output folder committed by hand (`curate versions commit DIR`), from what the
    run left there: the recipe and code in manifest.json, the counts in stats.json, and the inputs
    (already hashed by the run, not read again) in lineage.json."""
    import curate
    from curate.shards import git_commit
    from curate.versions.base import list_output, read_source_json

    found = {item.relative: item.location for item in list_output(folder)}
    manifest = read_source_json(found["manifest.json"]) if "manifest.json" in found else {}
    stats = read_source_json(found["stats.json"]) if "stats.json" in found else {}
    run_record = read_source_json(found["lineage.json"]) if "lineage.json" in found else {}
    recipe, dropped = redact_recipe(manifest.get("config") or {})
    inputs: dict[str, dict[str, Any]] = {}
    for part in run_record.get("parts", []) if isinstance(run_record, dict) else []:
        for entry in part.get("inputs", []):
            checksum = str(entry.get("checksum", ""))
            described = {"path": entry["path"], "size": entry.get("size")}
            if checksum.startswith("sha256:"):
                described["sha256"] = checksum.removeprefix("sha256:")
            else:
                described["checksum"] = checksum.removeprefix("fs:")
            inputs.setdefault(entry["path"], described)  # a file read in byte ranges is one input
    return {
        "format": LINEAGE_FORMAT,
        "recipe": recipe or None,
        "redacted": dropped,
        "code": manifest.get("code") or {"curate": curate.__version__, "git_commit": git_commit()},
        "runner": {k: v for k, v in (recipe.get("runner") or {}).items() if k != "options"},
        "inputs": list(inputs.values()),
        "stats": _stats_summary(stats, manifest),
        "output": folder,
        "committed_by": "curate versions commit",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_commit_target(config: Any) -> None:
    """Before a run starts: the repository of ``output.dataset`` exists and answers, and the run may
    commit to ``output.branch`` there (see VersionStore.check_commit_target)."""
    from curate.versions import open_repository

    repository = open_repository(config.output.dataset)
    repository.check_commit_target(config.output.branch, config.output.path.rstrip("/"))


def commit_run(config: Any, output: str, files: list[str], stats: dict[str, Any]) -> str:
    """The run driver's hook, called after the manifest is written: commit the output with its lineage
    to ``output.dataset`` (a dataset name or lakefs://REPO) on ``output.branch``; returns a summary."""
    from curate.versions import open_repository

    repository = open_repository(config.output.dataset)
    lineage = collect(config, files, stats, output)
    run_id = new_run_id()
    message = commit_message(repository, config.output.branch, lineage["recipe"], run_id)
    version = repository.commit_output(output, config.output.branch, message, lineage, run_id)
    moved = repository.last_transfer
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
