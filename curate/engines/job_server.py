"""Beam's job server for Flink or Spark, started from the fetched jars for the length of one run.

`curate run` with ``runner.name: flink`` or ``spark`` starts it, submits to it with Beam's portable
runner and stops it when the run ends. The job server is the engine's client: with ``[local]`` /
``local[N]`` it runs the job in its own JVM (Flink's mini-cluster, Spark's local mode); with a master
address it submits to that cluster. SDK workers (the Python side of every stage) run where
``runner.environment_type`` says: LOOPBACK (in the submitting process; the default), EXTERNAL (a worker
pool, `curate-worker-boot`) or PROCESS (a worker process started by each TaskManager / executor).

Flink's job server takes a flink-conf.yaml folder (``--flink-conf-dir``) whose settings Beam applies to
every job it submits, and with ``[local]`` to the mini-cluster it starts for the job
(``FlinkExecutionEnvironments.createBatchExecutionEnvironment`` loads the folder with Flink's
``GlobalConfiguration`` and hands it to ``ExecutionEnvironment.createLocalEnvironment``). curate writes
one for each run: the recipe's ``flink.<key>`` runner options, and for ``[local]`` a managed memory size
the mini-cluster's batch sorts need for multi-MB records (:func:`flink_conf`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from curate.core.errors import CurateError
from curate.engines import flink_rest, spark_rest
from curate.engines.distributions import DISTRIBUTIONS, Distribution
from curate.engines.loopback_pool import guard_loopback_pool
from curate.pipelines.runner import FLINK_CONF_PREFIX, RunnerConfig

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
# Managed memory of Flink's mini-cluster ([local]) per task slot (it has one slot per unit of parallelism):
# Beam's GroupByKeys are Flink sorts that split a slot's managed memory between them, and a record larger
# than one sort buffer fails the job ("The record exceeds the maximum size of a sort buffer"). Beam's own
# default for [local] is 0.4 x the job server's free heap (at most 307m for 768m, for all slots); 64m per slot
# held records of 416 KB, 1g per slot the bench crawl's 4.1 MB page (docs/engines.md). Managed memory is
# off-heap (Flink allocates it with Unsafe as the sorts start), so the job server's -Xmx does not bound it.
MINI_CLUSTER_MANAGED_PER_SLOT_MB = 1024


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


def _mini_cluster_slots(runner: RunnerConfig) -> int:
    """The mini-cluster's task slots: the job's parallelism (Beam's default for [local]: the cores)."""
    parallelism = runner.options.get("parallelism")
    if isinstance(parallelism, int | str) and str(parallelism).isdigit() and int(parallelism) > 0:
        return int(parallelism)
    return os.cpu_count() or 1


def _physical_memory_mb() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


def flink_conf(runner: RunnerConfig) -> dict[str, str]:
    """The flink-conf.yaml entries of a Flink run's job server: for the mini-cluster ([local]) a managed
    memory of MINI_CLUSTER_MANAGED_PER_SLOT_MB per slot, then the recipe's ``flink.<key>: value`` runner
    options (validated in RunnerConfig), which override it."""
    conf: dict[str, str] = {}
    if master_of(runner) == "[local]":
        managed = MINI_CLUSTER_MANAGED_PER_SLOT_MB * _mini_cluster_slots(runner)
        # no more than half the machine's memory (a many-core laptop with no parallelism set), and never
        # under one slot's worth; `flink.taskmanager.memory.managed.size` sets it outright
        managed = min(managed, max(MINI_CLUSTER_MANAGED_PER_SLOT_MB, _physical_memory_mb() // 2))
        conf["taskmanager.memory.managed.size"] = f"{managed}m"
    for name, value in runner.options.items():
        if name.startswith(FLINK_CONF_PREFIX):
            conf[name.removeprefix(FLINK_CONF_PREFIX)] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return conf


def write_flink_conf(conf: dict[str, str], folder: Path) -> Path:
    """Write ``conf`` as ``folder``/flink-conf.yaml (Flink's line-based ``key: value`` form)."""
    (folder / "flink-conf.yaml").write_text("".join(f"{k}: {v}\n" for k, v in conf.items()), encoding="utf-8")
    return folder


def job_server_command(
    distribution: Distribution,
    master: str,
    port: int,
    jvm_options: list[str],
    flink_conf_dir: Path | None = None,
) -> list[str]:
    conf = ["--flink-conf-dir", str(flink_conf_dir)] if flink_conf_dir else []
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
        *conf,
    ]


def portable_equivalent(runner: RunnerConfig, endpoint: str) -> RunnerConfig:
    """The recipe's engine runner as Beam's portable runner on the started job server: the options
    that the job server took (the master) are dropped; the rest (parallelism, environment_config, ...)
    travel with the job."""
    distribution = DISTRIBUTIONS[runner.name]
    options = {
        k: v
        for k, v in runner.options.items()
        if k not in (distribution.master_option, "jvm_options") and not k.startswith(FLINK_CONF_PREFIX)
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
        if any(name.startswith(FLINK_CONF_PREFIX) for name in runner.options):
            raise CurateError(
                f"runner options {FLINK_CONF_PREFIX}<key> configure the Flink of the job server that "
                "curate starts; with runner.job_endpoint set, put them in your job server's "
                "--flink-conf-dir instead"
            )
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
    # The job server's flink-conf.yaml, for the length of the run (Flink reads it as each job starts).
    scratch = tempfile.TemporaryDirectory(prefix="curate-flink-conf-") if runner.name == "flink" else None
    conf_dir = write_flink_conf(flink_conf(runner), Path(scratch.name)) if scratch else None
    command = job_server_command(distribution, master_of(runner), port, jvm_options, conf_dir)
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
        if scratch:
            scratch.cleanup()
