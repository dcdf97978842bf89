"""Local Flink session and Spark standalone clusters from the fetched jars: what the tests and the
benchmark run the recipe on, each process a JVM of its own with a modest heap.

A Flink session cluster is one JobManager (``StandaloneSessionClusterEntrypoint``) and N TaskManagers
(``TaskManagerRunner``), started as Flink's own scripts start them: the memory settings come from Flink's
``BashJavaUtils`` for the configuration written here. A Spark standalone cluster is one Master and N
Workers (``org.apache.spark.deploy.master.Master`` / ``...worker.Worker``). Both bind to localhost only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError
from curate.engines.distributions import FLINK, SCALA_VERSION, SPARK
from curate.engines.job_server import JAVA17_OPENS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(
    condition: Any, seconds: float, what: str, processes: tuple[subprocess.Popen, ...] = ()
) -> Any:
    """Poll ``condition()`` until it returns something true; fail when a process dies or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                name = str(list(process.args)[-1])  # type: ignore[arg-type]
                raise CurateError(f"{what}: {name} exited with status {process.returncode}")
        with contextlib.suppress(OSError, ValueError):
            value = condition()
            if value:
                return value
        time.sleep(0.3)
    raise CurateError(f"{what}: not reached within {seconds:.0f} s")


class _Cluster:
    """Processes started here, stopped (TERM, then KILL) in reverse order; logs in ``workdir``."""

    @property
    def master(self) -> str:
        """What the recipe's runner options name (flink_master / spark_master_url)."""
        raise NotImplementedError

    @property
    def rest(self) -> str:
        """The engine's REST API / web UI."""
        raise NotImplementedError

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env, start_new_session=True
        )
        log.close()
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """kill -9 one of the cluster's processes (and whatever it started), as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flink_settings(
    rest_port: int,
    tm_memory: str = "1280m",
    managed_memory: str = "64m",
    task_off_heap: str | None = None,
    slots: int = 1,
) -> dict[str, Any]:
    """The session cluster's flink-conf.yaml (free ports picked here, the REST port given)."""
    settings: dict[str, Any] = {
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": _free_port(),
        "jobmanager.bind-host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": rest_port,
        "blob.server.port": _free_port(),
        "jobmanager.memory.process.size": "768m",
        "taskmanager.memory.process.size": tm_memory,
        # Batch sorts (Beam's GroupByKeys) share it: at 64m a sort buffer holds 416 KB, and a larger
        # record fails the job ("The record exceeds the maximum size of a sort buffer"): crawls with
        # multi-MB pages need 1g or more (docs/engines.md).
        "taskmanager.memory.managed.size": managed_memory,
        # Beam's batch translation opens many exchanges per task: more, smaller network buffers.
        "taskmanager.memory.network.min": "128m",
        "taskmanager.memory.network.max": "128m",
        "taskmanager.memory.segment-size": "16kb",
        "taskmanager.network.sort-shuffle.min-buffers": 64,  # default 512 per partition
        "taskmanager.numberOfTaskSlots": slots,
        "parallelism.default": 2,
        # A lost TaskManager's slots come back when a new one registers; until then the restart waits.
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": 3,
        "restart-strategy.fixed-delay.delay": "2 s",
        "slot.request.timeout": "60000",
        "heartbeat.timeout": "30000",
        "heartbeat.interval": "2000",
        "env.java.opts.all": " ".join(JAVA17_OPENS),
    }
    if task_off_heap:
        # Direct memory for Beam's gRPC data plane to the SDK workers. Flink caps a TaskManager's direct
        # memory at framework off-heap (128m) + network (128m) + this (default 0), and the network
        # buffers take their share up front; Beam's runner sends up to 100 messages (each >= 1 MB, or
        # one whole large element) before it waits for a slow SDK worker, which a crawl of MB pages
        # turns into more than the 128m left: "OutOfMemoryError: Direct buffer memory", then "call is
        # closed" on the restarted tasks (docs/engines.md).
        settings["taskmanager.memory.task.off-heap.size"] = task_off_heap
    return settings


def resource_params(conf: Path, which: str) -> tuple[list[str], list[str]]:
    """The JVM flags and -D settings Flink's start scripts compute for the configuration in ``conf``
    (``which``: GET_JM_RESOURCE_PARAMS or GET_TM_RESOURCE_PARAMS)."""
    done = subprocess.run(
        ["java", "-cp", FLINK.classpath(), "org.apache.flink.runtime.util.bash.BashJavaUtils", which]
        + ["--configDir", str(conf)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = [
        line.split(":", 1)[1] for line in done.stdout.splitlines() if line.startswith("BASH_JAVA_UTILS")
    ]
    return results[0].split(), results[1].split()


class FlinkSession(_Cluster):
    """One JobManager and ``taskmanagers`` TaskManagers of ``slots`` slots each; ``master`` is the REST
    address that ``runner.options.flink_master`` takes. ``task_off_heap`` is the TaskManagers' direct
    memory for Beam's gRPC data plane beyond Flink's own (flink_settings); it counts in ``tm_memory``."""

    def __init__(
        self,
        workdir: Path,
        taskmanagers: int = 2,
        slots: int = 1,
        tm_memory: str = "1280m",
        managed_memory: str = "64m",
        task_off_heap: str | None = None,
    ):
        super().__init__(workdir)
        self.rest_port = _free_port()
        conf = self.workdir / "conf"
        conf.mkdir(exist_ok=True)
        settings = flink_settings(self.rest_port, tm_memory, managed_memory, task_off_heap, slots)
        (conf / "flink-conf.yaml").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
        self.conf = conf
        self.taskmanagers: list[subprocess.Popen] = []
        jm_jvm, jm_dynamic = self._resource_params("GET_JM_RESOURCE_PARAMS")
        self.jobmanager = self._start(
            "jobmanager",
            ["java", *jm_jvm, *JAVA17_OPENS, "-cp", FLINK.classpath()]
            + ["org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"]
            + ["--configDir", str(conf), *jm_dynamic],
        )
        for _ in range(taskmanagers):
            self.add_taskmanager()
        self.wait_for_taskmanagers(taskmanagers)

    @property
    def master(self) -> str:
        return f"localhost:{self.rest_port}"

    @property
    def rest(self) -> str:
        return f"http://localhost:{self.rest_port}"

    def _resource_params(self, which: str) -> tuple[list[str], list[str]]:
        return resource_params(self.conf, which)

    def add_taskmanager(self) -> subprocess.Popen:
        jvm, dynamic = self._resource_params("GET_TM_RESOURCE_PARAMS")
        process = self._start(
            f"taskmanager-{len(self.taskmanagers)}",
            ["java", *jvm, *JAVA17_OPENS, "-cp", FLINK.classpath()]
            + [
                "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                "--configDir",
                str(self.conf),
                *dynamic,
            ],
        )
        self.taskmanagers.append(process)
        return process

    def registered_taskmanagers(self) -> int:
        return len(get_json(f"{self.rest}/taskmanagers")["taskmanagers"])

    def wait_for_taskmanagers(self, count: int, seconds: float = 120) -> None:
        wait_until(
            lambda: self.registered_taskmanagers() >= count,
            seconds,
            f"Flink session cluster with {count} TaskManagers",
            (self.jobmanager,),
        )

    def jobs(self) -> list[dict[str, Any]]:
        return get_json(f"{self.rest}/jobs/overview")["jobs"]


class SparkStandalone(_Cluster):
    """One Master and ``workers`` Workers of ``cores`` cores each; ``master`` is the ``spark://`` URL that
    ``runner.options.spark_master_url`` takes; ``rest`` the master's web UI (``/json`` lists workers)."""

    def __init__(self, workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
        super().__init__(workdir)
        self.port, self.ui_port = _free_port(), _free_port()
        env = {
            **os.environ,
            "SPARK_HOME": str(SPARK.home),
            "SPARK_SCALA_VERSION": SCALA_VERSION,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_HOSTNAME": "localhost",
        }
        self._env = env
        self.master_process = self._start(
            "master",
            [
                "java",
                "-Xmx256m",
                *JAVA17_OPENS,
                "-cp",
                SPARK.classpath(),
                "org.apache.spark.deploy.master.Master",
            ]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)],
            env,
        )
        self.workers: list[subprocess.Popen] = []
        self._cores, self._memory = cores, memory
        wait_until(lambda: get_json(f"{self.rest}/json/"), 120, "Spark master", (self.master_process,))
        for _ in range(workers):
            self.add_worker()
        self.wait_for_workers(workers)

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def add_worker(self) -> subprocess.Popen:
        index = len(self.workers)
        work = self.workdir / f"worker-{index}"
        work.mkdir(exist_ok=True)
        process = self._start(
            f"worker-{index}",
            [
                "java",
                "-Xmx256m",
                *JAVA17_OPENS,
                "-cp",
                SPARK.classpath(),
                "org.apache.spark.deploy.worker.Worker",
            ]
            + ["--host", "127.0.0.1", "--cores", str(self._cores), "--memory", self._memory]
            + ["--webui-port", str(_free_port()), "--work-dir", str(work), self.master],
            self._env,
        )
        self.workers.append(process)
        return process

    def alive_workers(self) -> int:
        return sum(worker["state"] == "ALIVE" for worker in get_json(f"{self.rest}/json/")["workers"])

    def wait_for_workers(self, count: int, seconds: float = 120) -> None:
        wait_until(
            lambda: self.alive_workers() >= count,
            seconds,
            f"Spark standalone cluster with {count} workers",
            (self.master_process,),
        )

    def applications(self) -> list[dict[str, Any]]:
        return get_json(f"{self.rest}/json/")["activeapps"]
