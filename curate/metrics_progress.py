"""Console progress from the runner's own metrics, for runners whose workers cannot write the driver's
progress folder (portable job services, Flink, Spark, Dataflow).

While the job runs the driver asks the runner for curate's counters every few seconds and prints the
per-stage counts it has; when the job ends it prints them once more, final. A runner that reports
metrics only at the end (Beam's local job service) shows just that last line.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, TextIO


def query(result: Any) -> dict[str, list]:
    """The job's metric results now. A portable job's result caches its first answer, so the job
    service is asked directly each time."""
    from apache_beam.runners.portability import portable_runner

    if isinstance(result, portable_runner.PipelineResult):
        from apache_beam.portability.api import beam_job_api_pb2

        response = result._job_service.GetJobMetrics(
            beam_job_api_pb2.GetJobMetricsRequest(job_id=result._job_id)
        )
        return portable_runner.PortableMetrics(response).query()
    return result.metrics().query()


def format_counts(stages: dict[str, dict[str, Any]], order: list[str]) -> str:
    """``metrics: read 1,200 · langid 1,100 → 800 (-300) · ...`` in pipeline order."""
    parts = []
    for name in [s for s in order if s in stages] + sorted(set(stages) - set(order)):
        entry = stages[name]
        rejected = sum(entry["rejected"].values())
        if name == "read":
            parts.append(f"read {entry['out']:,}" + (f" (-{rejected:,} unreadable)" if rejected else ""))
        else:
            dropped = f" (-{rejected:,})" if rejected else ""
            parts.append(f"{name} {entry['in']:,} → {entry['out']:,}{dropped}")
    return "metrics: " + " · ".join(parts)


ENGINE_FILE = "engine-metrics.json"


def write_progress_file(directory: str, stages: dict[str, dict[str, Any]], order: list[str]) -> None:
    """The counts as one more worker's progress file (pipelines/progress.py's format) in ``directory``,
    so that whoever reads that folder (`curate serve`'s progress bars) sees a run whose workers cannot
    write there (they run on the engine's machines) from the engine's metrics instead."""
    last = next((name for name in reversed(order) if name in stages), None)
    counts = {
        "read": stages.get("read", {}).get("in", 0),
        "kept": stages[last]["out"] if last else 0,
        "bytes": 0,  # unknown from metrics: no time-left estimate
        "stages": {
            name: {"out": entry["out"], "rejected": sum(entry["rejected"].values())}
            for name, entry in stages.items()
        },
    }
    path = os.path.join(directory, ENGINE_FILE)
    try:
        with open(path + ".tmp", "w") as handle:
            json.dump(counts, handle)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # progress is best-effort; stats.json at the end is exact


class MetricsProgress:
    """Polls the job's metrics on a thread while the job runs and prints them when they change; on exit
    prints the final counts.

    ``source(result)`` reads them from the engine's own monitoring (Flink's or Spark's REST API), which
    ``where`` names in a first line; without one, from the runner (``query``). If the engine's endpoint
    has gone when the job ends, the final counts come from the runner, and the line says so. With
    ``progress_dir`` (a run whose workers write no progress files) the counts also go there."""

    def __init__(
        self,
        result: Any,
        order: list[str],
        stream: TextIO,
        interval: float = 5.0,
        source: Any = None,
        where: str | None = None,
        progress_dir: str | None = None,
    ):
        self._result, self._order, self._stream = result, order, stream
        self._progress_dir = progress_dir
        self._source = source or query
        self._where = where
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last = ""

    def counts(self, source: Any = None) -> dict[str, dict[str, Any]]:
        from curate.pipelines.metrics import stage_counts

        try:
            return stage_counts((source or self._source)(self._result))
        except Exception:  # a runner without a metrics API, an endpoint gone: progress is best-effort
            return {}

    def _print(self, stages: dict[str, dict[str, Any]], note: str = "") -> None:
        line = format_counts(stages, self._order)
        if stages and line != self._last:
            print(f"  {line}{note}", file=self._stream, flush=True)
            self._last = line
            if self._progress_dir:
                write_progress_file(self._progress_dir, stages, self._order)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._print(self.counts())

    def __enter__(self) -> MetricsProgress:
        if self._where:
            print(f"  live counters from {self._where}", file=self._stream, flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is not None:
            return
        final = self.counts()
        if not final and self._source is not query:
            self._print(self.counts(query), " (from Beam's job service: the engine's endpoint has gone)")
        else:
            self._print(final)
