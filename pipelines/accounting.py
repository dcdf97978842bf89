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
    """PCollections of ``(stage, key, count)``: key is ``in``, ``out`` or ``rejected:<reason>``.

    The same counting steps feed Beam Metrics and the local progress display (pipelines/metrics.py) as
    they count, so a runner's UI and the console see the counts while the job runs; stats.json takes the
    exact totals from these PCollections.
    """
    counts = []
    if docs_in is not None:
        counts.append(
            docs_in
            | f"Count{stage}In" >> beam.ParDo(CountAndReport(stage, "in"))
            | f"Sum{stage}In" >> beam.CombineGlobally(sum)
            | f"Tag{stage}In" >> beam.Map(lambda n, s=stage: (s, "in", n))
        )
    counts.append(
        kept
        | f"Count{stage}Out" >> beam.ParDo(CountAndReport(stage, "out", chars=True))
        | f"Sum{stage}Out" >> beam.CombineGlobally(sum)
        | f"Tag{stage}Out" >> beam.Map(lambda n, s=stage: (s, "out", n))
    )
    counts.append(
        rejected
        | f"Count{stage}Reasons" >> beam.ParDo(CountReasonsAndReport(stage))
        | f"Sum{stage}Reasons" >> beam.CombinePerKey(sum)
        | f"Tag{stage}Reasons" >> beam.MapTuple(lambda reason, n, s=stage: (s, f"rejected:{reason}", n))
    )
    return counts


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
