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
