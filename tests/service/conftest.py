"""A real `curate serve` in a subprocess on a free loopback port, and a small HTTP client for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from curate.service import jobs

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install -e '.[serve]'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One `curate serve` process; ``request`` returns (status, parsed JSON or text)."""

    def __init__(self, roots: list[Path], state: Path, token: str | None = None, store: Path | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.roots, self.state, self.token, self.store = roots, state, token, store or state / "store"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Service:
        command = [
            sys.executable,
            "-m",
            "curate",
            "serve",
            "--port",
            str(self.port),
            "--state",
            str(self.state),
        ]
        for root in self.roots:
            command += ["--root", str(root)]
        if self.token:
            command += ["--token", self.token]
        env = {**os.environ, "CURATE_STORE": str(self.store)}
        self.log = open(self.state.parent / f"serve-{self.port}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"curate serve exited with {self.process.returncode}")
            try:
                if self.request("GET", "/openapi.json")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("curate serve did not answer in time")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.log.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "default",
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        token = self.token if token == "default" else token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, kind = response.status, response.read(), response.headers.get("content-type")
        except urllib.error.HTTPError as error:
            status, payload, kind = error.code, error.read(), error.headers.get("content-type")
        return status, json.loads(payload) if "json" in (kind or "") else payload.decode("utf-8", "replace")

    def wait(self, kind: str, job_id: str, statuses: set[str], timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.request("GET", f"/api/{kind}/{job_id}")
            assert status == 200, job
            if job["status"] in statuses:
                return job
            time.sleep(0.5)
        raise AssertionError(f"{kind} {job_id} still {job['status']} after {timeout}s")


@pytest.fixture
def start_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Service]]:
    """Start services (each with its own state folder); all are stopped at the end of the test."""
    started: list[Service] = []

    def start(roots: list[Path], token: str | None = None, state: Path | None = None) -> Service:
        state = state or tmp_path_factory.mktemp("service") / "state"
        service = Service(roots, state, token).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def start_module_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Service]]:
    """Start one service for a whole test module (own roots, token, state); stopped at the module's end."""
    started: list[Service] = []

    def start(roots: list[Path], state: Path, token: str | None = None) -> Service:
        service = Service(roots, state, token).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Service]:
    """A service for a whole test module: roots are a fresh folder and the shared sample data."""
    root = tmp_path_factory.mktemp("root")
    service = Service([root, shared_data], root / ".state").start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def small_input(jsonl_file: Path) -> Path:
    """The input of the `small_run` fixture (10 real documents), for runs the service makes."""
    return jsonl_file


@pytest.fixture
def processes_of() -> Callable[[str], list[int]]:
    """Processes still carrying a job's marker (what a cancel or restart must leave none of), found the
    way the service finds them."""
    return jobs.processes_of


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.1)


@pytest.fixture(name="wait_for", scope="session")
def wait_for_fixture() -> Callable[[Callable[[], object], float, str], None]:
    return wait_for
