"""The default recipe on real Apache Spark (3.5, Beam's Spark runner through its job server): local mode,
and a standalone cluster of one master and two worker processes, whose executors are JVMs of their own
(the SDK workers are the submitting process's LOOPBACK workers). Each run must equal the direct
runner's (conftest.py); a worker killed with -9 mid-run (with its executor) leaves the job to Spark's
task retries on the other worker, or fails the run in one line, and the previous output stays intact.
"""

from __future__ import annotations

import contextlib
import io
import threading

import pytest

from curate.config import parse_config
from curate.engines import spark_rest
from curate.engines.clusters import SparkStandalone, get_json, wait_until
from curate.run import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standalone(engines_fetched, tmp_path_factory):
    with SparkStandalone(tmp_path_factory.mktemp("spark-standalone"), workers=2) as cluster:
        yield cluster


def _standalone_runner(standalone) -> dict:
    return {"name": "spark", "options": {"spark_master_url": standalone.master}}


def test_local_mode_gives_the_direct_runners_tokens_and_counts(
    engines_fetched, tmp_path, engine_recipe, same_as_direct
):
    out = tmp_path / "out"
    runner = {"name": "spark", "options": {"spark_master_url": "local[2]"}}
    summary = run(parse_config(engine_recipe(out, runner)), progress=False)
    same_as_direct(out, summary.stats)


@pytest.fixture(scope="module")
def standalone_run(standalone, tmp_path_factory, engine_recipe, servers):
    """One run on the standalone cluster with console progress, its driver's UI on a known port (as a
    user sets it), and curate's counters per Spark stage as Spark's REST API served them meanwhile."""
    out = tmp_path_factory.mktemp("spark-standalone-run") / "out"
    ui_port = servers.free_port()
    runner = _standalone_runner(standalone)
    runner["options"]["jvm_options"] = f"-Dspark.ui.port={ui_port}"
    ui = f"http://127.0.0.1:{ui_port}"
    per_stage: dict[int, dict] = {}  # Spark stage id -> the curate counters its accumulator showed
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1):
            with contextlib.suppress(OSError, ValueError):  # not up yet, or busy
                app = spark_rest.application(ui)
                for stage, counters in spark_rest.recent_stages(ui, app).items() if app else ():
                    per_stage[stage] = {k: v for k, v in counters.items() if k[2] == "curate"}

    watcher = threading.Thread(target=watch)
    watcher.start()
    console = io.StringIO()
    try:
        summary = run(parse_config(engine_recipe(out, runner)), progress=True, stream=console)
    finally:
        done.set()
        watcher.join()
    return out, summary, console.getvalue(), ui, per_stage


def test_standalone_cluster_with_two_workers_gives_the_direct_runners_result(standalone_run, same_as_direct):
    same_as_direct(standalone_run[0], standalone_run[1].stats)


def test_sparks_rest_api_shows_the_counters_per_stage_and_curate_run_reads_its_progress_there(
    standalone_run, engine_progress
):
    _, summary, console, ui, per_stage = standalone_run
    with_counters = {stage: counters for stage, counters in per_stage.items() if counters}
    assert len(with_counters) >= 2, per_stage  # the Spark stages that ran curate's stages showed them
    names = {metric for counters in with_counters.values() for (_, _, _, metric) in counters}
    assert {"read.out", "extract.in", "tokenize.out"} <= names, names
    # Spark's accumulator counts every attempt of a task (a re-run or recomputed partition counts again):
    # at least the exact counts, which stats.json has
    engine_progress(console, summary.stats, spark_rest.where(ui), exact=False)


def test_both_workers_ran_an_executor_for_the_job(standalone, standalone_run):
    (app,) = get_json(f"{standalone.rest}/json/")["completedapps"][:1]
    assert app["state"] == "FINISHED"
    workers = {path.parts[-4] for path in standalone.workdir.glob(f"worker-*/{app['id']}/*/stderr")}
    assert len(workers) == 2, workers


def test_killed_worker_recovers_or_fails_cleanly_and_the_previous_output_stays(
    standalone, standalone_run, run_while_killing
):
    out = standalone_run[0]

    def kill_one_worker_mid_run() -> None:
        known = {app["id"] for app in get_json(f"{standalone.rest}/json/")["completedapps"]}
        wait_until(
            lambda: [a for a in standalone.applications() if a["id"] not in known], 300, "a running app"
        )
        standalone.kill(standalone.workers[0])  # the worker and the executor it started
        standalone.add_worker()

    run_while_killing(out, _standalone_runner(standalone), kill_one_worker_mid_run)
