"""Dataset versions behind one interface: the embedded store (default, no server) or a lakeFS repository.

Where a command takes a version it accepts ``NAME@REF`` (embedded dataset NAME), ``lakefs://REPO/REF``
or ``lakefs://REPO@REF``, or a bare ``REF`` of the repository named by ``--repo`` or ``$CURATE_REPO``
(``NAME`` or ``lakefs://REPO``). Readers (``curate train --data``, ``curate shards``) also take
``lakefs://REPO/REF/PATH`` and read it in place.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from curate.core.errors import CurateError
from curate.versions.base import Version, VersionStore, default_store_root
from curate.versions.embedded import EmbeddedRepository, LocalStore, parse_spec

__all__ = [
    "EmbeddedRepository",
    "LocalStore",
    "RemotePath",
    "Version",
    "VersionStore",
    "default_store_root",
    "local_view",
    "locate",
    "open_repository",
    "parse_spec",
    "resolve_data",
]

LAKEFS = "lakefs://"


def open_repository(uri: str) -> VersionStore:
    """``lakefs://REPO`` -> the lakeFS backend; anything else names a dataset of the embedded store."""
    if uri.startswith(LAKEFS):
        from curate.versions.lakefs import LakeFSRepository, parse_uri

        repo, ref, path = parse_uri(uri)
        if ref or path:
            raise CurateError(f"{uri}: a repository is lakefs://REPO (no ref or path here)")
        return LakeFSRepository(repo)
    if "://" in uri:
        raise CurateError(f"{uri}: unknown repository kind; use a dataset NAME or lakefs://REPO")
    return EmbeddedRepository(uri)


def default_repository(repo: str | None = None) -> str | None:
    return repo or os.environ.get("CURATE_REPO") or None


def locate(spec: str, repo: str | None = None) -> tuple[VersionStore, str]:
    """A version spec -> (repository, ref); see the module docstring for the forms."""
    if not spec:
        raise CurateError("empty version spec; give NAME@REF, lakefs://REPO/REF or a REF with --repo")
    if spec.startswith(LAKEFS):
        from curate.versions.lakefs import LakeFSRepository, parse_uri

        name, ref, path = parse_uri(spec)
        if path:
            raise CurateError(f"{spec}: names a file; give lakefs://REPO/REF")
        store = LakeFSRepository(name)
        return store, ref or store.default_branch()
    if "@" in spec:
        name, ref = parse_spec(spec)
        return open_repository(name), ref
    chosen = default_repository(repo)
    if chosen:
        return open_repository(chosen), spec
    return EmbeddedRepository(spec), "main"


def resolve_data(spec: str) -> Path | RemotePath:
    """A folder path as is; ``NAME@REF`` checked out (once, cached) from the embedded store;
    ``lakefs://REPO/REF[/PATH]`` read in place, pinned to the ref's commit."""
    if spec.startswith(LAKEFS):
        from curate.versions.lakefs import LakeFSRepository, parse_uri

        name, ref, path = parse_uri(spec)
        store = LakeFSRepository(name)
        commit = store.resolve(ref or store.default_branch())
        return RemotePath(store, commit.id, path, label=f"{LAKEFS}{name}/{ref}")
    if Path(spec).exists() or "@" not in spec:
        if not Path(spec).exists():
            raise CurateError(f"{spec}: no such folder (and not a NAME@REF or lakefs:// version)")
        return Path(spec)
    dataset, ref = parse_spec(spec)
    return EmbeddedRepository(dataset).cached_checkout(ref)


class RemotePath:
    """A file or folder inside one commit of a repository, with the few pathlib methods readers use
    (``/``, ``is_file``, ``read_text``, ``open``, ``glob``); files stream, nothing is downloaded whole."""

    def __init__(
        self,
        store: VersionStore,
        commit: str,
        path: str = "",
        label: str | None = None,
        listing: dict[str, Any] | None = None,
    ):
        self.store, self.commit, self.path = store, commit, path.strip("/")
        self.label = label or f"{store.name}/{commit}"
        self._listing = listing if listing is not None else {}

    def _files(self) -> dict[str, Any]:
        if not self._listing:
            self._listing.update(self.store.files(self.commit))
        return self._listing

    def __truediv__(self, part: str | os.PathLike[str]) -> RemotePath:
        joined = "/".join(p for p in (self.path, os.fspath(part).strip("/")) if p)
        return RemotePath(self.store, self.commit, joined, self.label, self._listing)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return "/".join(p for p in (self.label, self.path) if p)

    __repr__ = __str__

    def is_file(self) -> bool:
        return self.path in self._files()

    def exists(self) -> bool:
        prefix = self.path + "/"
        return self.is_file() or not self.path or any(p.startswith(prefix) for p in self._files())

    def is_dir(self) -> bool:
        return self.exists() and not self.is_file()

    def open(self, mode: str = "rb") -> BinaryIO:
        if mode not in ("r", "rb"):
            raise CurateError(f"{self}: versions are read-only")
        if not self.is_file():
            raise CurateError(f"{self}: no such file in this version")
        return self.store.open(self.commit, self.path)

    def read_bytes(self) -> bytes:
        with self.open() as handle:
            return handle.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def glob(self, pattern: str) -> list[RemotePath]:
        prefix = self.path + "/" if self.path else ""
        names = sorted(p[len(prefix) :] for p in self._files() if p.startswith(prefix))
        return [self / name for name in names if "/" not in name and fnmatch.fnmatch(name, pattern)]


@contextlib.contextmanager
def local_view(spec: str, patterns: tuple[str, ...]) -> Iterator[Path]:
    """A local folder for tools that need real files: a folder as is, ``NAME@REF`` as its cached checkout,
    ``lakefs://REPO/REF[/PATH]`` with just the files matching ``patterns`` streamed into a temporary
    folder (removed afterwards)."""
    resolved = resolve_data(spec)
    if isinstance(resolved, Path):
        yield resolved
        return
    from curate.versions.base import BLOCK, write_stream

    with tempfile.TemporaryDirectory(prefix="curate-version-") as folder:
        prefix = resolved.path + "/" if resolved.path else ""
        for name in sorted(resolved._files()):
            relative = name[len(prefix) :] if name.startswith(prefix) else None
            if relative and any(fnmatch.fnmatch(relative, p) for p in patterns):
                with (resolved / relative).open() as handle:
                    chunks = iter(functools.partial(handle.read, BLOCK), b"")
                    write_stream(chunks, Path(folder) / relative, None, f"{resolved}/{relative}")
        yield Path(folder)
