"""Dataset versions on branches: the embedded store that works with no server.

Layout under the store root (default ``~/.curate/store``, or ``$CURATE_STORE``):

    objects/ab/cdef...        file contents, addressed by sha256 (a shard stored twice costs nothing)
    commits/<id>.json         {id, dataset, parent, message, created, files: {path: {sha256, size}}, stats}
    refs/<dataset>/heads/<branch>   a commit id
    refs/<dataset>/tags/<tag>       a commit id

A commit records a run's whole output folder (shards, manifest, stats, tokenizer, documents). Commit ids
are the sha256 of the commit's content, so the same output committed twice on the same parent is the same
commit. ``name@ref`` names a version: ref is a branch, a tag or a commit id (or a unique prefix of one).
lakeFS offers the same model (repositories, branches, commits) for teams; this store is the local default.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.core.errors import CurateError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_store_root() -> Path:
    return Path(os.environ.get("CURATE_STORE", Path.home() / ".curate" / "store")).expanduser()


def parse_spec(spec: str) -> tuple[str, str]:
    """``name@ref`` -> (name, ref); ``name`` alone means the main branch."""
    name, _, ref = spec.partition("@")
    return name, ref or "main"


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise CurateError(f"invalid {kind} name '{value}': use letters, digits, '.', '_' and '-'")
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Commit:
    id: str
    dataset: str
    parent: str | None
    message: str
    created: float
    files: dict[str, dict[str, Any]]
    stats: dict[str, Any]


class LocalStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_store_root()

    # ------------------------------------------------------------------------------------ refs

    def _ref_path(self, dataset: str, kind: str, name: str) -> Path:
        return self.root / "refs" / _check_name("dataset", dataset) / kind / _check_name(kind[:-1], name)

    def _write_ref(self, path: Path, commit_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(commit_id + "\n")
        temporary.replace(path)

    def branches(self, dataset: str) -> dict[str, str]:
        heads = self.root / "refs" / dataset / "heads"
        return {p.name: p.read_text().strip() for p in sorted(heads.glob("*"))} if heads.is_dir() else {}

    def tags(self, dataset: str) -> dict[str, str]:
        tags = self.root / "refs" / dataset / "tags"
        return {p.name: p.read_text().strip() for p in sorted(tags.glob("*"))} if tags.is_dir() else {}

    def datasets(self) -> list[str]:
        refs = self.root / "refs"
        return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []

    def resolve(self, dataset: str, ref: str) -> Commit:
        """A branch, tag, commit id or unique commit-id prefix -> the commit."""
        for kind in ("heads", "tags"):
            path = self._ref_path(dataset, kind, ref) if _NAME.match(ref) else None
            if path is not None and path.is_file():
                return self.commit(path.read_text().strip())
        candidates = [p.stem for p in (self.root / "commits").glob(f"{ref}*.json")] if len(ref) >= 6 else []
        matching = [c for c in candidates if self.commit(c).dataset == dataset]
        if len(matching) == 1:
            return self.commit(matching[0])
        known = ", ".join(sorted(self.branches(dataset)) + sorted(self.tags(dataset))) or "none"
        raise CurateError(f"{dataset}@{ref}: no such branch, tag or commit in {self.root} (refs: {known})")

    # --------------------------------------------------------------------------------- commits

    def commit(self, commit_id: str) -> Commit:
        path = self.root / "commits" / f"{commit_id}.json"
        if not path.is_file():
            raise CurateError(f"commit {commit_id} not found in {self.root}")
        return Commit(**json.loads(path.read_text()))

    def commit_dir(self, source: str | Path, dataset: str, branch: str = "main", message: str = "") -> Commit:
        """Store every file under ``source`` and move ``branch`` to a new commit of them."""
        source = Path(source)
        if not (source / "manifest.json").is_file() and not (source / "stats.json").is_file():
            raise CurateError(f"{source}: not a curate output folder (no manifest.json or stats.json)")
        head_path = self._ref_path(dataset, "heads", branch)
        parent = head_path.read_text().strip() if head_path.is_file() else None
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source).as_posix()
            if relative.startswith(".") or relative == "run.log":
                continue
            digest = _sha256(path)
            target = self.root / "objects" / digest[:2] / digest[2:]
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target.with_suffix(".tmp"))
                target.with_suffix(".tmp").replace(target)
            files[relative] = {"sha256": digest, "size": path.stat().st_size}
        stats_path = source / "stats.json"
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        body = {"dataset": dataset, "parent": parent, "message": message, "files": files}
        commit_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
        record = {"id": commit_id, "created": time.time(), "stats": _stats_digest(stats), **body}
        commits = self.root / "commits"
        commits.mkdir(parents=True, exist_ok=True)
        (commits / f"{commit_id}.json").write_text(json.dumps(record, indent=1, sort_keys=True))
        self._write_ref(head_path, commit_id)
        return Commit(**record)

    def log(self, dataset: str, ref: str = "main", limit: int = 50) -> list[Commit]:
        history = []
        commit: Commit | None = self.resolve(dataset, ref)
        while commit is not None and len(history) < limit:
            history.append(commit)
            commit = self.commit(commit.parent) if commit.parent else None
        return history

    def branch(self, dataset: str, new: str, from_ref: str = "main") -> Commit:
        path = self._ref_path(dataset, "heads", new)
        if path.exists():
            raise CurateError(f"{dataset}: branch '{new}' exists already")
        commit = self.resolve(dataset, from_ref)
        self._write_ref(path, commit.id)
        return commit

    def tag(self, dataset: str, tag: str, ref: str = "main") -> Commit:
        commit = self.resolve(dataset, ref)
        self._write_ref(self._ref_path(dataset, "tags", tag), commit.id)
        return commit

    def checkout(self, dataset: str, ref: str, dest: str | Path) -> Path:
        """Materialise a version as a folder (hard links where possible: instant, no extra space)."""
        commit = self.resolve(dataset, ref)
        dest = Path(dest)
        for relative, entry in commit.files.items():
            target = dest / relative
            if target.is_file() and target.stat().st_size == entry["size"]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            obj = self.root / "objects" / entry["sha256"][:2] / entry["sha256"][2:]
            try:
                os.link(obj, target)
            except OSError:
                shutil.copyfile(obj, target)
        return dest

    def diff(self, dataset: str, ref_a: str, ref_b: str) -> dict[str, Any]:
        a, b = self.resolve(dataset, ref_a), self.resolve(dataset, ref_b)
        changed = sorted(p for p in a.files.keys() & b.files.keys() if a.files[p] != b.files[p])
        return {
            "added": sorted(b.files.keys() - a.files.keys()),
            "removed": sorted(a.files.keys() - b.files.keys()),
            "changed": changed,
            "stats": {
                key: [a.stats.get(key), b.stats.get(key)] for key in sorted(a.stats.keys() | b.stats.keys())
            },
        }


def _stats_digest(stats: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth comparing between versions at a glance."""
    keys = ("documents_read", "documents_kept", "documents_rejected")
    return {key: stats[key] for key in keys if key in stats}


def resolve_data(spec: str, cache: str | Path | None = None) -> Path:
    """A folder path as is, or ``name@ref`` from the store checked out into a cache folder."""
    if Path(spec).exists() or "@" not in spec:
        if not Path(spec).exists():
            raise CurateError(f"{spec}: no such folder (and not a name@ref of the dataset store)")
        return Path(spec)
    dataset, ref = parse_spec(spec)
    store = LocalStore()
    commit = store.resolve(dataset, ref)
    target = Path(cache) if cache else store.root / "checkouts" / dataset / commit.id
    return store.checkout(dataset, commit.id, target)
