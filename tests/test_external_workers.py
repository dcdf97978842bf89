"""Workers that share nothing with the driver: Beam's portable runner submits to a local job service, and
the SDK workers run in two Beam worker pools (`worker_pool_main`, EXTERNAL environment) started in other
working directories, with another HOME and TMPDIR and without the driver's progress folder. Input and
output are on an S3 server, as on a cluster; the shards must be byte-identical to a local run's, and
the console shows per-stage counts read from the runner's metrics.

Beam's local job service starts one SDK worker per job (it ignores --direct_num_workers), so a
round-robin TCP proxy in front of the two pools sends each job's worker to the next pool: the two runs
below use one pool each, which the pools' logs prove.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.run import run

pytestmark = pytest.mark.slow

INPUTS = ["s3://crawl/in/*.warc.gz", "s3://crawl/in/*.jsonl.gz"]


class RoundRobinProxy(threading.Thread):
    """Forwards each new TCP connection to the next backend port in turn."""

    def __init__(self, ports: list[int]):
        super().__init__(daemon=True)
        self._backends = itertools.cycle(ports)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            backend = socket.create_connection(("127.0.0.1", next(self._backends)))
            for source, sink in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._server.close()


@pytest.fixture(scope="module")
def worker_pools(s3_server, tmp_path_factory, servers):
    """Two worker pools in their own folders behind a round-robin proxy; yields (address, log paths)."""
    pools, logs, ports = [], [], []
    for index in range(2):
        home = tmp_path_factory.mktemp(f"worker-pool-{index}")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CURATE_", "PYTEST", "TMP", "TEMP")) and key != "HOME"
        }
        # A cluster's workers have their own disk and credentials (here: the same test keys).
        path = f"{servers.bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(HOME=str(home), TMPDIR=str(home / "tmp"), PATH=path)
        (home / "tmp").mkdir()
        port = servers.free_port()
        log = home / "pool.log"
        pools.append(
            subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main"]
                + [
                    "--service_port",
                    str(port),
                    "--container_executable",
                    str(servers.bin / "curate-worker-boot"),
                ],
                cwd=home,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        ports.append(port)
        logs.append(log)
    proxy = RoundRobinProxy(ports)
    proxy.start()
    try:
        for port, pool in zip(ports, pools, strict=True):
            servers.wait_for_port(port, pool)
        yield f"127.0.0.1:{proxy.port}", logs
    finally:
        proxy.close()
        for pool in pools:
            pool.terminate()
            pool.wait(timeout=30)


def _external_recipe(servers, out: str, s3_server: str, job_endpoint: str, pool_address: str) -> dict:
    recipe = servers.small_recipe(
        INPUTS, out, storage={"s3_endpoint_url": s3_server, "s3_region": "us-east-1"}
    )
    recipe["runner"] = {
        "name": "portable",
        "job_endpoint": job_endpoint,
        "environment_type": "EXTERNAL",
        "options": {"environment_config": pool_address},
    }
    return recipe


@pytest.fixture(scope="module")
def external_runs(s3_server, beam_job_service, worker_pools, tmp_path_factory, servers):
    """One run through the API and one through the CLI, each on the EXTERNAL workers."""
    pool_address, _ = worker_pools
    recipe = _external_recipe(
        servers, "s3://datasets/external-api", s3_server, beam_job_service, pool_address
    )
    summary = run(parse_config(recipe), progress=False)

    recipe_file = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    recipe = _external_recipe(servers, "s3://datasets/unused", s3_server, "localhost:1", pool_address)
    recipe_file.write_text(yaml.safe_dump(recipe))
    cli = subprocess.run(
        [sys.executable, "-m", "curate", "run", str(recipe_file), "--output", "s3://datasets/external-cli"]
        + ["--runner", "portable", "--job-endpoint", beam_job_service],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return summary, cli


def test_external_workers_give_the_same_shards(s3_server, external_runs, reference_shards, servers):
    summary, _ = external_runs
    assert summary.stats["balanced"]
    assert (
        servers.shard_digests_in(servers.s3_objects(s3_server, "datasets", "external-api/"))
        == reference_shards
        != {}
    )


def test_cli_on_external_workers_shows_per_stage_counts_from_metrics(
    s3_server, external_runs, reference_shards, servers
):
    _, cli = external_runs
    assert cli.returncode == 0, cli.stderr
    objects = servers.s3_objects(s3_server, "datasets", "external-cli/")
    assert servers.shard_digests_in(objects) == reference_shards
    stages = json.loads(objects["external-cli/stats.json"])["stages"]
    (line,) = [line.strip() for line in cli.stderr.splitlines() if line.strip().startswith("metrics: ")]
    expected = [f"read {stages['read']['out']:,}"]
    for name, entry in stages.items():
        if name != "read":
            rejected = sum(entry["rejected"].values())
            expected.append(
                f"{name} {entry['in']:,} → {entry['out']:,}" + (f" (-{rejected:,})" if rejected else "")
            )
    assert line == "metrics: " + " · ".join(expected)


def test_each_pool_ran_a_worker_in_its_own_folder(external_runs, worker_pools):
    _, logs = worker_pools
    started = [log.read_text().count("Starting worker") for log in logs]
    assert started == [1, 1], started


def test_a_local_path_on_a_cluster_runner_fails_before_submission(tmp_path, servers):
    from curate.filters.langid import default_model_path

    model = tmp_path / "lid.ftz"  # a real model, on this machine only
    model.write_bytes(Path(default_model_path()).read_bytes())
    recipe = servers.small_recipe(INPUTS, "s3://datasets/never")
    recipe["runner"] = {"name": "dataflow", "options": {"project": "p", "region": "r"}}
    recipe["stages"]["langid"] = {"model": str(model)}
    with pytest.raises(CurateError) as error:
        run(parse_config(recipe), progress=False)
    message = str(error.value)
    assert message.startswith(f"stages.langid.model: {model} is a local path, but the dataflow runner")
    assert "\n" not in message and "gs:// or s3://" in message
    # A local output on EXTERNAL workers is refused the same way; a shared mount may be declared.
    recipe = servers.small_recipe(INPUTS, str(tmp_path / "out"))
    recipe["runner"] = {"name": "portable", "job_endpoint": "localhost:1", "environment_type": "EXTERNAL"}
    with pytest.raises(CurateError, match=r"^output.path: .* is a local path, but the portable runner"):
        run(parse_config(recipe), progress=False)
