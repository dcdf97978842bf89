"""Output files that appear whole or not at all, on any filesystem Beam knows."""

from __future__ import annotations

import gzip
import io
from typing import BinaryIO


def write_atomic(path: str, payload: bytes) -> None:
    """Write through Beam's FileSystems (local, gs://, s3://) under a temporary name, then rename."""
    import uuid

    from apache_beam.io.filesystems import FileSystems

    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary, compression_type="uncompressed") as handle:
        handle.write(payload)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


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


# ----------------------------------------------------------------------------- any filesystem Beam knows


def is_local(path: str) -> bool:
    """A path on this machine's disk (not gs://, s3://, hdfs:// ...)."""
    return "://" not in path or path.startswith("file://")


def join(root: str, *parts: str) -> str:
    """``root/parts`` with '/' on every filesystem (an object store's keys use '/', whatever the OS)."""
    return "/".join([str(root).rstrip("/"), *parts])


def exists(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


def open_binary(path: str) -> BinaryIO:
    """A seekable binary reader (what pyarrow's ParquetFile wants for reading one row group at a time)."""
    if is_local(path):
        return open(path.removeprefix("file://"), "rb")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type="uncompressed")


def list_files(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; none is an empty list."""
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def local_copy(path: str) -> str:
    """A local file with ``path``'s bytes: ``path`` itself when local, else a copy fetched once per process
    into a private cache. Model and list files named by gs:// or s3:// reach every worker this way (the
    libraries that load them, fastText and KenLM, want a file on disk)."""
    if is_local(path):
        return path.removeprefix("file://")
    import hashlib
    import os
    import tempfile

    cache = os.path.join(tempfile.gettempdir(), f"curate-staged-{os.getpid()}")
    name = hashlib.sha256(path.encode("utf-8")).hexdigest()[:16] + "-" + path.rsplit("/", 1)[-1]
    target = os.path.join(cache, name)
    if not os.path.isfile(target):
        os.makedirs(cache, exist_ok=True)
        from apache_beam.io.filesystems import FileSystems

        partial = f"{target}.part"
        with FileSystems.open(path, compression_type="uncompressed") as source, open(partial, "wb") as sink:
            while block := source.read(1 << 22):
                sink.write(block)
        os.replace(partial, target)
    return target
