"""curate's per-stage counters as Spark's own monitoring shows them, for live progress on Spark.

Beam's Spark runner adds every bundle's Beam metrics to a named Spark accumulator, ``Beam.Metrics``,
which the driver merges as tasks finish. Spark shows named accumulators in its web UI (each stage's
"Accumulators" table) and its REST API (``GET /api/v1/applications/<app>/stages/<stage>``: its
``accumulatorUpdates``), with the value as Beam renders it (``MetricQueryResults(Counters(...))``, a
user counter as ``STEP:beam:metric:user:sum_int64:v1 {NAME=..., NAMESPACE=..., PTRANSFORM=...}: N``):
the job's totals so far when that stage last finished a task. (Beam's portable
Spark runner does not register its metrics with Spark's metrics system, so the driver's
``/metrics/json`` servlet does not carry them.) The driver is Beam's job server, whose UI port `curate
run` chooses (``-Dspark.ui.port``).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName

ACCUMULATOR = "Beam.Metrics"
# A user counter in Beam's rendering of a portable job's metrics (MonitoringInfos):
# "STEP:beam:metric:user:sum_int64:v1 {NAME=extract.in, NAMESPACE=curate, PTRANSFORM=...}: 32"
_USER_COUNTER = re.compile(
    r"(?P<step>[^\s,:]+):beam:metric:user:sum_int64:v1 \{(?P<labels>[^}]*)\}: (?P<value>-?\d+)"
)
CounterKey = tuple[str, str, str, str]  # (step, transform, namespace, name)
RECENT_STAGES = 3


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def parse_counters(rendered: str) -> dict[CounterKey, int]:
    """``{(step, transform, namespace, name): value}`` of the user counters in Beam's rendering."""
    found = {}
    for match in _USER_COUNTER.finditer(rendered):
        labels = dict(label.split("=", 1) for label in match["labels"].split(", ") if "=" in label)
        key = (match["step"], labels.get("PTRANSFORM", ""), labels["NAMESPACE"], labels["NAME"])
        found[key] = int(match["value"])
    return found


def application(ui: str) -> str | None:
    """The id of the driver's (newest) application."""
    apps = _get(f"{ui}/api/v1/applications")
    return max(apps, key=lambda app: app["attempts"][0]["startTime"])["id"] if apps else None


def stage_metrics(ui: str, app: str, stage: int) -> dict[CounterKey, int] | None:
    """The Beam user counters Spark stage ``stage``'s ``Beam.Metrics`` accumulator showed (its latest
    attempt), None while it has shown none."""
    try:
        attempts = _get(f"{ui}/api/v1/applications/{app}/stages/{stage}")
    except urllib.error.HTTPError:  # a stage of a job that never ran (skipped)
        return None
    for attempt in sorted(attempts, key=lambda a: a["attemptId"], reverse=True):
        for update in attempt.get("accumulatorUpdates", []):
            if update["name"] == ACCUMULATOR:
                return parse_counters(update["value"])
    return None


def recent_stages(ui: str, app: str, count: int = RECENT_STAGES) -> dict[int, dict[CounterKey, int]]:
    """The counters of the ``count`` latest Spark stages that have shown some. (The list of all stages
    carries every stage's whole rendering, megabytes for a recipe's hundreds of stages.)"""
    jobs = _get(f"{ui}/api/v1/applications/{app}/jobs")
    found: dict[int, dict[CounterKey, int]] = {}
    for stage in sorted({s for job in jobs for s in job["stageIds"]}, reverse=True):
        counters = stage_metrics(ui, app, stage)
        if counters is not None:
            found[stage] = counters
            if len(found) == count:
                break
    return found


def query(ui: str) -> dict[str, list]:
    """The job's counters so far, as ``metrics().query()`` returns them. The accumulator is the job's
    running total, so the stages that finished tasks last show the most of it: each counter's largest
    value over the latest stages is its total so far."""
    app = application(ui)
    totals: dict[CounterKey, int] = {}
    for counters in recent_stages(ui, app).values() if app else ():
        for key, value in counters.items():
            totals[key] = max(totals.get(key, 0), value)
    results = [
        MetricResult(MetricKey(transform or step, MetricName(namespace, name)), value, value)
        for (step, transform, namespace, name), value in totals.items()
    ]
    return {"counters": results, "distributions": [], "gauges": []}


def where(ui: str) -> str:
    """Where, for people, the counters of the driver whose UI is at ``ui`` are."""
    return f"Spark's REST API {ui}/api/v1/applications/<app>/stages/<stage> (accumulator {ACCUMULATOR})"


def source(ui: str) -> Callable[[Any], dict[str, list]]:
    """``source(result) -> metric results`` read from the Spark driver's REST API at ``ui``."""

    def read(result: Any) -> dict[str, list]:
        return query(ui)

    return read
