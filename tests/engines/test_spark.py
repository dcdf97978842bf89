"""The default recipe on real Apache Spark (3.5, Beam's Spark runner through its job server): local mode,
and a standalone cluster of one master and two worker processes, whose executors are JVMs of their own
(the SDK workers are the submitting process's LOOPBACK workers). Each run must equal the direct
runner's (conftest.py); a worker killed with -9 mid-run (with its executor) leaves the job to Spark's
task retries on the other worker, or fails the run in one line, and the previous output stays intact.
"""

from __future__ import annotations

import pytest

from curate.config import parse_config
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
def standalone_run(standalone, tmp_path_factory, engine_recipe):
    out = tmp_path_factory.mktemp("spark-standalone-run") / "out"
    return out, run(parse_config(engine_recipe(out, _standalone_runner(standalone))), progress=False)


def test_standalone_cluster_with_two_workers_gives_the_direct_runners_result(standalone_run, same_as_direct):
    same_as_direct(standalone_run[0], standalone_run[1].stats)


def test_both_workers_ran_an_executor_for_the_job(standalone, standalone_run):
    (app,) = get_json(f"{standalone.rest}/json/")["completedapps"][:1]
    assert app["state"] == "FINISHED"
    workers = {path.parts[-4] for path in standalone.workdir.glob(f"worker-*/{app['id']}/*/stderr")}
    assert len(workers) == 2, workers


def test_killed_worker_recovers_or_fails_cleanly_and_the_previous_output_stays(
    standalone, standalone_run, run_while_killing
):
    out, _ = standalone_run

    def kill_one_worker_mid_run() -> None:
        known = {app["id"] for app in get_json(f"{standalone.rest}/json/")["completedapps"]}
        wait_until(
            lambda: [a for a in standalone.applications() if a["id"] not in known], 300, "a running app"
        )
        standalone.kill(standalone.workers[0])  # the worker and the executor it started
        standalone.add_worker()

    run_while_killing(out, _standalone_runner(standalone), kill_one_worker_mid_run)
