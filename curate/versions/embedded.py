"""The embedded version store: dataset versions on branches in a local folder, no server needed.

Layout under the store root (default ``~/.curate/store``, or ``$CURATE_STORE``):

    objects/ab/cdef...              file contents, addressed by sha256 (a shard stored twice costs nothing)
    commits/<id>.json               {id, dataset, parent, merged, message, created, files, stats, lineage}
    checkouts/<dataset>/<id>/       read-only copies that readers use (``resolve_data``), made once
    refs/<dataset>/heads/<branch>   a commit id
    refs/<dataset>/tags/<tag>       a commit id
    locks/                          flock files: one per branch (the head's compare-and-swap), one store-wide

Integrity: a commit hashes each file while copying it into objects/ and checks the hashes against the
output's manifest, so a shard changed after its run is refused. A commit's id is the sha256 of its record
(files, parents, message, lineage, stats), and reading a commit checks it, so an edited record (a forged
message, a file re-pointed at another object) is refused. Moving a branch happens under that
branch's lock, reading the head and writing the new one in one critical section: concurrent commits all
land, one after another, and none is lost. Checkouts copy (never hard-link) and check every byte against
its sha256, so editing a checked-out file cannot change a stored version; a checkout never overlaps the
store and never deletes a file it did not write (see ``checkout_target``). A version is one run's output
as a whole, so a merge never mixes two runs' files (see ``LocalStore.merge``). ``gc`` holds the store-wide
lock exclusively while commits hold it shared, so it never deletes the objects of a commit in flight.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from curate.core.errors import CurateError
from curate.versions.base import (
    BLOCK,
    MANIFEST,
    STATS,
    ProgressHook,
    Version,
    VersionStore,
    check_against_manifest,
    check_name,
    checkout_target,
    default_store_root,
    is_remote,
    list_output,
    open_source,
    valid_name,
    write_stream,
)

_HEX = re.compile(r"^[0-9a-f]{6,64}$")
CACHE_MARK = ".complete"  # in a cached checkout: what each file looked like when it was verified


def parse_spec(spec: str) -> tuple[str, str]:
    """``name@ref`` -> (name, ref); ``name`` alone means the main branch."""
    name, _, ref = spec.partition("@")
    return name, ref or "main"


def commit_id_of(record: dict[str, Any]) -> str:
    """The id a commit record must have: the sha256 of everything in it but the id."""
    body = {key: value for key, value in record.items() if key != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _legacy_id_of(record: dict[str, Any]) -> str:
    """Ids of commits written before the stats digest was hashed too (20 hex digits)."""
    body = {key: value for key, value in record.items() if key not in ("id", "stats")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Commit:
    id: str
    dataset: str
    parent: str | None
    message: str
    created: float
    files: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    merged: str | None = None  # second parent of a merge commit
    lineage: dict[str, Any] = field(default_factory=dict)

    def version(self) -> Version:
        parents = tuple(p for p in (self.parent, self.merged) if p)
        return Version(self.id, parents, self.message, self.created, self.lineage, self.stats)


class LocalStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_store_root()

    # ----------------------------------------------------------------------------------- locks

    @contextlib.contextmanager
    def _lock(self, name: str, shared: bool = False) -> Iterator[None]:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # ------------------------------------------------------------------------------------ refs

    def _ref_path(self, dataset: str, kind: str, name: str) -> Path:
        return self.root / "refs" / check_name("dataset", dataset) / kind / check_name(kind[:-1], name)

    def _write_ref(self, path: Path, commit_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(commit_id + "\n")
        temporary.replace(path)

    def _read_refs(self, dataset: str, kind: str) -> dict[str, str]:
        folder = self.root / "refs" / check_name("dataset", dataset) / kind
        if not folder.is_dir():
            return {}
        return {p.name: p.read_text().strip() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}

    def branches(self, dataset: str) -> dict[str, str]:
        return self._read_refs(dataset, "heads")

    def tags(self, dataset: str) -> dict[str, str]:
        return self._read_refs(dataset, "tags")

    def datasets(self) -> list[str]:
        refs = self.root / "refs"
        return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []

    def resolve(self, dataset: str, ref: str) -> Commit:
        """A branch, tag, commit id or unique commit-id prefix -> the commit."""
        check_name("dataset", dataset)
        if not valid_name(ref):
            raise CurateError(
                f"{dataset}@{ref}: not a valid ref; give a branch, a tag or a commit id (letters, digits,"
                " '.', '_', '-')"
            )
        for kind in ("heads", "tags"):
            path = self._ref_path(dataset, kind, ref)
            if path.is_file():
                return self.commit(path.read_text().strip())
        matching = []
        if _HEX.match(ref):
            for path in (self.root / "commits").glob(f"{ref}*.json"):
                if self.commit(path.stem).dataset == dataset:
                    matching.append(path.stem)
        if len(matching) == 1:
            return self.commit(matching[0])
        if len(matching) > 1:
            raise CurateError(f"{dataset}@{ref}: commit prefix is ambiguous ({len(matching)} commits)")
        known = ", ".join(sorted(self.branches(dataset)) + sorted(self.tags(dataset))) or "none"
        raise CurateError(f"{dataset}@{ref}: no such branch, tag or commit in {self.root} (refs: {known})")

    # --------------------------------------------------------------------------------- commits

    def commit(self, commit_id: str) -> Commit:
        """A commit record, checked against its id (which is the hash of its content)."""
        path = self.root / "commits" / f"{commit_id}.json"
        if not _HEX.match(commit_id) or not path.is_file():
            raise CurateError(f"commit {commit_id} not found in {self.root}")
        try:
            record = json.loads(path.read_text())
            commit = Commit(**record)
        except (ValueError, TypeError) as error:
            raise CurateError(f"{path}: not a commit record ({error}); the store is damaged") from None
        expected = commit_id_of(record) if len(commit_id) != 20 else _legacy_id_of(record)
        if record.get("id") != commit_id or expected != commit_id:
            raise CurateError(
                f"{path}: the record does not match its id {commit_id} (it was edited after the commit: its"
                " message, files, parents or lineage are not what was committed); the store is damaged,"
                " restore the file from a backup"
            )
        return commit

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256[2:]

    def _store_file(self, location: str) -> tuple[str, int]:
        """Copy one file (local, or streamed from an object store) into objects/ while hashing it (one read:
        what is hashed is what is stored)."""
        staging = self.root / "objects" / "incoming"
        staging.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=staging)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(handle, "wb") as out, open_source(location) as source:
                while block := source.read(BLOCK):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
            sha = digest.hexdigest()
            target = self.object_path(sha)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(temporary, 0o444)
                os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return sha, size

    def commit_dir(
        self,
        source: str | Path,
        dataset: str,
        branch: str = "main",
        message: str = "",
        lineage: dict[str, Any] | None = None,
        on_progress: ProgressHook | None = None,
    ) -> Commit:
        """Store every file under ``source`` (a local folder, or one on an object store streamed through
        Beam's filesystems) and move ``branch`` to a new commit of them once they match the manifest that
        was stored with them; the head is read and moved under the branch's lock."""
        if not is_remote(source):
            source = Path(str(source).removeprefix("file://"))
        head_path = self._ref_path(dataset, "heads", branch)
        files: dict[str, dict[str, Any]] = {}
        with self._lock("store", shared=True):
            self.check_branch_name(dataset, branch)
            for item in list_output(source):
                sha, size = self._store_file(item.location)
                files[item.relative] = {"sha256": sha, "size": size}
                if on_progress:
                    on_progress(item.relative, size)
            manifest_entry = files.get(MANIFEST)
            manifest = self._stored_json(manifest_entry) if manifest_entry else None
            check_against_manifest(source, {p: f["sha256"] for p, f in files.items()}, manifest)
            stats_entry = files.get(STATS)
            stats = self._stored_json(stats_entry) if stats_entry else {}
            with self._lock(f"{dataset}.heads.{branch}"):
                self.check_branch_name(dataset, branch)
                parent = head_path.read_text().strip() if head_path.is_file() else None
                record = self._write_commit(dataset, parent, None, message, files, stats, lineage or {})
                self._write_ref(head_path, record.id)
        return record

    def _stored_json(self, entry: dict[str, Any]) -> Any:
        try:
            return json.loads(self.object_path(entry["sha256"]).read_text())
        except ValueError as error:
            raise CurateError(f"{self.object_path(entry['sha256'])}: not valid JSON ({error})") from None

    def _write_commit(
        self,
        dataset: str,
        parent: str | None,
        merged: str | None,
        message: str,
        files: dict[str, dict[str, Any]],
        stats: dict[str, Any],
        lineage: dict[str, Any],
    ) -> Commit:
        body = {
            "dataset": dataset,
            "parent": parent,
            "merged": merged,
            "message": message,
            "files": files,
            "lineage": lineage,
            "created": time.time(),
            "stats": _stats_digest(stats),
        }
        commit_id = commit_id_of(body)
        record: dict[str, Any] = {"id": commit_id, **body}
        commits = self.root / "commits"
        commits.mkdir(parents=True, exist_ok=True)
        temporary = commits / f".{commit_id}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        temporary.replace(commits / f"{commit_id}.json")
        return Commit(**record)

    def log(self, dataset: str, ref: str = "main", limit: int = 50) -> list[Commit]:
        history: list[Commit] = []
        commit: Commit | None = self.resolve(dataset, ref)
        while commit is not None and len(history) < limit:
            history.append(commit)
            commit = self.commit(commit.parent) if commit.parent else None
        return history

    def check_branch_name(self, dataset: str, branch: str) -> None:
        """A branch name follows the naming rule and is not a tag's (refs resolve branches first, so the
        tag would become unreachable); an existing branch of that name is fine."""
        if (
            self._ref_path(dataset, "tags", branch).is_file()
            and not self._ref_path(dataset, "heads", branch).is_file()
        ):
            raise CurateError(f"{dataset}: '{branch}' is a tag; a branch may not share a tag's name")

    def branch(self, dataset: str, new: str, from_ref: str = "main") -> Commit:
        path = self._ref_path(dataset, "heads", new)
        commit = self.resolve(dataset, from_ref)
        with self._lock(f"{dataset}.heads.{new}"):
            if path.exists():
                raise CurateError(f"{dataset}: branch '{new}' exists already")
            self.check_branch_name(dataset, new)
            self._write_ref(path, commit.id)
        return commit

    def tag(self, dataset: str, tag: str, ref: str = "main") -> Commit:
        path = self._ref_path(dataset, "tags", tag)
        commit = self.resolve(dataset, ref)
        with self._lock(f"{dataset}.heads.{tag}"):  # the branch's lock: no branch of this name meanwhile
            if self._ref_path(dataset, "heads", tag).exists():
                raise CurateError(f"{dataset}: '{tag}' is a branch; a tag may not share a branch's name")
            if path.exists() and path.read_text().strip() != commit.id:
                raise CurateError(f"{dataset}: tag '{tag}' exists already (on {path.read_text().strip()})")
            self._write_ref(path, commit.id)
        return commit

    def checkout(self, dataset: str, ref: str, dest: str | Path, force: bool = False) -> Path:
        """Materialise a version as a folder: copies, each checked against its sha256, into a folder that
        is empty, new or a previous checkout (``force``), never overlapping the store."""
        commit = self.resolve(dataset, ref)
        with checkout_target(dest, force, f"{dataset}@{commit.id}", protected=[self.root]) as staging:
            self.write_files(dataset, commit, staging)
        return Path(dest)

    def write_files(self, dataset: str, commit: Commit, folder: Path) -> None:
        """A commit's files into ``folder``, each checked against its sha256 (no checks on the folder)."""
        for relative, entry in sorted(commit.files.items()):
            self._copy_out(entry, folder / relative, f"{dataset}@{commit.id}/{relative}")

    def _copy_out(self, entry: dict[str, Any], target: Path, where: str) -> None:
        obj = self.object_path(entry["sha256"])
        if not obj.is_file():
            raise CurateError(f"{where}: stored object {obj} is missing; the store is damaged")
        with open(obj, "rb") as handle:
            write_stream(iter(lambda: handle.read(BLOCK), b""), target, entry["sha256"], where)

    def merge(
        self, dataset: str, source: str, destination: str, message: str = "", strategy: str | None = None
    ) -> Commit:
        """Three-way merge of ``source`` into branch ``destination``, as lakeFS merges (a path changed on one
        side only takes that side's content; changed differently on both is a conflict unless ``strategy``
        picks a side), with one rule of curate's: a run's output is indivisible. When both sides changed
        since their merge base and either brings a new run (its manifest.json or stats.json changed), the
        result is one side's whole version, the one ``strategy`` names (without one: a conflict), never
        one run's manifest and stats beside another run's shards and documents."""
        src = self.resolve(dataset, source)
        head_path = self._ref_path(dataset, "heads", destination)
        if not head_path.is_file():
            raise CurateError(f"{dataset}@{destination}: no such branch to merge into in {self.root}")
        with self._lock(f"{dataset}.heads.{destination}"):
            dst = self.commit(head_path.read_text().strip())
            if dst.id == src.id or src.id in self._ancestors(dst.id):
                return dst  # already contains source
            if dst.id in self._ancestors(src.id):
                self._write_ref(head_path, src.id)  # fast-forward
                return src
            base = self._merge_base(src.id, dst.id)
            base_files = self.commit(base).files if base else {}
            new_run = any(
                side.files.get(path) != base_files.get(path)
                for side in (src, dst)
                for path in (MANIFEST, STATS)
            )
            if new_run and base_files not in (src.files, dst.files):
                merged, winner = self._whole_version(dataset, source, destination, src, dst, strategy)
            else:
                merged, winner = self._merge_paths(
                    dataset, source, destination, base_files, src, dst, strategy
                )
            stats_entry = merged.get(STATS)
            stats = self._stored_json(stats_entry) if stats_entry else {}
            text = message or f"Merge '{source}' into '{destination}'"
            record = self._write_commit(dataset, dst.id, src.id, text, merged, stats, winner.lineage)
            self._write_ref(head_path, record.id)
        return record

    @staticmethod
    def _merge_paths(
        dataset: str,
        source: str,
        destination: str,
        base_files: dict[str, Any],
        src: Commit,
        dst: Commit,
        strategy: str | None,
    ) -> tuple[dict[str, Any], Commit]:
        merged, conflicts = {}, []
        for path in sorted(base_files.keys() | src.files.keys() | dst.files.keys()):
            b, s, d = base_files.get(path), src.files.get(path), dst.files.get(path)
            if s in (d, b):
                chosen = d
            elif d == b:
                chosen = s
            elif strategy in ("source-wins", "dest-wins"):
                chosen = s if strategy == "source-wins" else d
            else:
                conflicts.append(path)
                continue
            if chosen is not None:
                merged[path] = chosen
        if conflicts:
            raise CurateError(
                f"{dataset}: merging {source} into {destination} conflicts on {len(conflicts)} path(s), e.g."
                f" {conflicts[0]}; {destination} is unchanged (use --strategy source-wins or dest-wins, or"
                " resolve on a branch)"
            )
        return merged, src if merged == src.files else dst

    @staticmethod
    def _whole_version(
        dataset: str, source: str, destination: str, src: Commit, dst: Commit, strategy: str | None
    ) -> tuple[dict[str, Any], Commit]:
        if strategy not in ("source-wins", "dest-wins"):
            differing = sorted(
                p for p in src.files.keys() | dst.files.keys() if src.files.get(p) != dst.files.get(p)
            )
            raise CurateError(
                f"{dataset}: merging {source} into {destination} conflicts: both changed and one holds a new"
                f" run ({len(differing)} path(s) differ, e.g. {differing[0]}); a run's output is never"
                f" mixed with another's; {destination} is unchanged (use --strategy source-wins or dest-wins"
                " to keep one side's whole version)"
            )
        winner = src if strategy == "source-wins" else dst
        return dict(winner.files), winner

    def _ancestors(self, commit_id: str) -> set[str]:
        seen, todo = set(), [commit_id]
        while todo:
            current = self.commit(todo.pop())
            for parent in (current.parent, current.merged):
                if parent and parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def _merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor, as lakeFS (and git-merge-base) choose it: a common ancestor that is no
        ancestor of another one; of several (criss-cross merges), the newest. Not the nearest to ``a``: a
        merged branch can bring a newer common ancestor from further away (tests/test_merge_semantics)."""
        common = (self._ancestors(a) | {a}) & (self._ancestors(b) | {b})
        older = set().union(*(self._ancestors(c) for c in common)) if common else set()
        best = common - older
        return max(best, key=lambda c: (self.commit(c).created, c)) if best else None

    def diff(self, dataset: str, ref_a: str, ref_b: str) -> dict[str, Any]:
        return EmbeddedRepository(dataset, self).diff(ref_a, ref_b)

    def gc(self, apply: bool = False) -> dict[str, Any]:
        """Objects that no commit references (and leftovers of interrupted commits); removed with apply."""
        with self._lock("store"):
            referenced: set[str] = set()
            for path in (self.root / "commits").glob("*.json"):
                referenced.update(entry["sha256"] for entry in json.loads(path.read_text())["files"].values())
            garbage = []
            objects = self.root / "objects"
            for path in objects.rglob("*") if objects.is_dir() else []:
                if not path.is_file():
                    continue
                relative = path.relative_to(objects).parts
                sha = relative[0] + relative[1] if len(relative) == 2 and relative[0] != "incoming" else None
                if sha is None or sha not in referenced:
                    garbage.append(path)
            freed = sum(p.stat().st_size for p in garbage)
            if apply:
                for path in garbage:
                    path.unlink()
            return {"objects": len(garbage), "bytes": freed, "removed": apply, "referenced": len(referenced)}


def _stats_digest(stats: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth comparing between versions at a glance."""
    keys = ("documents_read", "documents_kept", "documents_rejected")
    return {key: stats[key] for key in keys if key in stats}


class EmbeddedRepository(VersionStore):
    """One dataset of the embedded store, behind the backend interface."""

    def __init__(self, dataset: str, store: LocalStore | None = None):
        self.dataset = check_name("dataset", dataset)
        self.store = store or LocalStore()
        self.name = dataset

    def commit_output(
        self,
        folder: str | Path,
        branch: str,
        message: str,
        lineage: dict[str, Any] | None = None,
        run_id: str | None = None,
        on_progress: ProgressHook | None = None,
    ) -> Version:
        commit = self.store.commit_dir(folder, self.dataset, branch, message, lineage, on_progress)
        return commit.version()

    def resolve(self, ref: str) -> Version:
        return self.store.resolve(self.dataset, ref).version()

    def log(self, ref: str, limit: int = 50) -> list[Version]:
        return [c.version() for c in self.store.log(self.dataset, ref, limit)]

    def branch(self, new: str, from_ref: str) -> Version:
        return self.store.branch(self.dataset, new, from_ref).version()

    def tag(self, tag: str, ref: str) -> Version:
        return self.store.tag(self.dataset, tag, ref).version()

    def branches(self) -> dict[str, str]:
        return self.store.branches(self.dataset)

    def tags(self) -> dict[str, str]:
        return self.store.tags(self.dataset)

    def files(self, ref: str) -> dict[str, dict[str, Any]]:
        return dict(self.store.resolve(self.dataset, ref).files)

    def open(self, ref: str, path: str) -> BinaryIO:
        commit = self.store.resolve(self.dataset, ref)
        entry = commit.files.get(path)
        if entry is None:
            raise CurateError(f"{self.dataset}@{ref}: no file {path} in commit {commit.id}")
        return open(self.store.object_path(entry["sha256"]), "rb")

    def checkout(self, ref: str, dest: str | Path, force: bool = False) -> Path:
        return self.store.checkout(self.dataset, ref, dest, force)

    def merge(self, source: str, destination: str, message: str = "", strategy: str | None = None) -> Version:
        return self.store.merge(self.dataset, source, destination, message, strategy).version()

    def default_branch(self) -> str:
        return "main"

    def check_commit_target(self, branch: str, folder: str) -> None:
        check_name("branch", branch)
        self.store.check_branch_name(self.dataset, branch)

    def cached_checkout(self, ref: str) -> Path:
        """A read-only copy of a version under the store for readers, made once per commit (atomically)
        and checked before every use against what was recorded when its files were verified against the
        objects: each file's size, inode and change time (an edit in place, a hard link or a replacement
        changes them, whoever made it). A cache that differs is rebuilt from the objects."""
        commit = self.store.resolve(self.dataset, ref)
        target = self.store.root / "checkouts" / self.dataset / commit.id
        if _cache_intact(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{commit.id}-"))
        stale = target.parent / f".{commit.id}-stale-{os.getpid()}"
        try:
            self.store.write_files(self.dataset, commit, staging)
            signatures = {}
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                os.chmod(path, 0o444)
                signatures[path.relative_to(staging).as_posix()] = _signature(path)
            (staging / CACHE_MARK).write_text(json.dumps({"commit": commit.id, "files": signatures}))
            if target.exists():
                target.rename(stale)  # a damaged or pre-1.0 (hard-linked, unrecorded) cache of this commit
            try:
                staging.rename(target)
            except OSError:
                if not _cache_intact(target):  # not a concurrent twin that won the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(stale, ignore_errors=True)
        return target


def _signature(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_ino, status.st_ctime_ns]


def _cache_intact(folder: Path) -> bool:
    """Whether a cached checkout holds exactly the files recorded when it was made, untouched since."""
    try:
        recorded = json.loads((folder / CACHE_MARK).read_text())["files"]
        present = {
            p.relative_to(folder).as_posix(): p
            for p in folder.rglob("*")
            if not p.is_dir() and p.name != CACHE_MARK
        }
        return recorded.keys() == present.keys() and all(
            not path.is_symlink() and _signature(path) == recorded[relative]
            for relative, path in present.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
