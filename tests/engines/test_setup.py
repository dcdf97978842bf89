"""What needs no engine running: the one-line error for jars not fetched, and how a recipe's engine runner
becomes Beam's portable runner on the started job server."""

from __future__ import annotations

import io
import queue
from types import SimpleNamespace

import pytest
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
from apache_beam.utils.sentinel import Sentinel

from curate.cli import main
from curate.config import parse_config
from curate.core.errors import CurateError
from curate.engines import spark_rest
from curate.engines.clusters import flink_settings, resource_params
from curate.engines.distributions import BEAM_JAVA_VERSION, BEAM_PYTHON_CHECKED, FLINK, Distribution
from curate.engines.job_server import (
    engine_runner,
    flink_conf,
    job_server_command,
    portable_equivalent,
    write_flink_conf,
)
from curate.engines.loopback_pool import BEAMS_STOP_WORKER, guard_loopback_pool
from curate.metrics_progress import MetricsProgress
from curate.pipelines.runner import RunnerConfig
from curate.run import run


@pytest.mark.parametrize("engine", ["flink", "spark"])
def test_a_run_without_the_fetched_jars_fails_in_one_line_naming_the_fix(
    engine, tmp_path, monkeypatch, servers
):
    monkeypatch.setenv("CURATE_ENGINES_DIR", str(tmp_path / "engines"))
    recipe = servers.small_recipe([str(p) for p in servers.small_inputs()], str(tmp_path / "out"))
    recipe["runner"] = {"name": engine}
    with pytest.raises(CurateError) as error:
        run(parse_config(recipe), progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert f"the {engine} runner needs Beam's {engine} job server" in message
    assert str(tmp_path / "engines") in message and "make engines" in message
    assert not (tmp_path / "out" / "shards").exists()


def test_engine_runner_becomes_portable_without_the_master_option():
    runner = RunnerConfig(name="flink", options={"flink_master": "host:8081", "parallelism": 4})
    portable = portable_equivalent(runner, "localhost:1234")
    assert portable.name == "portable" and portable.job_endpoint == "localhost:1234"
    assert portable.options == {"parallelism": 4}
    assert portable.environment_type == "LOOPBACK"


def test_the_mini_clusters_default_managed_memory_stays_under_half_the_machine(monkeypatch):
    from curate.engines import job_server

    many_cores = RunnerConfig(name="flink")  # no parallelism: one slot per core
    monkeypatch.setattr(job_server.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(job_server, "_physical_memory_mb", lambda: 16 * 1024)
    assert flink_conf(many_cores) == {"taskmanager.memory.managed.size": "8192m"}
    monkeypatch.setattr(job_server, "_physical_memory_mb", lambda: 1024)  # a tiny box: still one slot's worth
    assert flink_conf(many_cores) == {"taskmanager.memory.managed.size": "1024m"}


def test_the_mini_cluster_gets_managed_memory_per_slot_and_the_recipes_flink_settings(tmp_path, monkeypatch):
    # [local]: 1g of managed memory per slot (one per unit of parallelism), so that Beam's GroupByKeys
    # (Flink sorts) hold multi-MB records; flink.<key> options are flink-conf.yaml entries and win.
    local = RunnerConfig(name="flink", options={"flink_master": "[local]", "parallelism": 2})
    assert flink_conf(local) == {"taskmanager.memory.managed.size": "2048m"}
    mine = RunnerConfig(
        name="flink",
        options={
            "parallelism": 3,
            "flink.taskmanager.memory.managed.size": "4g",
            "flink.taskmanager.memory.network.max": "256m",
            "flink.pipeline.object-reuse": True,
            "flink_conf_note": "not a flink.* option",
        },
    )
    assert flink_conf(mine) == {
        "taskmanager.memory.managed.size": "4g",
        "taskmanager.memory.network.max": "256m",
        "pipeline.object-reuse": "true",
    }
    # A session cluster's TaskManagers have their own configuration: only the recipe's settings travel.
    session = RunnerConfig(
        name="flink", options={"flink_master": "host:8081", "flink.akka.ask.timeout": "60 s"}
    )
    assert flink_conf(session) == {"akka.ask.timeout": "60 s"}
    # The job server takes them as a flink-conf.yaml folder; Beam's portable options never see them.
    folder = write_flink_conf(flink_conf(mine), tmp_path)
    assert (folder / "flink-conf.yaml").read_text() == (
        "taskmanager.memory.managed.size: 4g\n"
        "taskmanager.memory.network.max: 256m\n"
        "pipeline.object-reuse: true\n"
    )
    monkeypatch.setattr(Distribution, "classpath", lambda self: "JARS/*")
    command = job_server_command(FLINK, "[local]", 8099, [], folder)
    assert command[command.index("--flink-master") + 1] == "[local]"
    assert command[command.index("--flink-conf-dir") + 1] == str(folder)
    assert "--flink-conf-dir" not in job_server_command(FLINK, "[local]", 8099, [])
    assert portable_equivalent(mine, "localhost:1").options == {
        "parallelism": 3,
        "flink_conf_note": "not a flink.* option",
    }


@pytest.mark.parametrize(
    ("runner", "error"),
    [
        (
            {"name": "flink", "options": {"flink.a b": 1}},
            "option 'flink.a b': 'a b' is not a Flink configuration key",
        ),
        ({"name": "flink", "options": {"flink.a": "1\nb: 2"}}, "value is one line without '#'"),
        ({"name": "spark", "options": {"flink.a": 1}}, "it applies to runner 'flink' only"),
        ({"name": "flink", "options": {"flink.a": {"b": 1}}}, "must be one value"),
    ],
)
def test_a_flink_setting_that_flink_conf_yaml_cannot_carry_is_refused_in_one_line(runner, error, tmp_path):
    with pytest.raises(CurateError) as refused:
        parse_config({"input": ["x.jsonl"], "output": str(tmp_path / "out"), "runner": runner})
    assert error in str(refused.value) and "\n" not in str(refused.value)


def test_flink_settings_with_a_job_server_of_the_users_own_are_refused():
    runner = RunnerConfig(name="flink", job_endpoint="localhost:8099", options={"flink.a.b": 1})
    with (
        pytest.raises(CurateError, match="put them in your job server's --flink-conf-dir"),
        engine_runner(runner),
    ):
        pass


def test_loopback_engine_workers_share_the_drivers_disk_and_process_workers_do_not():
    assert not RunnerConfig(name="spark").workers_are_elsewhere
    assert RunnerConfig(name="flink", environment_type="PROCESS").workers_are_elsewhere


# Beam's rendering of the Spark runner's Beam.Metrics accumulator, as the Spark REST API served it for a
# run here (cut to three entries): system metrics carry labels, user counters NAME and NAMESPACE.
RENDERED = (
    "MetricQueryResults(Counters(ref_PCollection_PCollection_13:beam:metric:element_count:v1 "
    "{PCOLLECTION=ref_PCollection_PCollection_8}: 2, ref_PCollection_PCollection_13:beam:metric:user:"
    "sum_int64:v1 {NAME=extract.in, NAMESPACE=curate, PTRANSFORM=ref_AppliedPTransform_CountextractIn_77}: "
    "32, ref_PCollection_PCollection_21:beam:metric:user:sum_int64:v1 {NAME=quality.rejected.gopher_short_doc"
    ", NAMESPACE=curate, PTRANSFORM=ref_AppliedPTransform_Quality_90}: 1)Distributions(...))"
)


def test_spark_accumulator_rendering_gives_the_user_counters_only():
    assert spark_rest.parse_counters(RENDERED) == {
        (
            "ref_PCollection_PCollection_13",
            "ref_AppliedPTransform_CountextractIn_77",
            "curate",
            "extract.in",
        ): 32,
        (
            "ref_PCollection_PCollection_21",
            "ref_AppliedPTransform_Quality_90",
            "curate",
            "quality.rejected.gopher_short_doc",
        ): 1,
    }


def test_engines_status_states_the_sdk_and_job_server_versions_and_the_pin_was_checked_for_this_sdk(capsys):
    from apache_beam.version import __version__ as sdk

    # the Java pin (distributions.py) was checked against this SDK: a new SDK must re-check it
    assert sdk.startswith(BEAM_PYTHON_CHECKED + "."), (sdk, BEAM_PYTHON_CHECKED)
    main(["engines", "status"])
    first = capsys.readouterr().out.splitlines()[0]
    assert f"Python SDK is {sdk}" in first and f"Java job servers are Beam {BEAM_JAVA_VERSION}" in first
    assert "WARNING" not in first


def test_final_counts_come_from_the_runner_when_the_engines_endpoint_has_gone():
    class Finished:  # a job's result whose runner still has its metrics
        def metrics(self):
            return self

        def query(self):
            key = MetricKey("Read", MetricName("curate", "read.out"))
            return {"counters": [MetricResult(key, 3, 3)]}

    def endpoint_gone(result):
        raise OSError("connection refused")

    console = io.StringIO()
    with MetricsProgress(Finished(), ["read"], console, interval=60, source=endpoint_gone, where="X's API"):
        pass
    assert console.getvalue().splitlines() == [
        "  live counters from X's API",
        "  metrics: read 3 (from Beam's job service: the engine's endpoint has gone)",
    ]


def _taskmanager_jvm(tmp_path, name: str, **memory) -> dict[str, int]:
    conf = tmp_path / name
    conf.mkdir()
    settings = flink_settings(8081, **memory)
    (conf / "flink-conf.yaml").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    jvm, _ = resource_params(conf, "GET_TM_RESOURCE_PARAMS")
    (heap,) = [int(flag.removeprefix("-Xmx")) for flag in jvm if flag.startswith("-Xmx")]
    (direct,) = [int(flag.split("=")[1]) for flag in jvm if flag.startswith("-XX:MaxDirectMemorySize=")]
    return {"heap": heap, "direct": direct}


def test_taskmanager_task_off_heap_raises_the_direct_memory_cap(engines_fetched, tmp_path):
    # The bench's 4x Flink run died of "OutOfMemoryError: Direct buffer memory" in Beam's gRPC data plane
    # under Flink's default cap (framework off-heap 128m + network 128m); task off-heap adds to the cap.
    # The bench's TaskManager (3584m) also has a 1.2g heap: at 0.55g it died of "Java heap space".
    before = _taskmanager_jvm(tmp_path, "before", tm_memory="2304m", managed_memory="1g")
    after = _taskmanager_jvm(tmp_path, "after", tm_memory="3584m", managed_memory="1g", task_off_heap="512m")
    assert before["direct"] == 256 << 20
    assert after["direct"] == before["direct"] + (512 << 20)
    assert before["heap"] < 600 << 20 and after["heap"] > 1100 << 20


def test_a_loopback_stop_leaves_another_taskmanagers_harness_of_the_same_id_running():
    # Two TaskManagers number their SDK environments from 1 and share the one LOOPBACK pool: the pool
    # holds the latest harness "4" (TaskManager B's) when TaskManager A releases its own "4".
    pool = BeamFnExternalWorkerPoolServicer(use_process=False)
    request = beam_fn_api_pb2.StopWorkerRequest(worker_id="4")
    b_harness = SimpleNamespace(_responses=queue.Queue())
    pool._worker_threads["4"] = b_harness
    BEAMS_STOP_WORKER(pool, request, None)  # Beam's own StopWorker ends B's harness (what failed the 4x run)
    assert b_harness._responses.get_nowait() is Sentinel.sentinel
    guard_loopback_pool()
    guard_loopback_pool()  # idempotent
    pool._worker_threads["4"] = b_harness
    pool.StopWorker(request, None)
    assert b_harness._responses.empty() and "4" not in pool._worker_threads
