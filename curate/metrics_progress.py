"""Console progress from the runner's own metrics, for runners whose workers cannot write the driver's
progress folder (portable job services, Flink, Spark, Dataflow).

While the job runs the driver asks the runner for curate's counters every few seconds and prints the
per-stage counts it has; when the job ends it prints them once more, final. A runner that reports
metrics only at the end (Beam's local job service) shows just that last line.
"""

from __future__ import annotations

import threading
import time
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


class MetricsProgress:
    """Polls ``query(result)`` on a thread while the job runs; `final` prints the last counts."""

    def __init__(
        self, result: Any, order: list[str], stream: TextIO, interval: float = 5.0, source: Any = None
    ):
        # ``source(result)``: another place to read the job's metrics from (an engine's REST API)
        self._result, self._order, self._stream = result, order, stream
        self._source = source or query
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last = ""

    def counts(self) -> dict[str, dict[str, Any]]:
        from curate.pipelines.metrics import stage_counts

        try:
            return stage_counts(self._source(self._result))
        except Exception:  # a runner without a metrics API: progress is best-effort
            return {}

    def _print(self, stages: dict[str, dict[str, Any]]) -> None:
        line = format_counts(stages, self._order)
        if stages and line != self._last:
            print(f"  {line}", file=self._stream, flush=True)
            self._last = line

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._print(self.counts())

    def __enter__(self) -> MetricsProgress:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc[0] is None:
            self._print(self.counts())
