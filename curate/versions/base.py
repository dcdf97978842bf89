"""What every version backend offers, and the checks they share.

A *version* is one committed snapshot of a run's output folder (shards, manifest, stats, tokenizer,
documents) with its lineage. Backends: the embedded store (curate.versions.embedded, no server) and lakeFS
(curate.versions.lakefs). Both verify an output against its manifest before anything is written, so a
folder whose shards no longer match their checksums can never become a version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from curate.core.errors import CurateError

MANIFEST = "manifest.json"
STATS = "stats.json"
SKIPPED = ("run.log",)  # a run's console log is not part of its result
BLOCK = 1 << 20
# What a checkout folder records about itself: the version it holds and every file it wrote.
CHECKOUT_MARKER = ".curate-checkout.json"
CHECKOUT_FORMAT = "curate.checkout/1"

# Dataset, branch and tag names: short enough that every file the store derives from them (refs, locks)
# stays under the filesystem's 255-byte name limit, and safe as one path component.
NAME_RULE = (
    "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit, not ending in .lock or .tmp"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SECRET = re.compile(r"secret|password|passwd|token|credential|private_key|access_key", re.IGNORECASE)


def valid_name(value: str) -> bool:
    return bool(_NAME.match(value or "")) and not value.endswith((".lock", ".tmp"))


def check_name(kind: str, value: str) -> str:
    """``value`` as a dataset, branch or tag name, or a CurateError stating the naming rule."""
    if not valid_name(value):
        shown = value if len(value or "") <= 40 else f"{value[:37]}... ({len(value)} characters)"
        raise CurateError(f"invalid {kind} name '{shown}': use {NAME_RULE}")
    return value


def redact_recipe(recipe: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The recipe without the runner options that carry secrets, and the keys dropped."""
    options = dict((recipe.get("runner") or {}).get("options") or {})
    dropped = sorted(key for key in options if _SECRET.search(key))
    if dropped:
        recipe = {
            **recipe,
            "runner": {**recipe["runner"], "options": {k: v for k, v in options.items() if k not in dropped}},
        }
    return recipe, [f"runner.options.{key}" for key in dropped]


def default_store_root() -> Path:
    """The embedded store's folder: $CURATE_STORE, else ~/.curate/store."""
    return Path(os.environ.get("CURATE_STORE", Path.home() / ".curate" / "store")).expanduser()


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
    """(sha256, md5, size) in one pass with a fixed-size buffer."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return sha.hexdigest(), md5.hexdigest(), size


def is_remote(folder: str | Path) -> bool:
    """An output folder on an object store (s3://, gs://), read through Beam's filesystems."""
    text = str(folder)
    return "://" in text and not text.startswith("file://")


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
    listed = manifest_files(manifest)
    folders = {path.rpartition("/")[0] for path in listed if "/" in path}
    unlisted = sorted(p for p in digests if p.rpartition("/")[0] in folders and p not in listed)
    if unlisted:
        raise CurateError(
            f"{where}/{unlisted[0]}: not listed in {MANIFEST} ({len(unlisted)} such file(s), another run's?);"
            " refusing to commit a folder whose shards are not exactly the manifest's"
        )
    for relative, entry in sorted(listed.items()):
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
            out[key] = count_delta(a.get(key), b.get(key))
    stages_a, stages_b = a.get("stages", {}), b.get("stages", {})
    stages: dict[str, Any] = {}
    for name in list(stages_a) + [s for s in stages_b if s not in stages_a]:
        sa, sb = stages_a.get(name, {}), stages_b.get(name, {})
        entry = {key: count_delta(sa.get(key), sb.get(key)) for key in ("in", "out")}
        reasons = sa.get("rejected", {}).keys() | sb.get("rejected", {}).keys()
        entry["rejected"] = {
            r: count_delta(sa.get("rejected", {}).get(r, 0), sb.get("rejected", {}).get(r, 0))
            for r in sorted(reasons)
        }
        stages[name] = entry
    if stages:
        out["stages"] = stages
    return out


def count_delta(a: Any, b: Any) -> dict[str, Any]:
    """{a, b, delta: b - a} (delta None unless both are numbers)."""
    numeric = isinstance(a, int | float) and isinstance(b, int | float)
    return {"a": a, "b": b, "delta": (b - a) if numeric else None}


def _overlaps(folder: Path, other: Path) -> bool:
    return folder == other or other in folder.parents or folder in other.parents


def previous_checkout(dest: Path) -> tuple[str, list[str]]:
    """(version, files) a checkout recorded in ``dest``; ("", []) when ``dest`` holds no checkout."""
    marker = dest / CHECKOUT_MARKER
    if not marker.is_file():
        return "", []
    record = read_json_file(marker)
    files = record.get("files") if isinstance(record, dict) else None
    if (
        record.get("format") != CHECKOUT_FORMAT
        or not isinstance(files, list)
        or not all(isinstance(f, str) and _inside(f) for f in files)
    ):
        raise CurateError(
            f"{marker}: not a checkout record curate wrote; remove the folder's contents by hand"
        )
    return str(record.get("version", "?")), files


def _inside(relative: str) -> bool:
    parts = relative.split("/")
    return bool(relative) and not relative.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _foreign_files(dest: Path, ours: set[str]) -> list[str]:
    """What ``dest`` holds that no checkout wrote: files not in ``ours``, links, anything not a plain file."""
    foreign = []
    for folder, dirs, names in os.walk(dest):
        here = Path(folder)
        for name in [*dirs, *names]:
            path = here / name
            relative = path.relative_to(dest).as_posix()
            if (
                path.is_symlink()
                or not (path.is_dir() or path.is_file())
                or (path.is_dir() and relative in ours)
            ):
                foreign.append(relative)  # (a folder where the checkout wrote a file is not the checkout's)
            elif path.is_file() and relative not in ours and not relative.startswith(CHECKOUT_MARKER):
                foreign.append(relative)  # (the marker, and its temporary copy while it is rewritten)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink() and not d.startswith(".curate-checkout-")]
    return sorted(foreign)


@contextlib.contextmanager
def checkout_target(
    dest: str | Path, force: bool, version: str, protected: Iterable[Path] = ()
) -> Iterator[Path]:
    """A staging folder (inside ``dest``) for a version's files; when the block succeeds they replace
    ``dest``'s previous checkout and a marker lists them, when it fails ``dest`` is as it was (and not
    created). ``dest`` must be absent, empty, or a previous checkout (replaced only with ``force``); it
    may not overlap a ``protected`` folder (the store); files no checkout wrote are never deleted."""
    dest = Path(dest).absolute()
    real = Path(os.path.realpath(dest))
    for folder in protected:
        store = Path(os.path.realpath(folder))
        if _overlaps(real, store):
            raise CurateError(
                f"{dest}: overlaps the version store at {store}; check out into a folder outside it"
            )
    if dest.exists() and not dest.is_dir():
        raise CurateError(f"{dest}: exists and is not a folder")
    held, previous = previous_checkout(dest) if dest.is_dir() else ("", [])
    if dest.is_dir():
        foreign = _foreign_files(dest, set(previous))
        if foreign:
            raise CurateError(
                f"{dest}: holds {len(foreign)} file(s) that no checkout wrote, e.g. {foreign[0]}; check out"
                " into an empty folder (or a previous checkout, with --force): curate never deletes files it"
                " did not write"
            )
        if previous and not force:
            raise CurateError(
                f"{dest}: holds a checkout of {held} ({len(previous)} file(s)); pass --force to replace it"
            )
    created = next((p for p in [*reversed(dest.parents), dest] if not p.exists()), None)
    dest.mkdir(parents=True, exist_ok=True)
    for leftover in dest.glob(".curate-checkout-*"):  # staging of a checkout that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".curate-checkout-"))
    try:
        yield staging
        written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        # The marker names the old and new files while they trade places, so an interrupted swap leaves
        # a folder that the next checkout recognises as its own.
        _write_marker(dest, version, sorted(set(previous) | set(written)))
        for relative in previous:
            (dest / relative).unlink(missing_ok=True)
            _remove_empty_parents(dest / relative, dest)
        for relative in written:
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, dest / relative)
        _write_marker(dest, version, written)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)  # it held nothing but this checkout's staging
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_marker(dest: Path, version: str, files: list[str]) -> None:
    temporary = dest / f".{CHECKOUT_MARKER}.{os.getpid()}.tmp"
    record = {"format": CHECKOUT_FORMAT, "version": version, "files": files}
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(dest / CHECKOUT_MARKER)


def _remove_empty_parents(path: Path, top: Path) -> None:
    for folder in path.parents:
        if folder == top or top not in folder.parents:
            return
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop here
            return


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
    """One repository of dataset versions (an embedded dataset, or a lakeFS repository): everything the
    command line, the run driver and the service may ask of any backend."""

    #: How the repository is named to users (``web`` or ``lakefs://web``); used in every message.
    name: str
    #: How the last ``commit_output`` moved its files, e.g. {"uploaded": 3, "unchanged": 2}; empty where
    #: the backend has nothing to say (the embedded store stores every file the same way).
    last_transfer: Mapping[str, int] = MappingProxyType({})

    @abstractmethod
    def default_branch(self) -> str:
        """The branch a bare repository name means."""

    @abstractmethod
    def check_commit_target(self, branch: str, folder: str) -> None:
        """Before a run writes ``folder`` to commit it on ``branch``: fail now on whatever would make that
        commit fail (an invalid name, a tag of that name, an unreachable repository, ...)."""

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
