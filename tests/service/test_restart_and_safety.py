"""Jobs survive a crash of the service as records, and the service refuses unsafe starts and requests."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def test_sigkill_during_a_run_then_restart(
    start_service, tmp_path: Path, shared_data: Path, small_input: Path, processes_of, wait_for
):
    root = tmp_path / "root"
    state = tmp_path / "state"
    service = start_service([root, shared_data], state=state)
    crawl = str(shared_data / "crawl" / "*.warc.gz")
    status, body = service.request("POST", "/api/runs", {"recipe": "runner: {workers: 2}", "input": [crawl]})
    assert status == 201
    job = service.wait("runs", body["id"], {"running"}, timeout=60)
    # Killed as soon as the run's process exists: a Beam run cannot have finished by then.
    wait_for(lambda: processes_of(job["id"]), 60, "the run's process")
    service.stop(signal.SIGKILL)

    again = start_service([root, shared_data], state=state)
    job = again.request("GET", f"/api/runs/{job['id']}")[1]
    assert job["status"] == "failed"
    assert "service stopped while this job was running" in job["error"]
    assert not (Path(job["output"]) / "manifest.json").exists()
    assert processes_of(job["id"]) == []

    status, body = again.request(
        "POST", "/api/runs", {"recipe": "runner: {workers: 1}", "input": [str(small_input)]}
    )
    assert status == 201
    new = again.wait("runs", body["id"], {"succeeded", "failed", "cancelled"})
    assert new["status"] == "succeeded", new["error"]
    assert (Path(new["output"]) / "manifest.json").is_file()


def test_with_a_token_every_api_route_requires_it(start_service, tmp_path: Path):
    service = start_service([tmp_path], token="s3cret-token")
    for path in ["/api/runs", "/api/train", "/api/datasets", "/api/runs/0123456789abcdef"]:
        assert service.request("GET", path, token=None)[0] == 401, path
        assert service.request("GET", path, token="wrong")[0] == 401, path
    assert service.request("POST", "/api/runs", {"recipe": {}}, token=None)[0] == 401
    assert service.request("GET", "/runs/0123456789abcdef/report", token=None)[0] == 401
    assert service.request("GET", "/api/runs")[0] == 200
    assert service.request("GET", "/api/runs/0123456789abcdef")[0] == 404


def test_another_host_without_a_token_refuses_to_start(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("CURATE_TOKEN", raising=False)
    command = [
        sys.executable,
        "-m",
        "curate",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--root",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert "Traceback" not in result.stderr
