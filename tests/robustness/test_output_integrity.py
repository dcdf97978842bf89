"""Outputs are never mixed or lost (issue cases 5 and 6): a second run on one output is refused, a failed
run leaves the previous results as they were, and everything a recipe names is checked first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from curate.core.errors import CurateError
from curate.publish import LOCK, output_lock

pytestmark = pytest.mark.slow


def _run_in_background(recipe) -> subprocess.Popen:
    """`curate run RECIPE` as its own process group (as the service starts runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "curate", "run", str(recipe), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_second_run_on_the_same_output_is_refused(tmp_path, curate_cli, write_recipe, shared_path):
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "recipe.yaml", [str(shared_path("jsonl")) + "/*.jsonl.gz"], out)
    first = _run_in_background(recipe)
    deadline = time.monotonic() + 120
    while not (out / LOCK).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = curate_cli("run", str(recipe), "--quiet")
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert f"{out}: another curate run is writing this output (pid {first.pid} " in line
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_read"] == 20 and not (out / LOCK).exists()
    assert curate_cli("shards", "verify", str(out)).returncode == 0


def test_the_lock_refuses_a_live_holder_and_takes_over_from_a_dead_one(tmp_path):
    with (
        output_lock(str(tmp_path)),
        pytest.raises(CurateError, match="another curate run is writing this output"),
        output_lock(str(tmp_path)),
    ):
        pass
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / LOCK).write_text(json.dumps({"pid": int(gone.stdout), "host": os.uname().nodename}))
    with output_lock(str(tmp_path)):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK).exists()


@pytest.fixture
def previous_results(damaged_run, tmp_path, tree_digest):
    """A copy of a good run's output, and what it held."""
    assert damaged_run.result.returncode == 0
    out = tmp_path / "previous"
    shutil.copytree(damaged_run.out, out)
    return out, tree_digest(out)


def test_a_missing_model_fails_before_anything_is_touched(
    previous_results, damaged_inputs, tmp_path, curate_cli, write_recipe, tree_digest
):
    out, before = previous_results
    inputs, _ = damaged_inputs
    stages = {"perplexity": {"enabled": True, "model": str(tmp_path / "missing.binary")}}
    recipe = write_recipe(tmp_path / "r.yaml", [str(inputs["three.jsonl"].path)], out, stages)
    for command in (("run", str(recipe)), ("config", "validate", str(recipe))):
        result = curate_cli(*command)
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert f"stages.perplexity.model: {tmp_path / 'missing.binary'}: No such file" in line
    assert tree_digest(out) == before
    assert curate_cli("config", "validate", str(recipe), "--no-files").returncode == 0


def test_a_run_that_fails_midway_keeps_the_previous_results(
    previous_results, damaged_inputs, tmp_path, curate_cli, write_recipe, tree_digest
):
    out, before = previous_results
    inputs, _ = damaged_inputs
    bad = inputs["bad-byte.jsonl"]
    recipe = write_recipe(tmp_path / "r.yaml", [str(bad.path)], out)
    result = curate_cli("run", str(recipe), "--strict", "--quiet")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{bad.path}: line 901: invalid UTF-8" in line and "input.strict" in line
    assert tree_digest(out) == before
    assert not (out / ".staging").exists() and not (out / LOCK).exists()


def test_a_run_records_its_published_folder_never_its_staging(tmp_path, monkeypatch, shared_path):
    """The manifest's recipe, the report and the version's lineage name OUT, not OUT/.staging, so that
    `curate run --recipe-from NAME@REF` without --output writes to OUT again (not inside .staging)."""
    from curate.cli import main
    from curate.versions import open_repository

    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    out = tmp_path / "out"
    inputs = [str(shared_path("jsonl")) + "/*.jsonl.gz"]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        json.dumps(
            {
                "input": inputs,
                "output": {"path": str(out), "dataset": "published"},
                "runner": {"name": "direct", "workers": 1},
            }
        )
    )
    for command in (["run", str(recipe), "--quiet"], ["run", "--recipe-from", "published@main", "--quiet"]):
        assert main(command) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["config"]["output"]["path"] == str(out)
        assert ".staging" not in (out / "report.html").read_text()
        lineage = open_repository("published").resolve("main").lineage
        assert lineage["output"] == str(out) and lineage["recipe"]["output"]["path"] == str(out)
        assert not (out / ".staging").exists() and not (out / LOCK).exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_cancelled_run_leaves_no_staging_and_no_lock(tmp_path, write_recipe, shared_path, sig):
    """A cancel (the service signals the run's process group) ends the run cleanly: the staged part is
    discarded and the lock released, so the folder is as it was and a new run may start."""
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "recipe.yaml", [str(shared_path("jsonl")) + "/*.jsonl.gz"], out)
    process = _run_in_background(recipe)
    deadline = time.monotonic() + 120
    while not (out / ".staging").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a condition, with a deadline
    assert process.poll() is None, "the run ended before it could be cancelled"
    os.killpg(process.pid, sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "curate: interrupted" in err
    assert not (out / ".staging").exists() and not (out / LOCK).exists()
    assert not (out / "manifest.json").exists()


def test_a_cancelled_runs_leftovers_go_but_another_runs_staging_stays(tmp_path):
    """`curate serve` calls abandon once a cancelled run's process group has ended: the staging its
    workers may still have written goes with the lock, unless another process holds the lock."""
    import json
    import os
    from pathlib import Path

    from curate.publish import LOCK, abandon, staging_path

    def output(holder: int | None) -> Path:
        root = tmp_path / f"out-{holder}"
        Path(staging_path(str(root)), "shards").mkdir(parents=True)
        Path(staging_path(str(root)), "shards", "part-0.parquet").write_bytes(b"partial")
        if holder is not None:
            (root / LOCK).write_text(json.dumps({"pid": holder, "host": os.uname().nodename}))
        return root

    for holder in (4242, None):  # the cancelled run's own lock, or none left
        root = output(holder)
        abandon(str(root), 4242)
        assert not Path(staging_path(str(root))).exists() and not (root / LOCK).exists()
    other = output(os.getpid())  # a live run holds the folder
    abandon(str(other), 4242)
    assert (Path(staging_path(str(other))) / "shards" / "part-0.parquet").exists() and (other / LOCK).exists()
