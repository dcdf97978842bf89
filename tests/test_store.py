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
from curate.versions import LocalStore, resolve_data


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


def test_checkout_replaces_a_previous_checkout_only_when_forced(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.commit_dir(_output(tmp_path / "a", 1, b"AAAA"), "d", "main")
    store.branch("d", "other")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes").mkdir()
    (tmp_path / "b" / "notes" / "extra.txt").write_text("only in the other version")
    store.commit_dir(_output(tmp_path / "b", 2, b"BBBB"), "d", "other")
    dest = tmp_path / "co"
    store.checkout("d", "other", dest)
    with pytest.raises(
        CurateError, match=r"co: holds a checkout of d@[0-9a-f]+ \(4 file\(s\)\); pass --force"
    ):
        store.checkout("d", "main", dest)
    store.checkout("d", "main", dest, force=True)
    assert (dest / "shards" / "shard-00000.parquet").read_bytes() == b"AAAA"
    assert not (dest / "notes").exists()  # the previous checkout's own file (and its folder) went
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        ".curate-checkout.json",
        "manifest.json",
        "shards/shard-00000.parquet",
        "stats.json",
    ]


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


def _run_output(folder, shards: list[bytes], documents: int = 0):
    """An output folder of several shards (and document files) that its manifest lists exactly."""
    (folder / "shards").mkdir(parents=True)
    (folder / "documents").mkdir()
    listed = []
    for i, shard in enumerate(shards):
        (folder / "shards" / f"shard-{i:05d}.parquet").write_bytes(shard)
        listed.append({"path": f"shards/shard-{i:05d}.parquet", "sha256": hashlib.sha256(shard).hexdigest()})
    for i in range(documents):
        (folder / "documents" / f"part-{i:05d}.parquet").write_bytes(
            b"docs %d of %s" % (i, folder.name.encode())
        )
    (folder / "stats.json").write_text(json.dumps({"documents_kept": len(shards)}))
    (folder / "manifest.json").write_text(json.dumps({"shards": listed}))
    return folder


def _listed_exactly(store, commit) -> bool:
    manifest = json.loads(store.object_path(commit.files["manifest.json"]["sha256"]).read_text())
    shards = {path for path in commit.files if path.startswith("shards/")}
    return shards == {s["path"] for s in manifest["shards"]} and all(
        commit.files[s["path"]]["sha256"] == s["sha256"] for s in manifest["shards"]
    )


def test_merge_fast_forwards_takes_one_whole_version_and_refuses_conflicts(tmp_path):
    store = LocalStore(tmp_path / "store")
    base = store.commit_dir(_run_output(tmp_path / "a", [b"A0"], 1), "d", "main", "base")
    store.branch("d", "x")
    changed = store.commit_dir(_run_output(tmp_path / "b", [b"B0", b"B1"], 2), "d", "x", "on x")
    assert store.merge("d", "x", "main").id == changed.id  # main had not moved: fast-forward
    store.branch("d", "y", base.id)
    on_y = store.commit_dir(_run_output(tmp_path / "c", [b"C0", b"C1", b"C2", b"C3"], 3), "d", "y", "on y")
    store.branch("d", "z", base.id)
    on_z = store.commit_dir(_run_output(tmp_path / "e", [b"E0"], 1), "d", "z", "on z")
    with pytest.raises(
        CurateError, match=r"d: merging y into main conflicts: both changed .* main is unchanged"
    ):
        store.merge("d", "y", "main")
    assert store.resolve("d", "main").id == changed.id
    merged = store.merge("d", "y", "main", strategy="source-wins")
    assert merged.parent == changed.id and merged.merged == on_y.id
    assert merged.files == on_y.files and merged.lineage == on_y.lineage and _listed_exactly(store, merged)
    kept = store.merge("d", "z", "main", strategy="dest-wins")  # main (y's 4 shards) against z's 1 shard
    assert kept.files == on_y.files and _listed_exactly(store, kept)
    store.branch("d", "w", on_z.id)
    taken = store.merge("d", "y", "w", strategy="source-wins")  # 1 shard + 1 document file against 4 + 3
    assert taken.files == on_y.files and _listed_exactly(store, taken)


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
