"""The direct runner's SDK workers are forked by a zygote (pipelines/worker_zygote.py): they run the
pipeline as Beam's own worker processes would, and none of them outlives its run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from curate.pipelines import worker_zygote
from curate.pipelines.runner import RunnerConfig, pipeline_options, runner_for

# A pipeline whose elements say which process handled them, run with the zygote's workers; run as a
# script so that the driver is a fresh single-threaded process, as `curate run` is.
PIPELINE = textwrap.dedent(
    """
    import json, os, sys
    import apache_beam as beam
    from curate.pipelines.runner import RunnerConfig, pipeline_options, runner_for
    from curate.pipelines.worker_zygote import worker_zygote

    class WhoRuns(beam.DoFn):
        def process(self, n):
            yield n * n, os.getpid(), os.getppid()

    out = sys.argv[1]
    fork = {"fork": True, "spawn": False, "auto": None}[sys.argv[2]]
    runner = RunnerConfig(workers=2)
    options = pipeline_options(runner, os.path.join(out, "tmp"))
    with worker_zygote(runner.workers, fork) as zygote:
        with beam.Pipeline(runner=runner_for(runner, options, zygote), options=options) as p:
            (p | beam.Create(range(200)) | beam.Reshuffle() | beam.ParDo(WhoRuns())
               | beam.Map(json.dumps) | beam.io.WriteToText(os.path.join(out, "rows")))
    print(json.dumps({"driver": os.getpid(), "zygote": zygote.pid, "forked": zygote.forked}))
    """
)


def run_pipeline(tmp_path: Path, mode: str) -> tuple[dict, list[list[int]]]:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), mode], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for path in tmp_path.glob("rows*") for line in path.read_text().splitlines()]
    return facts, rows


@pytest.mark.parametrize("mode", ["auto", "spawn"])
def test_workers_are_forked_by_the_zygote_and_run_every_element(tmp_path, mode):
    facts, rows = run_pipeline(tmp_path, mode)
    # `curate run`'s driver has no other thread when the run starts: the zygote is forked from it.
    assert facts["forked"] is (mode == "auto")
    assert sorted(row[0] for row in rows) == [n * n for n in range(200)]
    workers = {row[1] for row in rows}
    assert facts["driver"] not in workers and facts["zygote"] not in workers
    assert {row[2] for row in rows} == {facts["zygote"]}  # each worker is the zygote's child
    assert not Path(f"/proc/{facts['zygote']}").exists()  # ended with the run


def test_a_driver_with_other_threads_starts_a_fresh_interpreter_as_zygote():
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not worker_zygote.fork_is_safe()
        with worker_zygote.worker_zygote(2) as zygote:
            assert zygote is not None and not zygote.forked
            cmdline = Path(f"/proc/{zygote.pid}/cmdline")
            wait_for(cmdline.read_bytes, "the zygote's exec is complete")  # empty for a moment before
            assert b"curate.pipelines.worker_zygote" in cmdline.read_bytes().split(b"\0")
    finally:
        release.set()
        thread.join()


def test_one_worker_needs_no_zygote():
    with worker_zygote.worker_zygote(1) as zygote:
        assert zygote is None


def client(zygote: worker_zygote.WorkerZygote, env: dict[str, str]) -> subprocess.Popen[str]:
    """The command Beam's runner starts for a worker, as the runner starts it (shell, environment)."""
    command = zygote.environment.command_string
    return subprocess.Popen(command, shell=True, env=env, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_a_failing_worker_is_its_clients_exit_status(tmp_path):
    with worker_zygote.worker_zygote(2, fork=False) as zygote:
        assert zygote is not None
        # No control address: the SDK harness fails at once, in the forked worker.
        done = client(zygote, {"PIPELINE_OPTIONS": "{}", "PATH": os.environ["PATH"]})
        _, err = done.communicate(timeout=120)
        assert done.returncode == 1
        assert "CONTROL_API_SERVICE_DESCRIPTOR" in err  # its traceback reaches the client's stderr


def test_killing_a_client_kills_its_worker_and_closing_ends_the_zygote():
    with worker_zygote.worker_zygote(2, fork=False) as zygote:
        assert zygote is not None
        # A control address nobody answers: the worker keeps trying to connect until it is killed.
        env = {
            "PIPELINE_OPTIONS": "{}",
            "CONTROL_API_SERVICE_DESCRIPTOR": 'url: "localhost:1"',
            "PATH": os.environ["PATH"],
        }
        started = client(zygote, env)
        wait_for(lambda: children(zygote.pid), "the zygote forked the worker")
        (worker,) = children(zygote.pid)
        started.kill()
        started.wait(timeout=30)
        wait_for(lambda: worker not in children(zygote.pid), "the zygote killed and reaped the worker")
        pid = zygote.pid
    assert not Path(f"/proc/{pid}").exists()
    assert not Path(zygote.socket_path).parent.exists()


def test_the_zygote_and_its_workers_end_when_the_driver_is_killed(tmp_path):
    driver = textwrap.dedent(
        """
        import os, sys, time
        from curate.pipelines.worker_zygote import start
        zygote = start(fork=True)
        print(zygote.pid, flush=True)
        sys.stdin.read()  # until the test kills this process
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", driver], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    zygote = int(process.stdout.readline())
    assert Path(f"/proc/{zygote}").exists()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    wait_for(lambda: not Path(f"/proc/{zygote}").exists() or _is_zombie(zygote), "the zygote ended")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_runner_for_gives_the_fn_api_runner_the_zygotes_environment(tmp_path):
    runner = RunnerConfig(workers=2)
    options = pipeline_options(runner, str(tmp_path))
    with worker_zygote.worker_zygote(2, fork=False) as zygote:
        assert zygote is not None
        fn_api_runner = runner_for(runner, options, zygote)
        assert fn_api_runner._default_environment.command_string == zygote.environment.command_string
    without = runner_for(runner, options)  # Beam's own worker command, as its multi_processing mode
    assert without._default_environment.command_string.endswith(
        "-m apache_beam.runners.worker.sdk_worker_main"
    )


def test_without_a_zygote_the_workers_start_as_fresh_interpreters(tmp_path, monkeypatch):
    # A Unix socket's path has a limit (108 bytes on Linux): a temporary folder past it means no zygote.
    long_tmp = tmp_path / ("t" * 100)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(worker_zygote.tempfile, "tempdir", None)
    with worker_zygote.worker_zygote(2) as zygote:
        assert zygote is None
    assert list(long_tmp.iterdir()) == []  # nothing left behind
