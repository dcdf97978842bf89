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
