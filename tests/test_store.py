"""The embedded version store: commits, branches, tags, checkout, diff, merge, gc, and its integrity
(verified commits, locked heads, copying checkouts, refusals in one line)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import pytest

from curate.cli import main
from curate.core.errors import CurateError
from curate.store import LocalStore, resolve_data


def _output(folder, kept: int, shard: bytes, stats_extra: dict | None = None):
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "shard-00000.parquet").write_bytes(shard)
    stats = {
        "documents_kept": kept,
        "stages": {"quality": {"in": 10, "out": kept, "rejected": {"short": 10 - kept}}},
    }
    (folder / "stats.json").write_text(json.dumps({**stats, **(stats_extra or {})}))
    manifest = {
        "shards": [{"path": "shards/shard-00000.parquet", "sha256": hashlib.sha256(shard).hexdigest()}]
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
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
    assert diff["changed"] == ["manifest.json", "shards/shard-00000.parquet", "stats.json"]
    assert diff["stats"]["documents_kept"] == {"a": 10, "b": 7, "delta": -3}
    assert diff["stats"]["stages"]["quality"]["rejected"]["short"] == {"a": 0, "b": 3, "delta": 3}
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


def test_editing_a_checkout_never_changes_the_stored_version(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.commit_dir(_output(tmp_path / "a", 1, b"original"), "d")
    out = store.checkout("d", "main", tmp_path / "co")
    shard = out / "shards" / "shard-00000.parquet"
    assert shard.stat().st_nlink == 1  # a copy, not a hard link to the stored object
    shard.write_bytes(b"edited!!")
    again = store.checkout("d", "main", tmp_path / "co2")
    assert (again / "shards" / "shard-00000.parquet").read_bytes() == b"original"


def test_commit_refuses_shards_that_no_longer_match_their_manifest(tmp_path):
    store = LocalStore(tmp_path / "store")
    folder = _output(tmp_path / "a", 1, b"good shard")
    (folder / "shards" / "shard-00000.parquet").write_bytes(b"tampered!!")  # same size, other bytes
    with pytest.raises(CurateError, match=r"shard-00000.parquet: sha256 differs from manifest.json"):
        store.commit_dir(folder, "d")
    assert store.branches("d") == {}  # nothing moved


def test_checkout_refuses_a_non_empty_folder_unless_forced(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.commit_dir(_output(tmp_path / "a", 1, b"AAAA"), "d")
    dest = tmp_path / "co"
    (dest / "shards").mkdir(parents=True)
    (dest / "shards" / "shard-00000.parquet").write_bytes(b"BBBB")  # stale, same size
    (dest / "shards" / "shard-00009.parquet").write_bytes(b"old")  # not part of the version
    with pytest.raises(CurateError, match=r"co: folder is not empty \(2 file\(s\)\); .* --force"):
        store.checkout("d", "main", dest)
    store.checkout("d", "main", dest, force=True)
    assert (dest / "shards" / "shard-00000.parquet").read_bytes() == b"AAAA"
    assert not (dest / "shards" / "shard-00009.parquet").exists()


def test_a_damaged_object_is_caught_on_checkout(tmp_path):
    store = LocalStore(tmp_path / "store")
    commit = store.commit_dir(_output(tmp_path / "a", 1, b"AAAA"), "d")
    obj = store.object_path(commit.files["shards/shard-00000.parquet"]["sha256"])
    os.chmod(obj, 0o644)
    obj.write_bytes(b"rot!")
    with pytest.raises(CurateError, match="does not match its recorded sha256"):
        store.checkout("d", "main", tmp_path / "co")


def _commit_one(args):
    root, folder = args
    return LocalStore(root).commit_dir(folder, "d", "main", os.path.basename(folder)).id


def test_sixteen_concurrent_commits_all_land_in_one_line_of_history(tmp_path):
    folders = [str(_output(tmp_path / f"out{i:02d}", i, f"shard {i}".encode())) for i in range(16)]
    root = tmp_path / "store"
    with multiprocessing.get_context("fork").Pool(16) as pool:
        ids = pool.map(_commit_one, [(root, f) for f in folders])
    history = LocalStore(root).log("d", "main", limit=100)
    assert len(set(ids)) == 16
    assert {c.id for c in history} == set(ids)  # every commit reachable from the head, none lost
    assert history[-1].parent is None and all(
        a.parent == b.id for a, b in zip(history, history[1:], strict=False)
    )


def test_merge_fast_forwards_three_way_merges_and_refuses_conflicts(tmp_path):
    store = LocalStore(tmp_path / "store")
    base = store.commit_dir(_output(tmp_path / "a", 5, b"AAAA"), "d", "main", "base")
    store.branch("d", "x")
    changed = store.commit_dir(_output(tmp_path / "b", 4, b"BBBB"), "d", "x", "on x")
    assert store.merge("d", "x", "main").id == changed.id  # main had not moved: fast-forward
    store.branch("d", "y", base.id)
    store.commit_dir(_output(tmp_path / "c", 3, b"CCCC"), "d", "y", "on y")
    with pytest.raises(
        CurateError, match=r"d: merging y into main conflicts on 3 path\(s\).* main is unchanged"
    ):
        store.merge("d", "y", "main")
    assert store.resolve("d", "main").id == changed.id
    merged = store.merge("d", "y", "main", strategy="source-wins")
    assert merged.parent == changed.id and merged.merged == store.resolve("d", "y").id
    assert (
        store.checkout("d", "main", tmp_path / "co").joinpath("shards/shard-00000.parquet").read_bytes()
        == b"CCCC"
    )


def test_gc_is_a_dry_run_until_applied(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    store = LocalStore()
    store.commit_dir(_output(tmp_path / "a", 1, b"AAAA"), "d")
    orphan = store.object_path("ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"no commit names me")
    assert main(["versions", "gc"]) == 0
    assert "would remove (dry run; pass --apply) 1 object(s), 18 bytes" in capsys.readouterr().out
    assert orphan.exists()
    assert main(["versions", "gc", "--apply"]) == 0
    assert not orphan.exists()
    assert (
        store.checkout("d", "main", tmp_path / "co").joinpath("shards/shard-00000.parquet").read_bytes()
        == b"AAAA"
    )


@pytest.mark.parametrize("spec", ["web@******", "web@../../etc", "../x@main", "web@"])
def test_bad_refs_are_one_line_errors(tmp_path, monkeypatch, capsys, spec):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    LocalStore().commit_dir(_output(tmp_path / "a", 1, b"A"), "web")
    code = main(["versions", "log", spec])
    err = capsys.readouterr().err
    if spec == "web@":  # an empty ref means the main branch
        assert code == 0
        return
    assert code == 2 and err.count("\n") == 1 and err.startswith("curate: error: ")
    assert "Traceback" not in err
