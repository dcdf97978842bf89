"""Where a run writes while it runs, and how its results replace the previous ones.

A run writes into ``OUT/.staging/`` and its results replace the previous ones only after it succeeded
(manifest last), so a failed or interrupted run leaves the last good results as they were. A lock file
(``OUT/.curate.lock``) keeps a second run off an output folder that one is writing; a lock whose process
is gone (same host) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

from curate.core.errors import CurateError
from curate.core.files import is_local

STAGING = ".staging"
LOCK = ".curate.lock"
# What a run publishes, in the order it appears; the manifest last (it vouches for the rest) and first
# to go when older results are replaced.
RESULTS = (
    "documents",
    "rejected",
    "shards",
    "index",
    "tokenizer.json",
    "stats.json",
    "report.html",
    "lineage.json",
    "manifest.json",
)


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def output_lock(root: str) -> Iterator[None]:
    """Hold OUT/.curate.lock for the run; a second run on the same folder fails with one line.

    Local folders only (an exclusive create is what makes it safe); object stores have no such
    primitive, so a run there is not protected against a concurrent one."""
    if not is_local(root):
        yield
        return
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _read_lock(path)
            stale = holder.get("host") == me["host"] and isinstance(holder.get("pid"), int)
            if stale and not _alive(holder["pid"]):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # its run was killed: take the folder over
                continue
            who = (
                f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            )
            raise CurateError(
                f"{root}: another curate run is writing this output ({who}); wait for it to finish, "
                f"or delete {path} if that run is gone"
            ) from None
    else:
        raise CurateError(f"{root}: could not take the lock {path}; try again")
    with os.fdopen(fd, "w") as handle:
        json.dump(me, handle)
    try:
        yield
    finally:
        release_lock(root)


def release_lock(root: str) -> None:
    """Remove OUT/.curate.lock if this process holds it."""
    path = os.path.join(root, LOCK)
    if is_local(root) and _read_lock(path).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def abandon(root: str, pid: int) -> None:
    """After the process ``pid`` that ran into ``root`` was cancelled and has ended (its whole process
    group with it): what it staged and its lock go, as its own cleanup would have done had it finished
    before the kill (its Beam workers may still have been writing). A lock held by another process
    means the staging is that run's: nothing is touched then."""
    if not is_local(root):
        return
    holder = _read_lock(os.path.join(root, LOCK)).get("pid")
    if holder is not None and holder != pid:
        return
    discard(staging_path(root))
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(root, LOCK))


def staging_path(root: str) -> str:
    """Where a run stages its results: kept across a kill, so a segmented run can resume from it."""
    return _join(root, STAGING)


def staging_root(root: str) -> str:
    """A fresh staging folder inside the output (whatever a killed run left there is removed)."""
    staging = _join(root, STAGING)
    _delete(staging)
    if is_local(staging):
        os.makedirs(staging)
    return staging


def _objects_under(path: str) -> list[str]:
    """Every object under an object-store "folder", at any depth (Beam's ``*`` stops at '/')."""
    return [m.path for m in FileSystems.match([_join(path, "**")])[0].metadata_list]


def _present(path: str) -> bool:
    """A file or folder exists; on an object store a "folder" exists when an object is under it."""
    if FileSystems.exists(path):
        return True
    return not is_local(path) and bool(_objects_under(path))


def _delete(path: str) -> None:
    """Delete a file or a folder; on an object store a "folder" is every object under its prefix."""
    if not is_local(path):
        objects = _objects_under(path)
        if objects:
            FileSystems.delete(objects)
    if FileSystems.exists(path):
        FileSystems.delete([path])


def discard(staging: str) -> None:
    """Drop what a failed run staged."""
    _delete(staging)


def _move(source: str, target: str) -> None:
    """Move a file or folder; object stores have no folders, so their objects move one by one."""
    if is_local(source):
        os.replace(source, target)
        return
    objects = _objects_under(source)
    if objects:
        FileSystems.rename(objects, [target + path[len(source) :] for path in objects])
    elif FileSystems.exists(source):
        FileSystems.rename([source], [target])


def publish(staging: str, root: str) -> None:
    """Replace the previous results in ``root`` by the staged ones: old manifest first, new manifest last.

    Between the two steps the folder has no manifest, so nothing reads a mix of old and new results;
    a run killed in that window leaves no manifest, and the next run publishes again."""
    for name in reversed(RESULTS):
        _delete(_join(root, name))
    for name in RESULTS:
        if _present(_join(staging, name)):
            _move(_join(staging, name), _join(root, name))
    _delete(staging)
