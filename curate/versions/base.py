"""What every version backend offers, and the checks they share.

A *version* is one committed snapshot of a run's output folder (shards, manifest, stats, tokenizer,
documents) with its lineage. Backends: the embedded store (curate.versions.embedded, no server) and lakeFS
(curate.versions.lakefs). Both verify an output against its manifest before anything is written, so a
folder whose shards no longer match their checksums can never become a version.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from curate.core.errors import CurateError
from curate.core.files import hash_file as core_hash_file
from curate.core.files import is_local

MANIFEST = "manifest.json"
STATS = "stats.json"
SKIPPED = ("run.log",)  # a run's console log is not part of its result
BLOCK = 1 << 20

# Called with (relative path, bytes so far) while a commit stores files; tests use it to kill a commit.
ProgressHook = Callable[[str, int], None]


@dataclass(frozen=True)
class Version:
    """One commit, as any backend reports it."""

    id: str
    parents: tuple[str, ...]
    message: str
    created: float
    lineage: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def parent(self) -> str | None:
        return self.parents[0] if self.parents else None


@dataclass(frozen=True)
class LocalFile:
    relative: str
    path: Path
    size: int
    sha256: str
    md5: str


def hash_file(path: Path) -> tuple[str, str, int]:
    """(sha256, md5, size) in one pass."""
    (sha, md5), size = core_hash_file(path, "sha256", "md5")
    return sha, md5, size


def is_remote(folder: str | Path) -> bool:
    """An output folder on an object store (s3://, gs://), read through Beam's filesystems."""
    return not is_local(str(folder))


@dataclass(frozen=True)
class SourceFile:
    """One file of an output folder: its path in the version, where it is now (a local path or an
    object-store URL) and its size."""

    relative: str
    location: str
    size: int


def list_output(folder: str | Path) -> list[SourceFile]:
    """The files a version of ``folder`` holds, on local disk or an object store (listed, not read)."""
    if not is_remote(folder):
        local = Path(str(folder).removeprefix("file://"))
        return [
            SourceFile(p.relative_to(local).as_posix(), str(p), p.stat().st_size) for p in output_files(local)
        ]
    from apache_beam.io.filesystems import FileSystems

    root = str(folder).rstrip("/")
    try:
        found = FileSystems.match([root + "/**"])[0].metadata_list
    except Exception as error:  # each filesystem raises its own kind; the message is what matters
        reason = _first_line(error)
        raise CurateError(f"{root}: cannot list ({reason}); check the path and the credentials") from None
    files = []
    for meta in sorted(found, key=lambda m: m.path):
        relative = meta.path[len(root) + 1 :]
        parts = relative.split("/")
        if not relative or meta.path.endswith("/") or any(p.startswith(".") for p in parts):
            continue
        if relative not in SKIPPED:
            files.append(SourceFile(relative, meta.path, meta.size_in_bytes))
    if not {MANIFEST, STATS} & {f.relative for f in files}:
        raise CurateError(f"{root}: not a curate output folder (no {MANIFEST} or {STATS})")
    return files


def open_source(location: str) -> BinaryIO:
    """A streaming reader of one file of an output folder, local or on an object store."""
    if not is_remote(location):
        return open(location.removeprefix("file://"), "rb")
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.open(location, compression_type="uncompressed")
    except Exception as error:
        raise CurateError(f"{location}: cannot read ({_first_line(error)})") from None


def read_source_json(location: str) -> Any:
    """A small JSON file of an output folder (manifest, stats), local or on an object store."""
    try:
        with open_source(location) as handle:
            return json.loads(handle.read())
    except ValueError as error:
        raise CurateError(f"{location}: cannot read JSON ({error})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def output_files(folder: str | Path) -> list[Path]:
    """The files of an output folder that a version holds (hidden work files and run.log left out)."""
    root = Path(folder)
    if not (root / MANIFEST).is_file() and not (root / STATS).is_file():
        raise CurateError(f"{root}: not a curate output folder (no {MANIFEST} or {STATS})")
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or relative.as_posix() in SKIPPED:
            continue
        if path.is_symlink() or (path.exists() and not path.is_dir() and not path.is_file()):
            raise CurateError(f"{path}: not a regular file; an output folder holds only files and folders")
        if path.is_file():
            files.append(path)
    return files


def scan_output(folder: str | Path) -> list[LocalFile]:
    """Hash every file of an output folder and check it against its manifest; refuse any mismatch.

    The manifest names each shard's (and the tokenizer's) sha256; a shard edited, truncated or replaced
    after the run would otherwise be committed and trained on as if it were the run's."""
    root = Path(folder)
    scanned = []
    for path in output_files(root):
        sha, md5, size = hash_file(path)
        scanned.append(LocalFile(path.relative_to(root).as_posix(), path, size, sha, md5))
    check_against_manifest(root, {f.relative: f.sha256 for f in scanned})
    return scanned


_UNSET: Any = object()


def manifest_files(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """path -> {sha256, and bytes where recorded} of every file a manifest vouches for (shards, tokenizer)."""
    if not manifest:
        return {}
    expected = {
        s["path"]: {"sha256": s["sha256"], "bytes": s.get("bytes")}
        for s in manifest.get("shards", [])
        if "path" in s and "sha256" in s
    }
    tokenizer = manifest.get("tokenizer") or {}
    if tokenizer.get("path") and tokenizer.get("sha256"):
        expected[tokenizer["path"]] = {"sha256": tokenizer["sha256"], "bytes": None}
    return expected


def check_against_manifest(
    root: str | Path, digests: dict[str, str], manifest: dict[str, Any] | None = _UNSET
) -> None:
    """Refuse a commit whose shards (or tokenizer) are missing or differ from the manifest's sha256;
    ``manifest`` as already read (from the very bytes being committed), else read from ``root``."""
    if manifest is _UNSET:
        path = f"{str(root).rstrip('/')}/{MANIFEST}"
        if is_remote(root):
            from apache_beam.io.filesystems import FileSystems

            manifest = read_source_json(path) if FileSystems.exists(path) else None
        else:
            manifest = read_json_file(Path(path)) if Path(path).is_file() else None
    where = str(root).rstrip("/")
    for relative, entry in sorted(manifest_files(manifest).items()):
        if relative not in digests:
            raise CurateError(f"{where}/{relative}: listed in {MANIFEST} but missing; refusing to commit")
        if digests[relative] != entry["sha256"]:
            raise CurateError(
                f"{where}/{relative}: sha256 differs from {MANIFEST} (changed after the run); refusing to"
                " commit: re-run `curate run`, or `curate shards verify` to see what changed"
            )


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CurateError(f"{path}: cannot read JSON ({error})") from None


def stats_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per-stage in/out and rejection counts of two runs' stats.json, with b - a."""
    out: dict[str, Any] = {}
    for key in ("documents_read", "documents_kept", "documents_rejected"):
        if key in a or key in b:
            out[key] = _delta(a.get(key), b.get(key))
    stages_a, stages_b = a.get("stages", {}), b.get("stages", {})
    stages: dict[str, Any] = {}
    for name in list(stages_a) + [s for s in stages_b if s not in stages_a]:
        sa, sb = stages_a.get(name, {}), stages_b.get(name, {})
        entry = {key: _delta(sa.get(key), sb.get(key)) for key in ("in", "out")}
        reasons = sa.get("rejected", {}).keys() | sb.get("rejected", {}).keys()
        entry["rejected"] = {
            r: _delta(sa.get("rejected", {}).get(r, 0), sb.get("rejected", {}).get(r, 0))
            for r in sorted(reasons)
        }
        stages[name] = entry
    if stages:
        out["stages"] = stages
    return out


def _delta(a: Any, b: Any) -> dict[str, Any]:
    numeric = isinstance(a, int | float) and isinstance(b, int | float)
    return {"a": a, "b": b, "delta": (b - a) if numeric else None}


def prepare_destination(dest: Path, keep: set[str], force: bool) -> None:
    """A checkout goes into an empty (or new) folder; with ``force``, whatever is not part of the version
    is removed first, so no stale shard of another version survives next to the checked-out ones."""
    if dest.exists() and not dest.is_dir():
        raise CurateError(f"{dest}: exists and is not a folder")
    present = [p for p in dest.rglob("*") if not p.is_dir()] if dest.is_dir() else []
    if present and not force:
        raise CurateError(
            f"{dest}: folder is not empty ({len(present)} file(s)); choose an empty folder or pass --force"
            " to replace its contents with the version"
        )
    for path in present:
        if path.relative_to(dest).as_posix() not in keep:
            path.unlink()
    if dest.is_dir():
        for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()


def write_stream(
    chunks: Iterator[bytes], target: Path, expected_sha256: str | None, where: str
) -> tuple[int, str]:
    """Write chunks to ``target`` atomically (temp file + rename), checking the sha256 when known;
    returns (size, sha256)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part-{os.getpid()}")
    digest, size = hashlib.sha256(), 0
    try:
        with open(temporary, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        if expected_sha256 and digest.hexdigest() != expected_sha256:
            raise CurateError(f"{where}: content does not match its recorded sha256; the store is damaged")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return size, digest.hexdigest()


class VersionStore(ABC):
    """One repository of dataset versions (an embedded dataset, or a lakeFS repository)."""

    #: How the repository is named to users (``web`` or ``lakefs://web``); used in every message.
    name: str

    @abstractmethod
    def commit_output(
        self,
        folder: str | Path,
        branch: str,
        message: str,
        lineage: dict[str, Any] | None = None,
        run_id: str | None = None,
        on_progress: ProgressHook | None = None,
    ) -> Version:
        """Commit a verified output folder as the new content of ``branch`` (created if missing)."""

    @abstractmethod
    def resolve(self, ref: str) -> Version: ...

    @abstractmethod
    def log(self, ref: str, limit: int = 50) -> list[Version]: ...

    @abstractmethod
    def branch(self, new: str, from_ref: str) -> Version: ...

    @abstractmethod
    def tag(self, tag: str, ref: str) -> Version: ...

    @abstractmethod
    def branches(self) -> dict[str, str]: ...

    @abstractmethod
    def tags(self) -> dict[str, str]: ...

    @abstractmethod
    def files(self, ref: str) -> dict[str, dict[str, Any]]:
        """path -> {size, and sha256 or checksum} of a version."""

    @abstractmethod
    def open(self, ref: str, path: str) -> BinaryIO:
        """A seekable binary reader of one file of a version (streamed, not loaded whole)."""

    @abstractmethod
    def checkout(self, ref: str, dest: str | Path, force: bool = False) -> Path: ...

    @abstractmethod
    def merge(self, source: str, destination: str, message: str = "", strategy: str | None = None) -> Version:
        """Merge ref ``source`` into branch ``destination``; a conflict is an error unless ``strategy``
        (``source-wins`` / ``dest-wins``) says which side wins."""

    def read_json(self, ref: str, path: str) -> Any:
        with self.open(ref, path) as handle:
            try:
                return json.loads(handle.read())
            except ValueError as error:
                raise CurateError(f"{self.name}@{ref}/{path}: not valid JSON ({error})") from None

    def diff(self, ref_a: str, ref_b: str) -> dict[str, Any]:
        """Files added/removed/changed from a to b, and the per-stage stats of both with deltas."""
        a, b = self.files(ref_a), self.files(ref_b)
        stats_a = self.read_json(ref_a, STATS) if STATS in a else {}
        stats_b = self.read_json(ref_b, STATS) if STATS in b else {}
        return {
            "from": f"{self.name}@{ref_a}",
            "to": f"{self.name}@{ref_b}",
            "added": sorted(b.keys() - a.keys()),
            "removed": sorted(a.keys() - b.keys()),
            "changed": sorted(p for p in a.keys() & b.keys() if a[p] != b[p]),
            "stats": stats_delta(stats_a, stats_b),
        }
