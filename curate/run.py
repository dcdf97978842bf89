"""Run a recipe: check it, plan it, run its pipelines, publish the results.

The driver does no per-document work; it resolves and checks everything up front (so a typo fails in a
second, not after an hour on a cluster), runs one Beam pipeline per segment (curate/incremental.py
plans them), shows progress, and hands each finished part to curate/finalize.py. Results are written in
``OUT/.staging/`` and published (curate/publish.py) only when the whole run has succeeded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import apache_beam as beam

from curate import incremental
from curate.config import Config
from curate.console_progress import FileProgress, worker_logs_to
from curate.core.errors import Cancelled, CurateError, PipelineFailed
from curate.core.files import disk_full_line, is_local, write_atomic
from curate.engines.job_server import engine_runner
from curate.finalize import Part, RunSummary, commit_published, finalize, format_summary, summary_of
from curate.metrics_progress import MetricsProgress
from curate.object_store import configure as configure_object_stores
from curate.pipelines import curation
from curate.pipelines.dedup_index import Versions
from curate.pipelines.progress import PROGRESS_ENV
from curate.pipelines.progress_files import write_plan
from curate.pipelines.runner import pipeline_options, runner_for
from curate.pipelines.worker_zygote import WorkerZygote, worker_zygote
from curate.preflight import preflight
from curate.publish import discard, output_lock, publish, release_lock, staging_path
from curate.versions import parse_spec, resolve_data
from curate.versions.lineage import check_commit_target
from curate.worker_paths import absolute_local_paths, check_confined_paths, check_workers_can_reach

__all__ = ["RunSummary", "format_summary", "run"]

Say = Callable[[str], None]
CANCEL_GRACE_S = 1.0  # `curate serve` sends SIGKILL 3 s after its SIGTERM


def run(
    config: Config, progress: bool = True, stream: TextIO | None = None, append: str | None = None
) -> RunSummary:
    """Run the recipe to completion and return its summary; raises CurateError on a problem the user
    can fix (bad input path, stage not available, unwritable output).

    Inputs are processed in segments (docs/incremental.md), each a pipeline whose output joins the
    folder and is committed when done. ``append`` (``NAME@BRANCH``) starts from that version: its inputs
    are skipped, new documents are deduplicated against it, and the result is committed on it.
    """
    started = time.monotonic()
    configure_object_stores(config.storage)  # before the first s3:// or gs:// path is matched
    config = absolute_local_paths(config)
    check_confined_paths(config)  # a job of `curate serve`: its paths still lead inside the roots
    check_workers_can_reach(config)
    if append:
        dataset, branch = parse_spec(append)
        config = config.model_copy(
            update={"output": config.output.model_copy(update=dict(dataset=dataset, branch=branch))}
        )
    checked = preflight(config)  # nothing has been touched yet: a problem here costs nothing
    if config.output.dataset:
        check_commit_target(config)  # a missing repository or bad credentials fail now, not after the run
    root = config.output.path = config.output.path.rstrip("/") or config.output.path
    log_path = os.path.join(root if is_local(root) else tempfile.gettempdir(), "run.log")
    # The direct runner's worker processes are forked from a zygote made now, before this process
    # holds the lock or runs any thread (pipelines/worker_zygote.py).
    direct_workers = config.runner.workers if config.runner.name == "direct" else 1
    with worker_zygote(direct_workers) as zygote, _cancellable(root) as cancelled, output_lock(root):
        # Every part of the run is written in OUT/.staging and replaces the previous results only when
        # the whole run has succeeded; a killed segmented run resumes from what it staged.
        plan: incremental.Plan | None = None
        try:
            if is_local(root):
                os.makedirs(root, exist_ok=True)
            base = str(resolve_data(append)) if append else None
            plan = incremental.plan_run(config, checked.files, staging_path(root), append, base)
            with worker_logs_to(log_path) as console:
                summary = _run_segments(
                    config, plan, checked.stages, progress, stream or console, log_path, zygote
                )
        except BaseException:
            # Cancelled, or nothing a rerun could resume from: the folder is left as it was.
            if cancelled.is_set() or (plan is not None and len(plan.segments) <= 1 and not append):
                with contextlib.suppress(Exception):
                    discard(staging_path(root))
            raise
        assert plan is not None  # the plan was made, or the run raised above
        publish(plan.root, root)
        if config.output.dataset and not is_local(root):
            summary.commit = commit_published(config, plan.inputs, summary.stats)
        summary.seconds = time.monotonic() - started
        if progress:
            print(format_summary(summary), file=stream or sys.stderr, flush=True)  # the console
    if not is_local(root):
        with open(log_path, "rb") as handle:
            log = handle.read()
        if log:  # Beam's S3 uploader cannot create an empty object; an empty log says nothing anyway
            write_atomic(f"{root}/run.log", log)
    return summary


def _run_segments(
    config: Config,
    plan: incremental.Plan,
    stages: curation.BuiltStages,
    progress: bool,
    stream: TextIO,
    log_path: str,
    zygote: WorkerZygote | None,
) -> RunSummary:
    """Each segment not finished before, as one pipeline whose part joins the staged folder."""
    say: Say = (lambda line: print(line, file=stream, flush=True)) if progress else (lambda _: None)
    version = f"{config.output.dataset}@{config.output.branch}"
    skipped = f"; {plan.skipped} already in {version}, skipped" if plan.skipped else ""
    say(
        f"curate: {len(plan.inputs)} input file(s){skipped} -> {config.output.path} on the"
        f" {config.runner.name} runner (Beam's log: {log_path})"
    )
    if not plan.segments:
        say(f"curate: no new input files; {version} is as it was")
        return summary_of(config, plan.root, plan.lineage)
    summary = None
    for number, segment in enumerate(plan.segments, 1):
        name = f"segment {number}/{len(plan.segments)} ({len(segment)} file(s))"
        if plan.finished(segment):
            say(f"curate: {name}: finished before, skipped")
            continue
        if len(plan.segments) > 1:
            say(f"curate: {name}")
        parts = (plan.lineage or {}).get("parts", [])
        layout = curation.Layout(
            plan.root, incremental.part_name(len(parts)), incremental.next_shard(plan.lineage)
        )
        if parts:  # a later part: deduplicated against the folder so far, which is still in staging
            output = config.output
            label = f"{output.dataset}@{output.branch}" if output.dataset else output.path  # in dup_version
            part_config = incremental.part_config(config, plan.root, label)
            stages = curation.enabled_stages(part_config, Versions(resolve_data, {label: plan.root}))
        else:
            part_config = config
        started = time.monotonic()
        units = incremental.read_units(segment, incremental.file_record_ranges)
        order = _run_pipeline(part_config, stages, units, layout, progress, stream, log_path, zygote)
        part = Part(
            layout, order, time.monotonic() - started, segment, plan.key, number == len(plan.segments)
        )
        summary = finalize(config, part, plan.lineage)
        plan.lineage = incremental.read_lineage(plan.root)
    if summary is None:  # every segment had finished before: the plan is complete now
        assert plan.lineage is not None
        plan.lineage["plan"]["complete"] = True
        incremental.write_lineage(plan.root, plan.lineage)
        summary = summary_of(config, plan.root, plan.lineage)
    return summary


def _run_pipeline(
    config: Config,
    stages: curation.BuiltStages,
    units: list[Any],
    layout: curation.Layout,
    progress: bool,
    stream: TextIO,
    log_path: str,
    zygote: WorkerZygote | None,
) -> list[str]:
    """One pipeline over ``units``, with progress on the console; returns its stage order. A stage's
    bad config fails while the pipeline is built; what fails once it runs is a PipelineFailed."""
    # A caller that watches progress (curate serve) names the folder; otherwise a fresh temporary one.
    progress_dir = os.environ.get(PROGRESS_ENV) or tempfile.mkdtemp(prefix="curate-progress-")
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = progress_dir
    # Workers in this process or its children write progress files; any other runner reports metrics.
    from_files = progress and not config.runner.workers_are_elsewhere
    from_metrics = progress and config.runner.name != "direct"
    try:
        with (
            FileProgress(progress_dir, stream) if from_files else contextlib.nullcontext(),
            engine_runner(config.runner) as (runner, engine_metrics),  # flink/spark: Beam's job server
        ):
            options = pipeline_options(runner, layout.path(".work", "beam-temp"), config.storage)
            built = False
            try:
                pipeline = beam.Pipeline(runner=runner_for(runner, options, zygote), options=options)
                order = curation.build(pipeline, config, units, layout, stages)
                write_plan(progress_dir, order, len(units))
                built = True
                result = pipeline.run()
                metrics = MetricsProgress(
                    result,
                    order,
                    stream,
                    source=engine_metrics.query if engine_metrics else None,
                    where=engine_metrics.where if engine_metrics else None,
                    progress_dir=None if from_files else progress_dir,
                )
                with metrics if from_metrics else contextlib.nullcontext():
                    result.wait_until_finish()
            except Exception as error:
                with contextlib.suppress(OSError):  # the log's disk may be the one that is full
                    traceback.print_exc()  # fd 2 is the log file here
                if built or not isinstance(error, CurateError):
                    full = disk_full_line(str(error), [layout.root, tempfile.gettempdir()])
                    if full:  # a full disk names its folders and the space left there
                        raise PipelineFailed(f"{full} (traceback in {log_path})") from error
                    raise PipelineFailed.of(error, log_path) from error
                raise
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
    return order


@contextlib.contextmanager
def _cancellable(root: str) -> Iterator[threading.Event]:
    """SIGTERM (a cancel from `curate serve`, a kill of the process group) ends the run the way Ctrl-C
    does, so the lock is released and the staged results discarded; the event says it happened. Python
    runs a signal handler between bytecodes, where Beam may swallow the exception it raises (in a
    finalizer): if the run has not ended within CANCEL_GRACE_S, the cleanup is done here and the
    process exits (130, as after Ctrl-C)."""
    cancelled, ended = threading.Event(), threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancelled  # signal handlers can only be installed in the main thread
        return

    def end_now() -> None:
        if ended.wait(CANCEL_GRACE_S):
            return
        with contextlib.suppress(Exception):
            discard(staging_path(root))
        release_lock(root)
        os.write(2, b"curate: interrupted\n")
        os._exit(130)

    def stop(signum: int, _frame: Any) -> None:
        if not cancelled.is_set():
            cancelled.set()
            threading.Thread(target=end_now, daemon=True).start()
        raise Cancelled(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield cancelled
    finally:
        ended.set()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
