"""What needs no engine running: the one-line error for jars not fetched, and how a recipe's engine runner
becomes Beam's portable runner on the started job server."""

from __future__ import annotations

import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.engines.job_server import portable_equivalent
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


def test_loopback_engine_workers_share_the_drivers_disk_and_process_workers_do_not():
    assert not RunnerConfig(name="spark").workers_are_elsewhere
    assert RunnerConfig(name="flink", environment_type="PROCESS").workers_are_elsewhere
