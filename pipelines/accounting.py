"""Per-stage counts, measured independently on each side of a stage.

``in`` is counted on the stage's input, ``out`` on its kept output and the rejections by reason on its
rejected output, so a stage that lost a document would show ``in != out + sum(rejected)`` rather than
having the equality hold by construction.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from curate.pipelines.metrics import CountAndReport, CountReasonsAndReport


def count_stage(
    stage: str, docs_in: beam.PCollection | None, kept: beam.PCollection, rejected: beam.PCollection
) -> list[beam.PCollection]:
    """PCollections of partial counts ``((stage, key), n)`` per bundle: key is ``in``, ``out`` or
    ``rejected:<reason>``; `total_counts` sums them.

    The same counting steps feed Beam Metrics and the local progress display (pipelines/metrics.py) as
    they count, so a runner's UI and the console see the counts while the job runs; stats.json takes the
    exact totals from these PCollections.
    """
    counts = []
    if docs_in is not None:
        counts.append(docs_in | f"Count{stage}In" >> beam.ParDo(CountAndReport(stage, "in")))
    counts.append(kept | f"Count{stage}Out" >> beam.ParDo(CountAndReport(stage, "out", chars=True)))
    counts.append(rejected | f"Count{stage}Reasons" >> beam.ParDo(CountReasonsAndReport(stage)))
    return counts


def total_counts(partials: list[beam.PCollection]) -> beam.PCollection:
    """Every stage's partial counts -> rows ``(stage, key, count)``, in one combine for the whole run:
    a combine per stage and side would add a shuffle (and fused stages for the runner to schedule) each.
    A side that saw nothing has no row; `assemble_stats` reads it as 0."""
    return (
        tuple(partials)
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "CountRows" >> beam.MapTuple(lambda key, n: (*key, n))
    )


def assemble_stats(rows: list[tuple[str, str, int]], stage_order: list[str]) -> dict[str, Any]:
    """Rows of ``(stage, key, count)`` -> ``{stage: {in, out, rejected: {reason: n}}}`` in pipeline order.

    The read stage has no separate input count: its ``in`` is every record it met (documents plus
    unreadable ones), which is by definition out + rejected.
    """
    stages: dict[str, dict[str, Any]] = {name: {"in": 0, "out": 0, "rejected": {}} for name in stage_order}
    for stage, key, count in rows:
        entry = stages.setdefault(stage, {"in": 0, "out": 0, "rejected": {}})
        if key.startswith("rejected:"):
            entry["rejected"][key.split(":", 1)[1]] = count
        else:
            entry[key] = count
    read = stages.get("read")
    if read is not None:
        read["in"] = read["out"] + sum(read["rejected"].values())
    for entry in stages.values():
        entry["rejected"] = dict(sorted(entry["rejected"].items()))
        entry["balanced"] = entry["in"] == entry["out"] + sum(entry["rejected"].values())
    return stages
