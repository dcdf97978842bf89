"""The default recipe on real Apache Flink (1.19, Beam's Flink runner through its job server): the
embedded mini-cluster, and a session cluster of one JobManager and two TaskManager processes whose
SDK workers are processes the TaskManagers start (PROCESS environment, `curate-worker-boot`), not the
submitting process. Each run must equal the direct runner's (conftest.py); a TaskManager killed with
-9 mid-run is replaced and the job recovers through Flink's restart, or the run fails in one line,
and in both cases the previous output stays as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from pathlib import Path

import pytest

from curate.config import parse_config
from curate.engines import flink_rest
from curate.engines.clusters import FlinkSession, get_json, wait_until
from curate.pipelines.metrics import stage_counts
from curate.pipelines.progress import PROGRESS_ENV
from curate.run import run
from curate.service.progress import run_progress

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(engines_fetched, tmp_path_factory):
    with FlinkSession(tmp_path_factory.mktemp("flink-session"), taskmanagers=2) as cluster:
        yield cluster


def _session_runner(session, servers) -> dict:
    return {
        "name": "flink",
        "environment_type": "PROCESS",
        "shared_paths": True,  # the inputs are on this machine's disk, which the TaskManagers share
        "options": {
            "flink_master": session.master,
            "parallelism": 2,
            "environment_config": json.dumps({"command": str(servers.bin / "curate-worker-boot")}),
        },
    }


@pytest.fixture(scope="module")
def session_run(session, tmp_path_factory, servers, engine_recipe):
    """One run on the session cluster, and the SDK worker processes seen as TaskManagers' children."""
    out = tmp_path_factory.mktemp("flink-session-run") / "out"
    taskmanagers = {process.pid for process in session.taskmanagers}
    seen: set[int] = set()
    done = threading.Event()

    live: list[dict] = []  # curate's counters as Flink's REST API served them while the job ran

    def watch_workers() -> None:
        while not done.wait(0.5):
            running = [job for job in session.jobs() if job["state"] == "RUNNING"]
            if running:
                with contextlib.suppress(OSError, ValueError):
                    live.append(stage_counts(flink_rest.query(session.rest, running[0]["jid"])))
            seen.update(
                pid
                for pid, parent, command in _processes()
                if parent in taskmanagers and "sdk_worker_main" in command
            )

    watcher = threading.Thread(target=watch_workers)
    watcher.start()
    console = io.StringIO()
    progress_dir = tmp_path_factory.mktemp("flink-session-progress")  # as `curate serve` gives a job
    try:
        runner = _session_runner(session, servers)
        with _environment(PROGRESS_ENV, str(progress_dir)):
            summary = run(parse_config(engine_recipe(out, runner)), progress=True, stream=console)
    finally:
        done.set()
        watcher.join()
    return out, summary, seen, live, console.getvalue(), progress_dir


@contextlib.contextmanager
def _environment(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def test_session_cluster_with_two_taskmanagers_gives_the_direct_runners_result(session_run, same_as_direct):
    out, summary, *_ = session_run
    same_as_direct(out, summary.stats)


def test_sdk_workers_run_as_children_of_the_taskmanagers_not_the_driver(session_run):
    _, _, workers, *_ = session_run
    assert workers, "no SDK worker ran as a child of a TaskManager"


def test_flinks_rest_api_shows_the_per_stage_counters_live_and_at_the_end(session, session_run):
    _, summary, _, live, *_ = session_run
    assert any(counts for counts in live), "no counters seen while the job ran"
    (job,) = [job for job in session.jobs() if job["state"] == "FINISHED"][:1]
    final = stage_counts(flink_rest.query(session.rest, job["jid"]))
    assert {name: (e["in"], e["out"], e["rejected"]) for name, e in final.items()} == {
        name: (e["in"], e["out"], e["rejected"]) for name, e in summary.stats["stages"].items()
    }


def test_curate_run_reads_its_progress_from_flinks_rest_api(session, session_run, engine_progress):
    _, summary, _, _, console, _ = session_run
    engine_progress(console, summary.stats, f"Flink's REST API {session.rest}/jobs/<job>/accumulators")


def test_the_services_progress_folder_gets_the_engines_counters_when_workers_cannot_write_there(session_run):
    _, summary, _, _, _, progress_dir = session_run  # PROCESS workers: TaskManagers' children
    shown = run_progress(progress_dir, total_bytes=0, elapsed=1.0)  # what `curate serve` reads
    assert {row["stage"]: (row["in"], row["out"]) for row in shown["stages"]} == {
        name: (entry["in"], entry["out"]) for name, entry in summary.stats["stages"].items()
    }


def test_both_taskmanagers_ran_tasks_at_parallelism_two(session, session_run):
    (job,) = [job for job in session.jobs() if job["state"] == "FINISHED"][:1]
    detail = get_json(f"{session.rest}/jobs/{job['jid']}")
    assert max(vertex["parallelism"] for vertex in detail["vertices"]) == 2
    taskmanagers = {
        entry["taskmanager-id"]
        for vertex in detail["vertices"]
        for entry in get_json(f"{session.rest}/jobs/{job['jid']}/vertices/{vertex['id']}/taskmanagers")[
            "taskmanagers"
        ]
    }
    assert len(taskmanagers) == 2, taskmanagers


def test_killed_taskmanager_recovers_or_fails_cleanly_and_the_previous_output_stays(
    session, session_run, servers, run_while_killing
):
    out = session_run[0]  # the previous version of this output folder

    def kill_one_taskmanager_mid_run() -> None:
        known = {job["jid"] for job in session.jobs()}
        wait_until(
            lambda: [j for j in session.jobs() if j["jid"] not in known and j["tasks"]["running"] > 0],
            300,
            "a running job",
        )
        session.kill(session.taskmanagers[0])
        session.add_taskmanager()  # what a cluster manager does for a lost TaskManager

    run_while_killing(out, _session_runner(session, servers), kill_one_taskmanager_mid_run)


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            found.append((int(entry.name), parent, command))
    return found
