"""The embedded version store: commits, branches, tags, checkout, diff, and name@ref resolution."""

from __future__ import annotations

import json

import pytest

from curate.core.errors import CurateError
from curate.store import LocalStore, resolve_data


def _output(folder, kept: int, shard: bytes):
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "shard-00000.parquet").write_bytes(shard)
    (folder / "stats.json").write_text(json.dumps({"documents_kept": kept}))
    (folder / "manifest.json").write_text(json.dumps({"total_tokens": len(shard)}))
    return folder


def test_commit_branch_checkout_roundtrip(tmp_path):
    store = LocalStore(tmp_path / "store")
    first = store.commit_dir(_output(tmp_path / "v1", 10, b"AAAA"), "web", "main", "first")
    store.branch("web", "strict")
    second = store.commit_dir(_output(tmp_path / "v2", 7, b"BBBB"), "web", "strict", "stricter")
    assert second.parent == first.id
    assert store.resolve("web", "main").id == first.id
    assert store.resolve("web", "strict").id == second.id
    assert store.resolve("web", second.id[:8]).id == second.id
    out = store.checkout("web", "main", tmp_path / "co")
    assert (out / "shards" / "shard-00000.parquet").read_bytes() == b"AAAA"
    diff = store.diff("web", "main", "strict")
    assert diff["changed"] == ["shards/shard-00000.parquet", "stats.json"]  # same-size manifest
    assert diff["stats"]["documents_kept"] == [10, 7]
    assert [c.message for c in store.log("web", "strict")] == ["stricter", "first"]


def test_identical_content_is_stored_once(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.commit_dir(_output(tmp_path / "a", 1, b"same"), "d")
    store.commit_dir(_output(tmp_path / "b", 1, b"same"), "d", "other")
    objects = [p for p in (tmp_path / "store" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 3  # shard, stats, manifest: each content once


def test_unknown_ref_names_the_known_ones(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.commit_dir(_output(tmp_path / "a", 1, b"x"), "d")
    with pytest.raises(CurateError, match=r"d@nope: no such branch, tag or commit .* \(refs: main\)"):
        store.resolve("d", "nope")


def test_resolve_data_accepts_folders_and_name_at_ref(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    folder = _output(tmp_path / "a", 3, b"zz")
    assert resolve_data(str(folder)) == folder
    LocalStore().commit_dir(folder, "web")
    checked_out = resolve_data("web@main")
    assert (checked_out / "shards" / "shard-00000.parquet").read_bytes() == b"zz"
    with pytest.raises(CurateError, match="no such folder"):
        resolve_data(str(tmp_path / "missing"))
