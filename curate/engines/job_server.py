"""Beam's job server for Flink or Spark, started from the fetched jars for the length of one run.

`curate run` with ``runner.name: flink`` or ``spark`` starts it, submits to it with Beam's portable
runner and stops it when the run ends. The job server is the engine's client: with ``[local]`` /
``local[N]`` it runs the job in its own JVM (Flink's mini-cluster, Spark's local mode); with a master
address it submits to that cluster. SDK workers (the Python side of every stage) run where
``runner.environment_type`` says: LOOPBACK (in the submitting process; the default), EXTERNAL (a worker
pool, `curate-worker-boot`) or PROCESS (a worker process started by each TaskManager / executor).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from curate.core.errors import CurateError
from curate.engines import flink_rest, spark_rest
from curate.engines.distributions import DISTRIBUTIONS, Distribution
from curate.engines.loopback_pool import guard_loopback_pool
from curate.pipelines.runner import RunnerConfig

# Java 17 closes the JDK's internals that Spark, Flink's Kryo and Beam's coders reach into.
JAVA17_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang",
        "java.lang.invoke",
        "java.lang.reflect",
        "java.io",
        "java.net",
        "java.nio",
        "java.text",
        "java.time",
        "java.util",
        "java.util.concurrent",
        "java.util.concurrent.atomic",
        "sun.nio.ch",
        "sun.nio.cs",
        "sun.security.action",
        "sun.util.calendar",
    )
] + ["--add-exports=java.base/sun.nio.ch=ALL-UNNAMED"]
JOB_SERVER_HEAP = os.environ.get("CURATE_JOB_SERVER_HEAP", "768m")  # the job server (and [local] engine)
START_SECONDS = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def master_of(runner: RunnerConfig) -> str:
    """The engine's master the recipe names (runner.options), or the engine's embedded mode."""
    distribution = DISTRIBUTIONS[runner.name]
    return str(runner.options.get(distribution.master_option, distribution.default_master))


def _on_this_machine(master: str) -> bool:
    return master.startswith("local") or any(host in master for host in ("//127.0.0.1:", "//localhost:"))


def job_server_command(
    distribution: Distribution, master: str, port: int, jvm_options: list[str]
) -> list[str]:
    return [
        "java",
        f"-Xmx{JOB_SERVER_HEAP}",
        *JAVA17_OPENS,
        *jvm_options,
        "-cp",
        distribution.classpath(),
        distribution.job_server_class,
        distribution.master_flag,
        master,
        "--job-host",
        "localhost",
        "--job-port",
        str(port),
        "--artifact-port",
        "0",
        "--expansion-port",
        "0",
    ]


def portable_equivalent(runner: RunnerConfig, endpoint: str) -> RunnerConfig:
    """The recipe's engine runner as Beam's portable runner on the started job server: the options
    that the job server took (the master) are dropped; the rest (parallelism, environment_config, ...)
    travel with the job."""
    distribution = DISTRIBUTIONS[runner.name]
    options = {
        k: v for k, v in runner.options.items() if k not in (distribution.master_option, "jvm_options")
    }
    return runner.model_copy(update={"name": "portable", "job_endpoint": endpoint, "options": options})


def _wait_listening(process: subprocess.Popen, port: int, what: str, log: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CurateError(f"{what} exited with status {process.returncode} before listening (log: {log})")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.2)
    raise CurateError(f"{what} did not listen on port {port} within {START_SECONDS:.0f} s (log: {log})")


class EngineMetrics(NamedTuple):
    """Where the engine's own monitoring serves a job's Beam metrics, and how to read them there."""

    where: str  # for people: the endpoint (also shown in the engine's web UI)
    query: Callable[[Any], dict[str, list]]  # query(pipeline result) -> metric results


def _spark_ui_port(jvm_options: list[str]) -> tuple[list[str], int]:
    """The Spark driver's UI port (the job server is the driver): the one ``jvm_options`` names, else a
    free one added to them, so that its REST API can be found."""
    for option in jvm_options:
        if option.startswith("-Dspark.ui.port="):
            return jvm_options, int(option.split("=", 1)[1])
    port = _free_port()
    return [*jvm_options, f"-Dspark.ui.port={port}"], port


@contextlib.contextmanager
def engine_runner(
    runner: RunnerConfig, log: Any = None
) -> Iterator[tuple[RunnerConfig, EngineMetrics | None]]:
    """For ``flink``/``spark`` with no job endpoint of their own: start the engine's job server and yield
    the portable runner that submits to it, with where the engine's own monitoring serves the job's
    metrics (Flink's REST API on a session cluster, the Spark driver's REST API; None where there is
    none); any other runner passes through unchanged. The job server's output goes to ``log`` (a file
    object; default: this process's stderr, i.e. the run's log)."""
    if runner.name in (*DISTRIBUTIONS, "portable") and runner.environment_type.upper() == "LOOPBACK":
        guard_loopback_pool()  # several TaskManagers / executors share this process's worker pool
    if runner.name not in DISTRIBUTIONS or runner.job_endpoint:
        if runner.name in DISTRIBUTIONS:  # a job server the user runs (deploy/): submit to it as it is
            yield runner.model_copy(update={"name": "portable"}), None
        else:
            yield runner, None
        return
    distribution = DISTRIBUTIONS[runner.name]
    port = _free_port()
    jvm_options = str(runner.options.get("jvm_options", "")).split()
    metrics = None
    rest = flink_rest.rest_url(runner) if runner.name == "flink" else None
    if rest:  # a session cluster (the mini-cluster has no REST API)
        metrics = EngineMetrics(f"Flink's REST API {rest}/jobs/<job>/accumulators", flink_rest.source(rest))
    if runner.name == "spark":
        jvm_options, ui_port = _spark_ui_port(jvm_options)
        # The driver (this job server, for this one run) keeps its SparkContext, and so its UI with the
        # final counters, until it exits, instead of stopping it when the job ends.
        jvm_options.append("-Dbeam.spark.test.reuseSparkContext=true")
        ui = f"http://127.0.0.1:{ui_port}"
        metrics = EngineMetrics(spark_rest.where(ui), spark_rest.source(ui))
    command = job_server_command(distribution, master_of(runner), port, jvm_options)
    what = f"Beam's {runner.name} job server ({master_of(runner)})"
    env = dict(os.environ)
    if runner.name == "spark" and _on_this_machine(master_of(runner)):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # the driver and executors talk over loopback only
    process = subprocess.Popen(
        command, stdout=log or None, stderr=subprocess.STDOUT if log else None, env=env
    )
    try:
        _wait_listening(process, port, what, getattr(log, "name", "the run's log"))
        yield portable_equivalent(runner, f"localhost:{port}"), metrics
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
