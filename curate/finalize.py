"""A finished part joins the output folder: stats.json, manifest.json, the index settings, report.html and,
last, lineage.json; then, with `output.dataset`, the folder is committed as a version.

Everything is written in the run's staging folder (``layout.root``) and records the folder it will be
published to (the recipe's ``output.path``): the staged path never appears in what a run writes.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError
from curate.core.files import is_local, write_atomic
from curate.incremental import FORMAT, merge_stats, write_lineage
from curate.pipelines import curation, token_shards
from curate.pipelines.accounting import assemble_stats
from curate.pipelines.dedup_index import INDEX_DIR, INDEX_META, merge_meta
from curate.pipelines.recipe import Config
from curate.report import write_report
from curate.shards import write_manifest
from curate.versions.lineage import commit_run

MANIFEST_KEYS = ("path", "n_docs", "n_tokens", "sha256", "bytes", "row_groups", "domains")


@dataclass
class RunSummary:
    output: str
    stats: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    commit: str | None = None

    @property
    def documents_read(self) -> int:
        return self.stats["stages"]["read"]["in"]

    @property
    def documents_kept(self) -> int:
        return self.stats["documents_kept"]

    @property
    def tokens(self) -> int:
        return sum(shard["n_tokens"] for shard in self.shards)


@dataclass
class Part:
    """One finished pipeline of a run, as the driver hands it over."""

    layout: curation.Layout  # where it was written (in the staging folder)
    order: list[str]  # its stages, in order
    seconds: float
    inputs: list[dict[str, Any]]  # the identities of the inputs it read
    plan_key: str
    complete: bool  # the plan's last part


def _part_stats(
    side_rows: dict[str, list[Any]], order: list[str], seconds: float, root: str
) -> tuple[dict, list]:
    stages = assemble_stats([tuple(row) for row in side_rows[curation.STATS]], order)
    last = stages[order[-1]]
    total_rejected = sum(sum(entry["rejected"].values()) for entry in stages.values())
    reports = side_rows[curation.REPORTS]
    stats = {
        "stages": stages,
        "documents_read": stages["read"]["in"],
        "documents_kept": last["out"],
        "documents_rejected": total_rejected,
        "balanced": all(entry["balanced"] for entry in stages.values())
        and stages["read"]["in"] == last["out"] + total_rejected,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds(), 2),
    }
    for report in reports:
        stats[report.get("kind", "report")] = {k: v for k, v in report.items() if k != "kind"}
    if not stats["balanced"]:
        raise CurateError(f"{root}: document accounting does not balance: {json.dumps(stages)}")
    return stats, reports


def finalize(config: Config, part: Part, lineage: dict[str, Any] | None) -> RunSummary:
    """Join a finished part to the folder (stats summed over parts, every part's shards in the manifest)
    and commit it when the recipe names a dataset and the folder is local."""
    layout = part.layout
    side_rows = curation.read_side_rows(layout)
    part_stats, reports = _part_stats(side_rows, part.order, part.seconds, layout.root)
    shards = sorted(side_rows[curation.SHARDS], key=lambda s: s["path"])
    entry = {
        "part": layout.part,
        "plan": part.plan_key,
        "inputs": part.inputs,
        "shards": [{k: s[k] for k in MANIFEST_KEYS if k in s} for s in shards],
        "stats": part_stats,
    }
    parts = [*(lineage or {}).get("parts", []), entry]
    stats = merge_stats([p["stats"] for p in parts])
    write_json(layout.path("stats.json"), stats)
    if config.stages.of(token_shards.STAGE).enabled:
        earlier = [shard for p in parts[:-1] for shard in p["shards"]]
        write_manifest(layout.root, [*earlier, *shards], config, stats)
    settings = curation.index_settings(config)
    if settings:
        meta_path = layout.path(INDEX_DIR, INDEX_META)
        existing = (
            json.loads(Path(meta_path).read_text(encoding="utf-8"))
            if is_local(meta_path) and os.path.isfile(meta_path)
            else None
        )
        write_json(meta_path, merge_meta(existing, settings, config.output.path))
    curation.delete_work(layout)
    if is_local(layout.root):
        plan = {"key": part.plan_key, "complete": part.complete}
        write_lineage(layout.root, {"format": FORMAT, "plan": plan, "parts": parts})
    _write_report(layout.root, config)
    all_shards = [shard for p in parts for shard in p["shards"]]
    summary = RunSummary(config.output.path, stats, reports, all_shards, part.seconds)
    if config.output.dataset and is_local(layout.root):
        # Only now, with every shard written and checksummed in the manifest, does the version exist.
        # (An object-store output is committed once published, from its final place: see `commit_published`.)
        summary.commit = commit_run(config, layout.root, part.inputs, stats)
    return summary


def format_summary(summary: RunSummary) -> str:
    """The end-of-run report: counts per stage and reason, tokens written, where the output is."""
    stats = summary.stats
    lines = [f"curate: done in {summary.seconds:.1f}s"]
    lines.append(f"  {'stage':<14}{'in':>10}{'out':>10}  rejected")
    for name, entry in stats["stages"].items():
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in entry["rejected"].items()) or "-"
        lines.append(f"  {name:<14}{entry['in']:>10,}{entry['out']:>10,}  {reasons}")
    unreadable = stats["stages"]["read"]["rejected"].get("unreadable", 0)
    if unreadable:
        lines.append(f"  WARNING: {unreadable:,} unreadable record(s); see rejected/ (column read_error)")
    lines.append(
        f"  kept {stats['documents_kept']:,} of {stats['documents_read']:,} documents"
        + (f"; {summary.tokens:,} tokens in {len(summary.shards)} shard(s)" if summary.shards else "")
    )
    for report in summary.reports:
        for line in report.get("console", []):
            lines.append(f"  {line}")
    lines.append(f"  output: {summary.output} (documents/ rejected/ shards/ stats.json manifest.json)")
    if summary.commit:
        lines.append(f"  committed: {summary.commit}")
    return "\n".join(lines)


def commit_published(config: Config, inputs: list[dict[str, Any]], stats: dict[str, Any]) -> str:
    """Commit an object-store output from where it was published (so lakeFS can import the objects in
    place: staged objects are moved, which would leave an import pointing at nothing)."""
    root = config.output.path
    try:
        return commit_run(config, root, inputs, stats)
    except CurateError as error:
        raise CurateError(
            f"{error} (the run's output is published at {root}; commit it later with `curate versions commit"
            f" {root} {config.output.dataset}`)"
        ) from None


def summary_of(config: Config, root: str, lineage: dict[str, Any] | None) -> RunSummary:
    """The summary of a folder whose plan had nothing left to run."""
    stats = json.loads(Path(os.path.join(root, "stats.json")).read_text(encoding="utf-8"))
    shards = [shard for part in (lineage or {}).get("parts", []) for shard in part["shards"]]
    return RunSummary(config.output.path, stats, [], shards, 0.0)


def cpu_seconds() -> float:
    """CPU time of the driver and its finished worker processes (user + system)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _write_report(root: str, config: Config) -> None:
    """report.html (before any commit, so a version carries its report); a report that cannot be built
    costs the run nothing but a warning, since every output it describes is already written."""
    try:
        write_report(root, config, output=config.output.path)
    except Exception as error:  # noqa: BLE001 (reported, and the run's outputs stand)
        print(f"curate: warning: report.html not written: {error}", file=sys.stderr)


def write_json(path: str, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))
