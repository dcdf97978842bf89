"""LOOPBACK SDK workers shared by several engine workers: keep one's stop from ending another's harness.

With ``environment_type: LOOPBACK`` the Python side of every stage runs in the submitting process, in
a worker pool (Beam's ``BeamFnExternalWorkerPoolServicer``, thread mode) that every Flink TaskManager or
Spark executor asks for SDK harnesses. Each of those asks with worker ids it numbers itself from 1
(Beam's ``DefaultJobBundleFactory``), so two TaskManagers both start a worker "4". Since Beam 2.7x
(apache/beam#38432) the pool's ``StopWorker`` ends the harness it last registered under that id: when one
TaskManager releases its environment "4", the pool stops the other TaskManager's live harness "4", whose
runner then fails the task with ``IllegalStateException: SDK harness closed connection`` (the 4x Flink
bench, docs/engines.md). A thread worker ends anyway when its runner closes the control stream (as it
does on release, and as Beam relied on before that change), so the guard only drops the pool's
reference to the harness and leaves it running; process workers are stopped as Beam stops them.
"""

from __future__ import annotations

from typing import Any

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer

BEAMS_STOP_WORKER = BeamFnExternalWorkerPoolServicer.StopWorker


def _stop_worker(
    self: BeamFnExternalWorkerPoolServicer,
    stop_worker_request: beam_fn_api_pb2.StopWorkerRequest,
    unused_context: Any,
) -> beam_fn_api_pb2.StopWorkerResponse:
    getattr(self, "_worker_threads", {}).pop(stop_worker_request.worker_id, None)  # the reference only
    return BEAMS_STOP_WORKER(self, stop_worker_request, unused_context)


def guard_loopback_pool() -> None:
    """Make the LOOPBACK worker pool's StopWorker leave thread harnesses to their runners (idempotent)."""
    BeamFnExternalWorkerPoolServicer.StopWorker = _stop_worker  # type: ignore[method-assign]
