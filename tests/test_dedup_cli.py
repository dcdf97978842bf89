"""`curate dedup`: dedup-only runs over documents users already have, same layout as `curate run`."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from curate.cli import main


def test_curate_dedup_writes_kept_rejected_and_balanced_stats(jsonl_rows, tmp_path):
    rows = jsonl_rows
    longest = max(rows, key=lambda row: len(row["text"]))
    words = longest["text"].split()
    near = {**longest, "id": "zz-near", "text": " ".join(words[:-40])}  # drops a tail: Jaccard > 0.99
    exact = {**longest, "id": "zz-exact", "text": longest["text"].upper()}
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in [*rows, near, exact]), encoding="utf-8")

    out = tmp_path / "out"
    assert main(["dedup", "--input", str(source), "--output", str(out), "--workers", "1", "--quiet"]) == 0

    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"]
    assert list(stats["stages"]) == ["read", "extract", "dedup_exact", "dedup_minhash"]
    assert stats["stages"]["dedup_exact"]["rejected"] == {"duplicate_exact": 1}
    assert stats["stages"]["dedup_minhash"]["rejected"] == {"duplicate_near": 1}
    rejected = pq.read_table(out / "rejected").to_pylist()
    assert sorted((r["id"], r["reason"]) for r in rejected) == [
        ("zz-exact", "duplicate_exact"),
        ("zz-near", "duplicate_near"),
    ]
    kept = pq.read_table(out / "documents").to_pylist()
    assert len(kept) == len(rows)
    survivor = next(r for r in kept if r["id"] == longest["id"])
    assert survivor["dup_cluster"] == longest["id"] and survivor["dup_cluster_size"] == 2


def test_curate_dedup_turns_off_every_stage_but_extraction_and_dedup(tmp_path):
    """The recipe may enable any stage; `curate dedup` keeps only what its roles name (a keep-list, so a
    stage added later is off too)."""
    import argparse

    import yaml

    from curate.cli.dedup_cmd import dedup_config
    from curate.config import default_config
    from curate.pipelines.stage_order import ALL_STAGES

    recipe = default_config().model_dump(mode="json")
    for stage in recipe["stages"].values():
        stage["enabled"] = True
    recipe["stages"]["classifier"]["models"] = [{"name": "hq", "path": "model.bin"}]
    recipe["stages"]["decontaminate"]["index"] = "eval.npz"
    path = tmp_path / "everything.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = argparse.Namespace(
        config=str(path), input=["docs.jsonl"], output=str(tmp_path / "out"), format=None, tokenize=False,
        no_exact=False, no_minhash=False, threshold=None, num_perm=None, bands=None, rows=None,
        runner=None, workers=None, job_endpoint=None, s3_endpoint_url=None, beam_option=None, strict=False,
    )  # fmt: skip

    config = dedup_config(args)

    enabled = [stage.name for stage in ALL_STAGES if config.stages.of(stage).enabled]
    assert enabled == ["extract", "dedup_exact", "dedup_minhash"]
    assert dedup_config.__doc__ is not None
