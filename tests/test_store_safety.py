"""The embedded store under abuse: checkouts that would overlap the store or delete others' files, forged
commit records, a poisoned checkout cache, clashing and over-long names. Each is refused in one line, and
the store is left intact."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from curate.cli import main
from curate.core.errors import CurateError
from curate.versions import LocalStore, resolve_data


def _output(folder: Path, shards: dict[str, bytes], kept: int = 1) -> Path:
    (folder / "shards").mkdir(parents=True)
    for name, data in shards.items():
        (folder / "shards" / name).write_bytes(data)
    listed = [{"path": f"shards/{n}", "sha256": hashlib.sha256(d).hexdigest()} for n, d in shards.items()]
    (folder / "manifest.json").write_text(json.dumps({"shards": listed}))
    (folder / "stats.json").write_text(json.dumps({"documents_kept": kept}))
    return folder


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder holding the default store (~/.curate/store) with one dataset of two versions."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CURATE_STORE", raising=False)
    store = LocalStore()
    assert store.root == home / ".curate" / "store"
    store.commit_dir(_output(tmp_path / "v1", {"s-0.parquet": b"one"}), "web", "main", "first")
    store.commit_dir(_output(tmp_path / "v2", {"s-0.parquet": b"two", "s-1.parquet": b"2b"}), "web", "main")
    (home / "notes.txt").write_text("the user's own file")
    return home


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("curate: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "target",
    [".curate/store", ".curate/store/objects", ".curate/store/objects/new", ".curate", ".", "link-to-store"],
)
def test_a_checkout_that_overlaps_the_store_is_refused_even_forced(home, target, capsys):
    (home / "link-to-store").symlink_to(home / ".curate" / "store" / "refs")
    before = _tree(home)
    for force in ([], ["--force"]):
        err = _refused(["versions", "checkout", "web@main", str(home / target), *force], capsys)
        assert "overlaps the version store" in err
    assert _tree(home) == before
    assert main(["versions", "checkout", "web@main~", str(home.parent / "fresh")]) == 2  # a bad ref
    assert not (home.parent / "fresh").exists()
    assert main(["versions", "checkout", "web@main", str(home.parent / "fresh")]) == 0
    assert _tree(home.parent / "fresh")["shards/s-1.parquet"] == b"2b"


def test_a_folder_holding_anything_but_a_checkout_is_never_touched(home, tmp_path, capsys):
    for folder, content in (("mine", {"paper.tex": b"draft"}), ("deep", {"a/b/c.txt": b"x"})):
        for relative, data in content.items():
            (tmp_path / folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / relative).write_bytes(data)
        before = _tree(tmp_path / folder)
        err = _refused(["versions", "checkout", "web@main", str(tmp_path / folder), "--force"], capsys)
        assert "file(s) that no checkout wrote" in err and "never deletes" in err
        assert _tree(tmp_path / folder) == before


def test_force_replaces_only_what_the_previous_checkout_wrote(home, tmp_path, capsys):
    dest = tmp_path / "co"
    assert main(["versions", "checkout", "web@main", str(dest)]) == 0
    first = LocalStore().log("web", "main")[-1].id
    assert main(["versions", "checkout", f"web@{first}", str(dest), "--force"]) == 0
    assert _tree(dest).keys() == {
        ".curate-checkout.json",
        "manifest.json",
        "stats.json",
        "shards/s-0.parquet",
    }
    (dest / "shards" / "mine.txt").write_text("added by the user")  # now the folder holds a foreign file
    err = _refused(["versions", "checkout", "web@main", str(dest), "--force"], capsys)
    assert "shards/mine.txt" in err
    assert (dest / "shards" / "mine.txt").exists() and (
        dest / "shards" / "s-0.parquet"
    ).read_bytes() == b"one"


@pytest.mark.parametrize("planted", ["symlink", "forged-marker", "folder"])
def test_a_tampered_checkout_cannot_steer_deletion_outside_it(home, tmp_path, capsys, planted):
    dest, victim = tmp_path / "co", tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert main(["versions", "checkout", "web@main", str(dest)]) == 0
    if planted == "symlink":
        (dest / "shards" / "s-0.parquet").unlink()
        (dest / "shards" / "s-0.parquet").symlink_to(victim)
    elif planted == "folder":  # a folder (holding the user's file) where the checkout wrote a shard
        (dest / "shards" / "s-0.parquet").unlink()
        (dest / "shards" / "s-0.parquet").mkdir()
        (dest / "shards" / "s-0.parquet" / "victim.txt").write_text("keep me")
        victim = dest / "shards" / "s-0.parquet" / "victim.txt"
    else:
        marker = json.loads((dest / ".curate-checkout.json").read_text())
        marker["files"].append("../victim.txt")
        (dest / ".curate-checkout.json").write_text(json.dumps(marker))
    _refused(["versions", "checkout", "web@main", str(dest), "--force"], capsys)
    assert victim.read_text() == "keep me"


def test_a_failed_checkout_leaves_no_folder_and_the_previous_checkout_whole(home, tmp_path):
    store = LocalStore()
    head = store.resolve("web", "main")
    obj = store.object_path(head.files["shards/s-1.parquet"]["sha256"])
    os.chmod(obj, 0o644)
    obj.write_bytes(b"rot")
    with pytest.raises(CurateError, match="does not match its recorded sha256"):
        store.checkout("web", "main", tmp_path / "new" / "co")
    assert not (tmp_path / "new").exists()
    previous = store.checkout("web", head.parent, tmp_path / "co")
    before = _tree(previous)
    with pytest.raises(CurateError, match="does not match its recorded sha256"):
        store.checkout("web", "main", previous, force=True)
    assert _tree(previous) == before


@pytest.mark.parametrize("forgery", ["message", "file", "parent", "stats"])
def test_an_edited_commit_record_is_detected_on_read(home, tmp_path, capsys, forgery):
    store = LocalStore()
    head = store.resolve("web", "main")
    path = store.root / "commits" / f"{head.id}.json"
    record = json.loads(path.read_text())
    if forgery == "message":
        record["message"] = "approved by legal"
    elif forgery == "file":  # point a shard at another stored object (the first version's shard)
        record["files"]["shards/s-0.parquet"] = store.commit(head.parent).files["shards/s-0.parquet"]
    elif forgery == "parent":
        record["parent"] = None
    else:
        record["stats"]["documents_kept"] = 10**6
    path.write_text(json.dumps(record))
    for argv in (["log", "web@main"], ["show", "web@main"], ["checkout", "web@main", str(tmp_path / "co")]):
        err = _refused(["versions", *argv], capsys)
        assert f"does not match its id {head.id}" in err and "edited" in err
    assert not (tmp_path / "co").exists()


def test_commit_ids_are_the_hash_of_their_content(home, tmp_path):
    store = LocalStore()
    for commit in store.log("web", "main"):
        record = json.loads((store.root / "commits" / f"{commit.id}.json").read_text())
        body = {k: v for k, v in record.items() if k != "id"}
        assert commit.id == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def test_branches_and_tags_never_share_a_name(home, tmp_path, capsys):
    assert main(["versions", "tag", "web@main", "v1"]) == 0
    assert "'v1' is a tag" in _refused(["versions", "branch", "web@main", "v1"], capsys)
    assert "'main' is a branch" in _refused(["versions", "tag", "web@main", "main"], capsys)
    folder = _output(tmp_path / "v3", {"s-0.parquet": b"three"})
    assert "'v1' is a tag" in _refused(["versions", "commit", str(folder), "web@v1"], capsys)
    assert LocalStore().branches("web").keys() == {"main"} and LocalStore().tags("web").keys() == {"v1"}


@pytest.mark.parametrize(
    "argv",
    [
        ["branch", "web@main", "b" * 250],
        ["tag", "web@main", "t" * 101],
        ["commit", "FOLDER", "d" * 180 + "@main"],
        ["branch", "web@main", ".hidden"],
        ["tag", "web@main", "a/b"],
    ],
)
def test_invalid_names_fail_with_the_naming_rule(home, tmp_path, capsys, argv):
    folder = _output(tmp_path / "v3", {"s-0.parquet": b"three"})
    err = _refused(["versions", *[str(folder) if a == "FOLDER" else a for a in argv]], capsys)
    assert "name" in err and "1 to 100 letters, digits" in err and "File name too long" not in err


def test_a_cached_checkout_edited_in_place_is_rebuilt_from_the_objects(home, tmp_path):
    first = resolve_data("web@main")
    shard = first / "shards" / "s-1.parquet"
    assert shard.read_bytes() == b"2b" and shard.stat().st_mode & 0o222 == 0  # read-only
    with open(shard, "r+b") as handle:  # root may write anyway: the edit must be noticed
        handle.write(b"XX")
    assert resolve_data("web@main") == first and shard.read_bytes() == b"2b"
    os.link(shard, tmp_path / "hard-link")  # a hard link out of the cache (as appends once made)
    assert resolve_data("web@main") == first and (first / "shards" / "s-1.parquet").stat().st_nlink == 1
    (first / "shards" / "planted.parquet").write_bytes(b"extra")
    assert not (resolve_data("web@main") / "shards" / "planted.parquet").exists()


def test_a_folder_whose_shards_are_not_exactly_the_manifests_is_never_committed(home, tmp_path, capsys):
    folder = _output(tmp_path / "mixed", {"s-0.parquet": b"mine"})
    (folder / "shards" / "s-7.parquet").write_bytes(b"another run's shard")
    head = LocalStore().branches("web")["main"]
    err = _refused(["versions", "commit", str(folder), "web@main"], capsys)
    assert "shards/s-7.parquet: not listed in manifest.json" in err
    assert LocalStore().branches("web")["main"] == head
