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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `curate run` from the command line over one real JSONL sample (10 documents), shared by
    the report and service tests: its output folder, with stats.json, manifest.json and report.html."""
    import subprocess
    import sys

    source = shared_path("jsonl", "cc_en_head-0091.jsonl.gz")
    folder = tmp_path_factory.mktemp("small-run")
    recipe = folder / "recipe.yaml"
    recipe.write_text("runner: {name: direct, workers: 1}\n")
    out = folder / "out"
    command = [
        sys.executable,
        "-m",
        "curate",
        "run",
        str(recipe),
        "--input",
        str(source),
        "--output",
        str(out),
    ]
    subprocess.run([*command, "--quiet"], check=True)
    return out
