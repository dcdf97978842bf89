"""Read crawl files into documents: WARC (HTML), WET, JSONL(.gz/.zst) and Parquet.

Each reader is a generator over one file that yields document dicts. A record that cannot be read is
yielded as a rejection (stage ``read``, reason ``unreadable``, the file and byte offset or line in
``read_error``), never raised: one bad record must not cost a run its other records, and the count of
what was lost must appear in the stats. Files open through Beam's FileSystems, so gs://, s3:// and every
other filesystem Beam knows work the same as local paths.
"""

from __future__ import annotations

import fnmatch
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Literal

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from pydantic import Field

from curate.core.config import Strict
from curate.core.errors import CurateError
from curate.core.files import open_text
from curate.core.ids import document_id
from curate.pipelines.progress import flush, report_bytes, report_read
from curate.pipelines.stage import REJECTED_TAG, StageTransform


class InputConfig(Strict):
    paths: list[str] = Field(default_factory=list, description="Files or globs; anything Beam can open.")
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = "auto"
    id_field: str = "id"
    url_field: str = "url"
    text_field: str = "text"


Document = dict[str, Any]
READ_STAGE = "read"

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


def unreadable(path: str, where: str, message: str, url: str | None = None) -> Document:
    """A rejection for a record that could not be read; its id is stable so reruns agree."""
    return {
        "id": document_id(None, f"{path}@{where}", ""),
        "url": url,
        "text": "",
        "source": path,
        "metadata": {},
        "read_error": f"{path}: {where}: {message}",
        "stage": READ_STAGE,
        "reason": "unreadable",
    }


# ---------------------------------------------------------------------------------------------- WARC


def _gzip_tail_problem(raw: BinaryIO, start: int) -> int | None:
    """Offset of an incomplete gzip member at or after ``start``, or None if the file ends cleanly.

    FastWARC stops without a word at a truncated final record; decompressing the members from the last
    good record onward is cheap (one record) and tells us whether bytes were left unread.
    """
    raw.seek(start)
    data = raw.read()
    offset = 0
    while offset < len(data):
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            decompressor.decompress(data[offset:])
        except zlib.error:
            return start + offset
        if not decompressor.eof:
            return start + offset
        offset = len(data) - len(decompressor.unused_data)
    return None


def _next_gzip_member(raw: BinaryIO, after: int) -> int | None:
    """Offset of the next gzip member header after a corrupt region, to resume reading there."""
    raw.seek(after)
    data = raw.read()
    index = data.find(b"\x1f\x8b\x08", 1)
    while index != -1:
        try:
            zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(data[index : index + 65536])
            return after + index
        except zlib.error:
            index = data.find(b"\x1f\x8b\x08", index + 1)
    return None


def _warc_record_doc(record: Any, path: str, fmt: str) -> Document | None:
    record_type = str(record.record_type)
    wanted = ("conversion",) if fmt == "wet" else ("response",)
    if record_type not in wanted:
        return None  # request, metadata, warcinfo: not documents
    headers = record.headers
    url = (headers.get("WARC-Target-URI") or "").strip("<> ") or None  # WARC/1.1 drafts bracket it
    record_id = headers.get("WARC-Record-ID", "")
    body = record.reader.read()
    metadata = {"warc_record_id": record_id, "warc_date": headers.get("WARC-Date")}
    doc: Document = {
        "id": document_id(url, record_id, ""),
        "url": url,
        "source": path,
        "metadata": metadata,
    }
    if fmt == "wet":
        doc["text"] = body.decode("utf-8", errors="replace")
        return doc
    if record_type == "response" and record.is_http:
        doc["content_type"] = record.http_content_type
        doc["charset"] = record.http_charset
        status = record.http_headers.status_code if record.http_headers is not None else None
        metadata["http_status"] = status
    else:
        doc["content_type"] = headers.get("Content-Type")
        doc["charset"] = None
    doc["html"] = body
    doc["text"] = ""
    return doc


def read_warc(raw: BinaryIO, path: str, fmt: str = "warc") -> Iterator[Document]:
    """Yield response (WARC) or conversion (WET) records; resume after corrupt gzip members.

    Requests, metadata, warcinfo and resource records (crawler logs) are not documents and are skipped.
    HTTP transfer and content encodings (chunked, gzip, br) are decoded before extraction.
    """
    from fastwarc.warc import ArchiveIterator

    gzipped = path.endswith(".gz")
    position = 0
    while True:
        raw.seek(position)
        last_start = position
        pending: Document | None = None  # held back until we know its record was complete
        try:
            for record in ArchiveIterator(
                raw, parse_http=(fmt == "warc"), auto_decode="all", fsspec_args=False
            ):
                if pending is not None:
                    yield pending
                last_start = position + record.stream_pos
                pending = _warc_record_doc(record, path, fmt)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            if pending is not None:
                yield pending
            yield unreadable(path, f"byte {last_start}", f"corrupt record after this offset ({error})")
            resume = _next_gzip_member(raw, last_start + 1) if gzipped else None
            if resume is None:
                return
            position = resume
            continue
        problem = _gzip_tail_problem(raw, last_start) if gzipped else None
        if problem == last_start:
            # FastWARC hands out the cut-off final record as if whole; it is not a document.
            yield unreadable(path, f"byte {problem}", "truncated: the file ends inside this record")
            return
        if pending is not None:
            yield pending
        if problem is not None:
            yield unreadable(path, f"byte {problem}", "truncated: the file ends inside a record")
        return


# --------------------------------------------------------------------------------------------- JSONL


def row_to_document(row: dict[str, Any], path: str, where: str, cfg: InputConfig) -> Document:
    """Map a JSONL/Parquet row to a document; other fields travel along as metadata."""
    text = row.pop(cfg.text_field, None)
    if not isinstance(text, str):
        raise ValueError(f"field '{cfg.text_field}' is missing or not a string")
    url = row.pop(cfg.url_field, None)
    given_id = row.pop(cfg.id_field, None)
    doc_id = str(given_id) if given_id not in (None, "") else document_id(url, None, text)
    return {
        "id": doc_id,
        "url": url if isinstance(url, str) else None,
        "text": text,
        "source": path,
        "metadata": row,
    }


def read_jsonl(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    lines = open_text(raw, path)
    line_number = 0
    while True:
        try:
            line = lines.readline()
        except (OSError, EOFError, UnicodeDecodeError, zlib.error) as error:
            yield unreadable(path, f"line {line_number + 1}", f"cannot decompress/decode ({error})")
            return
        if not line:
            return
        line_number += 1
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            yield row_to_document(row, path, f"line {line_number}", cfg)
        except ValueError as error:
            yield unreadable(path, f"line {line_number}", str(error).splitlines()[0])


# ------------------------------------------------------------------------------------------- Parquet


def read_parquet(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(raw)
    except Exception as error:  # pyarrow raises several unrelated types for a broken footer
        yield unreadable(path, "footer", f"not a readable Parquet file ({error})")
        return
    row_number = 0
    for group in range(parquet.num_row_groups):
        try:
            rows = parquet.read_row_group(group).to_pylist()
        except Exception as error:
            yield unreadable(path, f"row group {group}", f"cannot decode ({error})")
            continue
        for row in rows:
            try:
                yield row_to_document(row, path, f"row {row_number}", cfg)
            except ValueError as error:
                yield unreadable(path, f"row {row_number}", str(error))
            row_number += 1


# ---------------------------------------------------------------------------------------------- Beam


def read_file(path: str, cfg: InputConfig) -> Iterator[Document]:
    """Every document (or `unreadable` rejection) in one file, whatever its format."""
    fmt = cfg.format if cfg.format != "auto" else detect_format(path)
    try:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as error:
        yield unreadable(path, "open", str(error))
        return
    with raw:
        if not raw.seekable():  # Parquet footers and WARC recovery need random access
            raw = io.BytesIO(raw.read())
        if fmt in ("warc", "wet"):
            yield from read_warc(raw, path, fmt)
        elif fmt == "jsonl":
            yield from read_jsonl(raw, path, cfg)
        else:
            yield from read_parquet(raw, path, cfg)


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Resolve paths and globs now, so a typo fails the run before any worker starts."""
    files: list[str] = []
    for pattern in patterns:
        matches = FileSystems.match([pattern])[0].metadata_list
        if not matches:
            raise CurateError(f"input '{pattern}' matches no file")
        files.extend(sorted(m.path for m in matches))
    if not files:
        raise CurateError("no input given: set input.paths in the recipe or pass --input")
    return sorted(set(files))


def _size_of(path: str) -> int:
    """A file's size for progress (bytes of input done); 0 where the filesystem cannot say."""
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:
        return 0


class _ReadFile(beam.DoFn):
    def __init__(self, cfg: InputConfig):
        self._cfg = cfg

    def process(self, path: str) -> Iterator[Any]:
        for doc in read_file(path, self._cfg):
            report_read()
            if "reason" in doc:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, doc)
            else:
                yield doc
        report_bytes(_size_of(path))

    def finish_bundle(self) -> None:
        flush()


class ReadDocuments(StageTransform):
    """Files -> documents, with unreadable records as rejections of stage `read`."""

    stage_name = READ_STAGE
    annotation_types = {"read_error": "string"}

    def __init__(self, cfg: InputConfig, files: list[str]):
        super().__init__(label="Read")
        self._cfg = cfg
        self._files = files

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ReadFile(self._cfg)).with_outputs(REJECTED_TAG, main="docs")
        )
        # No reshuffle here: raw HTML must never go through a shuffle (on Beam's local runner every
        # shuffle's input is held in the runner's memory). Reading stays fused with the stages up to
        # extraction, which spreads the (much smaller) extracted documents over the workers.
        return outputs.docs, outputs[REJECTED_TAG]
