"""Shared fixtures: the real sample data in ../shared, and a fast single-process runner setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when ../shared is absent (never in CI: it fails)."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs the sample data at {path} (the ../shared folder beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def lakefs_server(tmp_path_factory):
    """The in-process lakeFS API contract server (curate.testing.lakefs_server), real HTTP on 127.0.0.1."""
    from curate.testing.lakefs_server import FakeLakeFS

    server = FakeLakeFS(tmp_path_factory.mktemp("lakefs"), "AKIATESTCURATE", "s3cr3t-never-printed")
    server.endpoint = server.start()
    yield server
    server.stop()


@pytest.fixture
def lakefs_env(lakefs_server, monkeypatch):
    """LAKEFS_* pointing at the contract server (what a user sets for a real one)."""
    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_server.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_server.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_server.secret_access_key)
    return lakefs_server
