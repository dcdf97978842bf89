"""End to end on the real samples: output layout, accounting, shards that decode to the kept text,
determinism across reruns and worker counts, damaged input, and Beam's portable runner."""

from __future__ import annotations

import glob
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.run import run
from curate.versions import LocalStore

pytestmark = pytest.mark.slow


def _recipe(inputs: list[str], out: Path, **runner) -> dict:
    return {
        "input": inputs,
        "output": str(out),
        "runner": {"name": "direct", "workers": 1, **runner},
        "stages": {"langid": {"languages": ["en"]}, "tokenize": {"shard_tokens": 20_000}},
    }


@pytest.fixture(scope="module")
def samples(shared_path) -> list[str]:
    """Every real sample: the crawl WARCs and the CCNet JSONL files, as input globs."""
    return [
        str(shared_path("crawl")) + "/*.warc.gz",
        str(shared_path("jsonl")) + "/*.jsonl.gz",
    ]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, samples):
    out = tmp_path_factory.mktemp("run") / "out"
    summary = run(parse_config(_recipe(samples, out)), progress=False)
    return out, summary


def test_layout(sample_run):
    out, _ = sample_run
    for name in ("stats.json", "manifest.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    for sub in ("documents", "rejected", "shards"):
        assert glob.glob(str(out / sub / "*.parquet")), sub


def test_every_stage_balances(sample_run, output_rows):
    out, summary = sample_run
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] is True
    for name, stage in stats["stages"].items():
        assert stage["in"] == stage["out"] + sum(stage["rejected"].values()), name
    kept, rejected = output_rows(out, "documents"), output_rows(out, "rejected")
    assert len(kept) == stats["documents_kept"] and len(rejected) == stats["documents_rejected"]
    assert len(kept) + len(rejected) == stats["documents_read"] == summary.documents_read
    assert len({d["id"] for d in kept} | {d["id"] for d in rejected}) == stats["documents_read"]


def test_stats_name_each_quality_rule(sample_run):
    out, _ = sample_run
    reasons = json.loads((out / "stats.json").read_text())["stages"]["quality"]["rejected"]
    assert reasons and all(r.startswith(("gopher_", "c4_", "fineweb_")) for r in reasons)


def test_kept_documents_are_english_and_rejections_name_a_reason(sample_run, output_rows):
    out, _ = sample_run
    kept, rejected = output_rows(out, "documents"), output_rows(out, "rejected")
    assert kept and all(d["lang"] == "en" and d["lang_score"] >= 0.65 for d in kept)
    langid_rejected = [d for d in rejected if d["stage"] == "langid"]
    assert langid_rejected and all(d["lang"] != "en" or d["lang_score"] < 0.65 for d in langid_rejected)
    assert all(d["reason"] for d in rejected)


def test_shards_decode_to_exactly_the_kept_text(sample_run, output_rows):
    out, _ = sample_run
    manifest = json.loads((out / "manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    eos = manifest["tokenizer"]["eos_id"]
    texts = {d["id"]: d["text"] for d in output_rows(out, "documents")}
    seen = set()
    total = 0
    for shard in manifest["shards"]:
        path = out / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        for row in pq.read_table(path).to_pylist():
            assert row["tokens"][-1] == eos
            assert tokenizer.decode(row["tokens"][:-1], skip_special_tokens=False) == texts[row["id"]]
            seen.add(row["id"])
            total += len(row["tokens"])
    assert seen == set(texts)
    assert total == manifest["total_tokens"] == sum(s["n_tokens"] for s in manifest["shards"])


def test_rerun_and_more_workers_give_identical_shards(
    sample_run, samples, tmp_path, monkeypatch, shard_digests
):
    out, _ = sample_run
    again = tmp_path / "again"
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    recipe = _recipe(samples, again, workers=2)
    recipe["output"] = {"path": str(again), "dataset": "samples", "branch": "main"}
    summary = run(parse_config(recipe), progress=False)
    assert shard_digests(again) == shard_digests(out) != {}
    # The run was committed as a version; checking it out gives the same shards back.
    assert summary.commit and summary.commit.startswith("samples@")
    checked_out = LocalStore().checkout("samples", "main", tmp_path / "checkout")
    assert shard_digests(checked_out) == shard_digests(out)


def test_damaged_file_is_counted_not_fatal(crawl_file, tmp_path, output_rows):
    data = crawl_file.read_bytes()
    damaged = tmp_path / "damaged.warc.gz"
    damaged.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    summary = run(parse_config(_recipe([str(damaged)], out)), progress=False)
    read = summary.stats["stages"]["read"]
    assert read["rejected"] == {"unreadable": 1} and read["out"] > 0
    (bad,) = [d for d in output_rows(out, "rejected") if d["stage"] == "read"]
    assert bad["read_error"].startswith(f"{damaged}: byte ")


def test_console_reports_progress_and_summary(shared_path, tmp_path):
    out = tmp_path / "out"
    jsonl = str(shared_path("jsonl", "cc_en_head-0174.jsonl.gz"))
    result = subprocess.run(
        [sys.executable, "-m", "curate", "run", "/dev/null", "--input", jsonl, "--output", str(out)]
        + ["--workers", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    progress = re.findall(r"read ([\d,]+) records · kept ([\d,]+)", result.stderr)
    assert progress, f"no progress line in: {result.stderr}"
    last_read, last_kept = (int(n.replace(",", "")) for n in progress[-1])
    assert last_read == stats["documents_read"]
    assert last_kept == stats["documents_kept"]
    assert "curate: done in" in result.stderr
    assert "tokens in" in result.stderr and str(out) in result.stderr
    assert "langid" in result.stderr


def test_portable_runner_gives_the_same_shards(
    sample_run, samples, tmp_path, shard_digests, beam_job_service
):
    out, _ = sample_run
    portable = tmp_path / "portable"
    recipe = _recipe(samples, portable)
    recipe["runner"] = {"name": "portable", "job_endpoint": beam_job_service}
    run(parse_config(recipe), progress=False)
    assert shard_digests(portable) == shard_digests(out)


def test_a_stage_that_cannot_load_its_file_fails_in_one_line(shared_path, tmp_path):
    # The file exists (the run's preflight checks that), but a worker finds it is no fastText model.
    not_a_model = tmp_path / "model.bin"
    not_a_model.write_text("not a model\n")
    recipe = _recipe([str(shared_path("jsonl", "cc_en_head-0174.jsonl.gz"))], tmp_path / "out")
    recipe["stages"]["toxicity"] = {"enabled": True, "fasttext_model": str(not_a_model)}
    with pytest.raises(CurateError) as error:
        run(parse_config(recipe), progress=False)
    message = str(error.value)
    assert message.startswith(f"stages.toxicity.fasttext_model: {not_a_model} is not a fastText model")
    assert "\n" not in message and message.endswith("(stage toxicity)")
