"""curate's per-stage counters as Flink's REST API shows them, for live progress on a session cluster.

Beam's Flink runner keeps a job's Beam metrics in the Flink accumulator ``__metricscontainers``, which
Flink aggregates from the TaskManagers while the job runs; its REST API
(``GET /jobs/<id>/accumulators``) serves it as the job's MonitoringInfos in JSON, which Beam's own
portable metrics reader turns back into counters. Flink names the job after Beam's job name.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

ACCUMULATOR = "__metricscontainers"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def rest_url(runner: Any) -> str | None:
    """``http://HOST:PORT`` of a Flink session cluster's REST API; None for the embedded mini-cluster."""
    flink_master = str(runner.options.get("flink_master", "[local]"))
    if flink_master.startswith("["):
        return None
    return flink_master if "://" in flink_master else f"http://{flink_master}"


def flink_job_id(rest: str, beam_job_id: str) -> str | None:
    """The Flink job running (or run) for a Beam job (Beam's job id is ``<job name>_<uuid>``)."""
    name = beam_job_id.split("_", 1)[0]
    jobs = [job for job in _get(f"{rest}/jobs/overview")["jobs"] if job["name"] == name]
    return max(jobs, key=lambda job: job["start-time"])["jid"] if jobs else None


def query(rest: str, flink_job: str) -> dict[str, list]:
    """The job's Beam metrics as ``metrics().query()`` returns them, read from Flink's REST API."""
    from apache_beam.portability.api import beam_job_api_pb2
    from apache_beam.runners.portability.portable_runner import PortableMetrics
    from google.protobuf import json_format

    accumulators = _get(f"{rest}/jobs/{flink_job}/accumulators")["user-task-accumulators"]
    values = [a["value"] for a in accumulators if a["name"] == ACCUMULATOR]
    response = beam_job_api_pb2.GetJobMetricsResponse()
    if values:
        json_format.ParseDict(json.loads(values[0]), response, ignore_unknown_fields=True)
    return PortableMetrics(response).query()


def source(rest: str) -> Callable[[Any], dict[str, list]]:
    """``source(result) -> metric results`` of a Beam job run on the Flink cluster at ``rest``."""

    def read(result: Any) -> dict[str, list]:
        flink_job = flink_job_id(rest, result._job_id)
        return query(rest, flink_job) if flink_job else {}

    return read
