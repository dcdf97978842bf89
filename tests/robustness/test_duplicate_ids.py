"""Ids are unique within a run (issue case 4): per-file row numbers no longer merge unrelated documents."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def _documents(damaged_run, name):
    kept, rejected = damaged_run.rows_of(name)
    return [row for row in kept + rejected if row.get("stage") != "read"]


def test_every_document_of_the_run_has_its_own_id(damaged_run):
    ids = [row["id"] for row in damaged_run.kept + damaged_run.rejected if row.get("stage") != "read"]
    assert len(ids) == len(set(ids))


def test_the_later_duplicate_gets_a_derived_id_and_keeps_the_original(damaged_run):
    first, later = _documents(damaged_run, "rows-a.jsonl"), _documents(damaged_run, "rows-b.jsonl")
    assert sorted(row["id"] for row in first) == ["0", "1", "2", "3", "4"]
    originals = sorted(json.loads(row["metadata"])["original_id"] for row in later)
    assert originals == ["0", "1", "2", "3", "4"]
    assert all(len(row["id"]) == 32 for row in later)  # derived from file and line: a 128-bit hash


def test_unrelated_documents_with_one_id_are_not_merged_by_dedup(damaged_run):
    documents = _documents(damaged_run, "rows-a.jsonl") + _documents(damaged_run, "rows-b.jsonl")
    assert len(documents) == 10
    assert not [row for row in documents if row.get("reason", "").startswith("duplicate")]
    assert {row["dup_cluster_size"] for row in documents if row.get("dup_cluster_size")} <= {1}


def test_the_run_passes_its_own_shard_verification(damaged_run, curate_cli):
    result = curate_cli("shards", "verify", str(damaged_run.out))
    assert result.returncode == 0, result.stdout + result.stderr


def test_on_duplicate_id_fail_stops_the_run_naming_both_records(
    damaged_inputs, tmp_path, curate_cli, write_recipe
):
    inputs, _ = damaged_inputs
    a, b = inputs["rows-a.jsonl"].path, inputs["rows-b.jsonl"].path
    recipe = write_recipe(
        tmp_path / "recipe.yaml", [str(a), str(b)], tmp_path / "out", input_extra={"on_duplicate_id": "fail"}
    )
    result = curate_cli("run", str(recipe), "--quiet")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "duplicate document id '" in line and f"{a} line " in line and f"{b} line " in line
