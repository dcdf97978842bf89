"""Incremental curation end to end: the two-month scenario (a run, then --append with all inputs),
resuming a segmented run killed by SIGKILL, and accounting across segments."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.config import parse_config
from curate.run import run
from curate.versions import LocalStore, resolve_data

pytestmark = pytest.mark.slow


def _near_copy(text: str, seed: int) -> str:
    """2% of words dropped: Jaccard of 5-word shingles about 0.9, a near-duplicate."""
    rng = random.Random(seed)
    return " ".join(word for word in text.split() if rng.random() >= 0.02)


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _recipe(inputs: list[str], out: Path, **extra) -> dict:
    return {
        "input": inputs,
        "output": str(out),
        "runner": {"name": "direct", "workers": 1},
        # langid and the quality rules are not under test here (the texts are real English web pages).
        "stages": {"langid": {"enabled": False}, "quality": {"enabled": False}},
        **extra,
    }


def _read(out: Path, sub: str) -> list[dict]:
    return [row for f in sorted((out / sub).glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_balanced(stats: dict) -> None:
    assert stats["balanced"] is True
    for name, stage in stats["stages"].items():
        assert stage["in"] == stage["out"] + sum(stage["rejected"].values()), name
    assert stats["documents_read"] == stats["documents_kept"] + stats["documents_rejected"]


@pytest.fixture
def months(tmp_path, jsonl_texts) -> dict:
    """Four input files: January is files 0-1; February (2-3) repeats some of January's pages."""
    texts = [text for text in jsonl_texts if len(text.split()) > 80]
    assert len(texts) >= 16
    january = [{"id": f"jan-{i:02d}", "text": t} for i, t in enumerate(texts[:8])]
    february = [{"id": f"feb-{i:02d}", "text": t} for i, t in enumerate(texts[8:])]
    near = [{"id": f"feb-near-{i}", "text": _near_copy(january[i]["text"], i)} for i in (1, 5, 6)]
    exact = [{"id": "feb-exact-0", "text": january[3]["text"].upper()}]
    files = [
        _write_jsonl(tmp_path / "in-0.jsonl", january[:4]),
        _write_jsonl(tmp_path / "in-1.jsonl", january[4:]),
        _write_jsonl(tmp_path / "in-2.jsonl", february[: len(february) // 2] + exact),
        _write_jsonl(tmp_path / "in-3.jsonl", february[len(february) // 2 :] + near),
    ]
    planted = {
        "feb-near-1": "jan-01",
        "feb-near-5": "jan-05",
        "feb-near-6": "jan-06",
        "feb-exact-0": "jan-03",
    }
    return {"files": files, "planted": planted, "n_docs": 8 + len(february) + 4}


def test_two_months_append_processes_only_new_files_and_rejects_old_duplicates(months, tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    files = months["files"]
    january = tmp_path / "january"
    run(
        parse_config(_recipe(files[:2], january, output={"path": str(january), "dataset": "web"})),
        progress=False,
    )
    old_manifest = json.loads((january / "manifest.json").read_text())
    old_shards = {s["path"]: s["sha256"] for s in old_manifest["shards"]}
    assert (january / "index" / "minhash").is_dir() and (january / "index" / "exact").is_dir()

    february = tmp_path / "february"
    summary = run(parse_config(_recipe(files, february)), progress=False, append="web@main")
    # January's files were copied into the output, never hard-linked: editing the output cannot reach the
    # store's cached checkout of January's version.
    january_version = LocalStore().log("web", "main")[1].id
    first_shard = sorted(old_shards)[0]
    assert (february / first_shard).stat().st_nlink == 1
    (february / first_shard).write_bytes(b"edited in place")
    assert _sha(resolve_data(f"web@{january_version}") / first_shard) == old_shards[first_shard]

    lineage = json.loads((february / "lineage.json").read_text())
    assert [[i["path"] for i in part["inputs"]] for part in lineage["parts"]] == [files[:2], files[2:]]
    new_part = lineage["parts"][1]["stats"]
    assert new_part["documents_read"] == months["n_docs"] - 8  # January's files were not read again
    rejected = {row["id"]: row for row in _read(february, "rejected")}
    for new_id, old_id in months["planted"].items():
        row = rejected[new_id]
        assert (row["reason"], row["dup_of"], row["dup_version"]) == (
            "duplicate_of_version",
            old_id,
            "web@main",
        )
    assert rejected["feb-exact-0"]["stage"] == "dedup_exact"
    assert {rejected[i]["stage"] for i in ("feb-near-1", "feb-near-5", "feb-near-6")} == {"dedup_minhash"}
    assert not [
        r
        for r in rejected.values()
        if r["reason"] == "duplicate_of_version" and r["id"] not in months["planted"]
    ]

    # The branch: January's shards, byte for byte, plus new ones; every stage balances over both months.
    version = resolve_data("web@main")
    manifest = json.loads((version / "manifest.json").read_text())
    shards = {s["path"]: s["sha256"] for s in manifest["shards"]}
    assert {p: shards[p] for p in old_shards} == old_shards
    assert len(shards) > len(old_shards)
    for path, digest in shards.items():
        assert _sha(version / path) == digest
    stats = json.loads((version / "stats.json").read_text())
    _assert_balanced(stats)
    assert stats["documents_read"] == months["n_docs"]
    assert summary.documents_kept == stats["documents_kept"] == manifest["total_docs"]
    kept_ids = {row["id"] for row in _read(version, "documents")}
    assert len(kept_ids) == stats["documents_kept"] and not kept_ids & set(months["planted"])

    # `curate train --data web@main` reads every shard of the version, January's and February's.
    from curate.train.data import ShardSet

    shard_set = ShardSet.open("web@main")
    assert [p.name for p in shard_set.shards] == [Path(p).name for p in sorted(shards)]
    assert (
        shard_set.total_tokens == manifest["total_tokens"] == sum(s["n_tokens"] for s in manifest["shards"])
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate",
            "train",
            "--data",
            "web@main",
            "--preset",
            "tiny",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--output",
            str(tmp_path / "train"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    # Nothing new: a second append reads nothing and leaves the branch where it was.
    head = LocalStore().branches("web")["main"]
    run(parse_config(_recipe(files, tmp_path / "again")), progress=False, append="web@main")
    assert LocalStore().branches("web")["main"] == head


def _segmented(files: list[str], out: Path, dataset: str) -> dict:
    recipe = _recipe(files, out, output={"path": str(out), "dataset": dataset}, run={"segment_files": 1})
    recipe["stages"]["tokenize"] = {"shard_tokens": 20_000}
    return recipe


def test_resume_after_sigkill_skips_the_committed_segment_and_ends_identical(months, tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("CURATE_STORE", str(store))
    files = months["files"][1:3]  # two segments of one file each
    out = tmp_path / "killed"
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(json.dumps(_segmented(files, out, "web")))
    command = [sys.executable, "-m", "curate", "run", str(recipe_path)]
    env = {**os.environ, "CURATE_STORE": str(store)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not LocalStore(store).branches("web") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed after its first segment"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = LocalStore(store).branches("web")["main"]
    assert len(LocalStore(store).log("web", "main")) == 1

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "segment 1/2 (1 file(s)): finished before, skipped" in resumed.stderr
    assert "segment 2/2" in resumed.stderr
    history = LocalStore(store).log("web", "main")
    assert len(history) == 2 and history[1].id == first

    whole = tmp_path / "whole"
    run(parse_config(_segmented(files, whole, "web-whole")), progress=False)
    digests = {p.name: _sha(p) for p in sorted((whole / "shards").glob("*.parquet"))}
    assert len(digests) >= 2
    assert {p.name: _sha(p) for p in sorted((out / "shards").glob("*.parquet"))} == digests
    for folder in (out, whole):
        stats = json.loads((folder / "stats.json").read_text())
        _assert_balanced(stats)
        n_lines = sum(len(Path(f).read_text().splitlines()) for f in files)
        assert stats["parts"] == 2 and stats["documents_read"] == n_lines
        lineage = json.loads((folder / "lineage.json").read_text())
        for part in lineage["parts"]:
            _assert_balanced(part["stats"])


def _estimated_jaccard(a: str, b: str) -> float:
    from curate.filters.dedup_text import Normalization, shingle_hashes
    from curate.filters.minhash import MinHasher

    words = Normalization()
    signatures = MinHasher(128, 1).signatures([shingle_hashes(words.words(t), 5) for t in (a, b)])
    return float((signatures[0] == signatures[1]).mean())


def test_near_duplicate_chain_is_caught_across_segments_as_in_one_run(tmp_path, jsonl_texts):
    """A ~ B ~ C ~ D, each only like its neighbours: one run clusters all four (A survives). Segmented
    (A and B, then C, then D), C resembles only B, which segment 1 removed, and D only C, which segment 2
    removed: both are caught because the index holds the removed near-duplicates too, pointing at A."""
    texts = [text for text in jsonl_texts if len(text.split()) > 80]
    words = " ".join(texts[:4]).split()
    length, step = 420, 50  # windows shifted by `step`: neighbours ~0.78 Jaccard, two apart ~0.62
    assert len(words) >= length + 3 * step
    chain = {name: " ".join(words[i * step : i * step + length]) for i, name in enumerate("abcd")}
    for x, y in ("ab", "bc", "cd"):
        assert _estimated_jaccard(chain[x], chain[y]) >= 0.7, (x, y)
    for x, y in ("ac", "bd", "ad"):
        assert _estimated_jaccard(chain[x], chain[y]) < 0.7, (x, y)
    others = [{"id": f"other-{i}", "text": t} for i, t in enumerate(texts[6:9])]
    rows = [{"id": f"chain-{name}", "text": text} for name, text in chain.items()]
    files = [
        _write_jsonl(tmp_path / "in-0.jsonl", [rows[0], rows[1], others[0]]),
        _write_jsonl(tmp_path / "in-1.jsonl", [rows[2], others[1]]),
        _write_jsonl(tmp_path / "in-2.jsonl", [rows[3], others[2]]),
    ]
    no_shards = {"langid": {"enabled": False}, "quality": {"enabled": False}, "tokenize": {"enabled": False}}

    single = tmp_path / "single"
    run(parse_config({**_recipe(files, single), "stages": no_shards}), progress=False)
    segmented = tmp_path / "segmented"
    recipe = {**_recipe(files, segmented), "stages": no_shards, "run": {"segment_files": 1}}
    run(parse_config(recipe), progress=False)

    for out in (single, segmented):
        kept = {row["id"] for row in _read(out, "documents")}
        assert kept == {"chain-a", *(o["id"] for o in others)}, out.name
        _assert_balanced(json.loads((out / "stats.json").read_text()))
    rejected = {row["id"]: row for row in _read(segmented, "rejected")}
    assert (rejected["chain-b"]["reason"], rejected["chain-b"]["dup_of"]) == ("duplicate_near", None)
    assert rejected["chain-b"]["dup_cluster"] == "chain-a"
    for name in ("chain-c", "chain-d"):
        row = rejected[name]
        assert (row["stage"], row["reason"], row["dup_of"]) == (
            "dedup_minhash",
            "duplicate_of_version",
            "chain-a",
        )
        assert row["dup_version"] == str(segmented)
    # The index holds survivors and removed near-duplicates, each removed one pointing at its survivor.
    index = {row["id"]: row["dup_of"] for row in _read(segmented, "index/minhash")}
    assert {row["id"]: index[row["id"]] for row in rows} == {
        "chain-a": None,
        "chain-b": "chain-a",
        "chain-c": "chain-a",
        "chain-d": "chain-a",
    }


def test_one_big_warc_file_is_cut_at_records_into_segments(crawl_file, tmp_path):
    """A file larger than segment_bytes is read in byte ranges cut at WARC records, one segment each:
    memory stays bounded by the segment size, and every record is read exactly once."""
    size = crawl_file.stat().st_size
    stages = {"langid": {"enabled": False}, "quality": {"enabled": False}, "tokenize": {"enabled": False}}
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(parse_config({**_recipe([str(crawl_file)], whole), "stages": stages}), progress=False)
    recipe = {**_recipe([str(crawl_file)], cut), "stages": stages, "run": {"segment_bytes": size // 3}}
    run(parse_config(recipe), progress=False)

    parts = json.loads((cut / "lineage.json").read_text())["parts"]
    ranges = [entry["range"] for part in parts for entry in part["inputs"]]
    assert len(parts) >= 3 and ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(end == start for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False))
    stats, whole_stats = (json.loads((out / "stats.json").read_text()) for out in (cut, whole))
    _assert_balanced(stats)
    assert stats["documents_read"] == whole_stats["documents_read"] == 22
    read = [row["id"] for row in _read(cut, "documents") + _read(cut, "rejected")]
    assert len(read) == len(set(read)) == 22
    assert {row["id"] for row in _read(cut, "documents")} == {row["id"] for row in _read(whole, "documents")}
