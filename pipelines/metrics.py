"""Per-stage counts as Beam Metrics, so a runner's own UI (Dataflow, Flink) and the console show them.

Counters (namespace ``curate``): ``<stage>.in``, ``<stage>.out`` and ``<stage>.rejected.<reason>``;
distributions: ``<stage>.out_chars`` (text length of what a stage keeps) and ``tokenize.doc_tokens``.
The names are the public contract for dashboards; `stage_counts` turns a runner's metric results back
into ``{stage: {in, out, rejected}}``, the shape stats.json has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from curate.pipelines.progress import flush as flush_progress
from curate.pipelines.progress import report_stage

NAMESPACE = "curate"


class CountAndReport(beam.DoFn):
    """Counts the elements it sees per bundle: emits ``((stage, side), n)`` for the bundle (for
    stats.json, summed exactly downstream) and adds n to the ``<stage>.<side>`` counter; with
    ``chars``, records each document's text length in a distribution. One counter update per bundle
    keeps the per-document cost to an integer increment. The ``out`` side also feeds the live progress
    display (pipelines/progress.py)."""

    def __init__(self, stage: str, side: str, chars: bool = False):
        self._stage, self._side, self._chars = stage, side, chars
        self._counter = Metrics.counter(NAMESPACE, f"{stage}.{side}")
        self._lengths = Metrics.distribution(NAMESPACE, f"{stage}.{side}_chars") if chars else None
        self._n = 0

    def start_bundle(self) -> None:
        self._n = 0

    def process(self, element: Any) -> Iterable[int]:
        self._n += 1
        if self._side == "out":
            report_stage(self._stage, "out")
        if self._lengths is not None:
            doc = element[0] if isinstance(element, tuple) else element  # (document, tokens) before mixing
            self._lengths.update(len(doc.get("text") or ""))
        return ()

    def finish_bundle(self) -> Iterable[WindowedValue]:
        flush_progress()
        if self._n:
            self._counter.inc(self._n)
            count = ((self._stage, self._side), self._n)
            yield WindowedValue(count, GlobalWindow().max_timestamp(), (GlobalWindow(),))


class CountReasonsAndReport(beam.DoFn):
    """Rejections per reason per bundle, as ``((stage, "rejected:<reason>"), n)`` pairs and the
    ``<stage>.rejected.<reason>`` counters (and to the live progress display)."""

    def __init__(self, stage: str):
        self._stage = stage
        self._by_reason: dict[str, int] = {}

    def start_bundle(self) -> None:
        self._by_reason = {}

    def process(self, doc: dict[str, Any]) -> Iterable[Any]:
        reason = doc["reason"]
        self._by_reason[reason] = self._by_reason.get(reason, 0) + 1
        report_stage(self._stage, "rejected")
        return ()

    def finish_bundle(self) -> Iterable[WindowedValue]:
        flush_progress()
        for reason, n in self._by_reason.items():
            Metrics.counter(NAMESPACE, f"{self._stage}.rejected.{reason}").inc(n)
            count = ((self._stage, f"rejected:{reason}"), n)
            yield WindowedValue(count, GlobalWindow().max_timestamp(), (GlobalWindow(),))


def stage_counts(metric_results: Any) -> dict[str, dict[str, Any]]:
    """A runner's ``metrics().query()`` result -> ``{stage: {in, out, rejected: {reason: n}}}``.

    Attempted values (what every attempt reported so far) are used: committed ones are not available
    on every runner while a job runs."""
    stages: dict[str, dict[str, Any]] = {}
    for result in metric_results.get("counters", []):
        if result.key.metric.namespace != NAMESPACE:
            continue
        stage, _, key = result.key.metric.name.partition(".")
        value = result.attempted if result.attempted is not None else result.committed
        entry = stages.setdefault(stage, {"in": 0, "out": 0, "rejected": {}})
        if key.startswith("rejected."):
            reason = key.removeprefix("rejected.")
            entry["rejected"][reason] = entry["rejected"].get(reason, 0) + (value or 0)
        elif key in ("in", "out"):
            entry[key] += value or 0
    read = stages.get("read")
    if read is not None:
        read["in"] = read["out"] + sum(read["rejected"].values())
    return stages


def distributions(metric_results: Any) -> dict[str, dict[str, float]]:
    """``{name: {count, sum, min, max, mean}}`` of curate's distributions."""
    out: dict[str, dict[str, float]] = {}
    for result in metric_results.get("distributions", []):
        if result.key.metric.namespace != NAMESPACE:
            continue
        value = result.attempted if result.attempted is not None else result.committed
        if value is None or not value.count:
            continue
        entry = out.setdefault(result.key.metric.name, {"count": 0, "sum": 0, "min": value.min, "max": 0})
        entry["count"] += value.count
        entry["sum"] += value.sum
        entry["min"] = min(entry["min"], value.min)
        entry["max"] = max(entry["max"], value.max)
        entry["mean"] = entry["sum"] / entry["count"]
    return out
