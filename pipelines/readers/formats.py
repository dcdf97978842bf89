"""Which reader a file needs, and reading one file with it: WARC, WET, JSONL or Parquet.

Files open through Beam's FileSystems, so gs://, s3:// and every other filesystem Beam knows work the
same as local paths. Every reader yields documents and rejections, never raises for what a file holds.
"""

from __future__ import annotations

import fnmatch
import io
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from curate.core.errors import CurateError
from curate.core.files import check_confined, is_local
from curate.pipelines.readers.jsonl import read_jsonl
from curate.pipelines.readers.parquet import read_parquet
from curate.pipelines.readers.records import Document, InputConfig, describe, unreadable
from curate.pipelines.readers.warc import gzip_record_ranges, read_warc

_FORMAT_PATTERNS = [
    ("wet", ("*.wet", "*.wet.gz", "*.warc.wet", "*.warc.wet.gz")),
    ("warc", ("*.warc", "*.warc.gz", "*.arc.gz")),
    ("jsonl", ("*.jsonl", "*.jsonl.gz", "*.jsonl.zst", "*.json", "*.json.gz", "*.json.zst", "*.ndjson*")),
    ("parquet", ("*.parquet", "*.pq")),
]


def detect_format(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    for fmt, patterns in _FORMAT_PATTERNS:
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            return fmt
    raise CurateError(
        f"{path}: cannot tell the input format from the file name; set input.format "
        "(warc, wet, jsonl or parquet)"
    )


def read_file(path: str, cfg: InputConfig, byte_range: tuple[int, int] | None = None) -> Iterator[Document]:
    """Every document (or `unreadable`/`too_large` rejection) in one file, whatever its format (or, with
    ``byte_range``, in that part of a WARC/WET file: see record_ranges); with ``input.strict`` the first
    unreadable record fails the run instead."""
    for doc in _read_any(path, cfg, byte_range):
        if cfg.strict and doc.get("reason") == "unreadable":
            raise CurateError(f"{doc['read_error']} (input.strict is on: the run stops at a bad record)")
        yield doc


def _read_any(path: str, cfg: InputConfig, byte_range: tuple[int, int] | None) -> Iterator[Document]:
    fmt = cfg.format if cfg.format != "auto" else detect_format(path)
    if byte_range is not None and fmt not in ("warc", "wet"):
        raise CurateError(f"{path}: only WARC and WET files are read in byte ranges, not {fmt}")
    try:
        check_confined(path)  # under `curate serve`: a file swapped for a symlink since submission
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as error:
        yield unreadable(path, "open", describe(error))
        return
    with raw:
        if not raw.seekable():  # Parquet footers and member recovery need random access
            raw = io.BytesIO(raw.read())
        if fmt in ("warc", "wet"):
            yield from read_warc(raw, path, fmt, cfg, byte_range)
        elif fmt == "jsonl":
            yield from read_jsonl(raw, path, cfg)
        else:
            yield from read_parquet(raw, path, cfg)


def record_ranges(raw: BinaryIO, path: str, size: int, max_bytes: int) -> list[tuple[int, int]] | None:
    """Byte ranges of about ``max_bytes`` that cut a WARC.gz/WET.gz file at records (warc.py), or None
    for a file that is small or cannot be cut (plain WARC, JSONL, Parquet)."""
    if detect_format(path) not in ("warc", "wet"):
        return None
    return gzip_record_ranges(raw, path, size, max_bytes)


def expand_inputs(patterns: Iterable[str], output: str | None = None) -> list[str]:
    """Resolve paths and globs now, so a typo fails the run before any worker starts.

    A pattern that also matches files inside the run's own ``output`` folder is refused: the next run
    would read the previous run's output as input."""
    files: list[str] = []
    for pattern in patterns:
        matches = FileSystems.match([pattern])[0].metadata_list
        if not matches:
            raise CurateError(f"input '{pattern}' matches no file")
        found = sorted(m.path for m in matches)
        inside = [path for path in found if output is not None and _inside(path, output)]
        if inside and output is not None:
            folder = os.path.normpath(output) if is_local(output) else output
            raise CurateError(
                f"input '{pattern}' matches {len(inside)} file(s) inside the run's output folder "
                f"{folder} (e.g. {inside[0]}): narrow the pattern or write the output elsewhere"
            )
        files.extend(found)
    if not files:
        raise CurateError("no input given: set input.paths in the recipe or pass --input")
    return sorted(set(files))


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` lies in ``folder`` (local paths compared resolved, URLs as text)."""
    if is_local(path) and is_local(folder):
        real = os.path.realpath(path.removeprefix("file://"))
        root = os.path.realpath(folder.removeprefix("file://"))
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)
    return path.startswith(folder.rstrip("/") + "/")
