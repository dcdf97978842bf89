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
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, BinaryIO, Literal

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from pydantic import Field

from curate.core.config import NamesPath, Strict
from curate.core.errors import CurateError
from curate.core.files import check_confined
from curate.core.ids import document_id
from curate.pipelines.decompress import LostRange, decompressed_chunks, next_gzip_member
from curate.pipelines.progress import flush, report_bytes, report_read
from curate.pipelines.stage import REJECTED_TAG, StageTransform
from curate.pipelines.unique_ids import POSITION, Record, Renames, id_and_record, unique


class InputConfig(Strict):
    paths: Annotated[list[str], NamesPath("glob")] = Field(
        default_factory=list, description="Files or globs; anything Beam can open."
    )
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = "auto"
    id_field: str = "id"
    url_field: str = "url"
    text_field: str = "text"
    max_document_bytes: int = Field(
        8_000_000,
        ge=1,
        description="Records larger than this are rejected as too_large as they are read (before any stage).",
    )
    on_duplicate_id: Literal["derive", "fail"] = Field(
        "derive",
        description="Two records with one id: derive a stable id from file and position for the later "
        "one (the original goes to metadata.original_id), or fail the run.",
    )
    strict: bool = Field(
        False, description="Fail the run at the first unreadable record instead of rejecting it."
    )


Document = dict[str, Any]
READ_STAGE = "read"
# What one reader reads: a whole file, or (path, start, end) bytes of a WARC/WET file (record_ranges).
InputUnit = str | tuple[str, int, int]

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
    message = "".join(char if char.isprintable() else "?" for char in message)  # one clean line
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


def too_large(path: str, where: str, size: int, cfg: InputConfig) -> Document:
    """A rejection for a record over ``input.max_document_bytes``; its text is not kept."""
    doc = unreadable(
        path, where, f"{size:,} bytes exceed input.max_document_bytes ({cfg.max_document_bytes:,})"
    )
    doc["reason"] = "too_large"
    return doc


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


def _next_warc_header(raw: BinaryIO, after: int) -> int | None:
    """Offset of the next line that starts a WARC record header, to resume an uncompressed WARC there."""
    raw.seek(after)
    position = after
    carry = b""
    while block := raw.read(1 << 20):
        window = carry + block
        index = window.find(b"\nWARC/1.")
        if index != -1:
            return position - len(carry) + index + 1
        carry = window[-8:]
        position += len(block)
    return None


def _warc_record_doc(record: Any, path: str, fmt: str, offset: int, cfg: InputConfig) -> Document | None:
    record_type = str(record.record_type)
    wanted = ("conversion",) if fmt == "wet" else ("response",)
    if record_type not in wanted:
        return None  # request, metadata, warcinfo: not documents
    if record.content_length > cfg.max_document_bytes:
        return too_large(path, f"byte {offset}", record.content_length, cfg)
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
        POSITION: f"byte {offset}",
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


def record_ranges(raw: BinaryIO, path: str, size: int, max_bytes: int) -> list[tuple[int, int]] | None:
    """Byte ranges of at most about ``max_bytes`` that cut a WARC.gz/WET.gz file at record boundaries,
    so that several workers (or segments) can each read a part of one big file; None when the file is
    small or cannot be cut (not gzip-per-record WARC: one gzip stream, plain text, JSONL, Parquet).

    A cut lands on the first gzip member at or after an even share of the file that decompresses to a
    WARC header; finding it reads a few kilobytes, not the file."""
    if size <= max_bytes or not path.endswith(".gz") or detect_format(path) not in ("warc", "wet"):
        return None
    pieces = -(-size // max_bytes)
    cuts = [0]
    for k in range(1, pieces):
        cut = _record_start(raw, k * size // pieces, size)
        if cuts[-1] < cut < size:
            cuts.append(cut)
    cuts.append(size)
    return list(zip(cuts, cuts[1:], strict=False)) if len(cuts) > 2 else None


def _record_start(raw: BinaryIO, after: int, size: int) -> int:
    """Offset of the first gzip member at or after ``after`` that starts a WARC record, or ``size``."""
    position = after
    while position < size:
        found = next_gzip_member(raw, position)
        if found is None:
            return size
        raw.seek(found)
        head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw.read(1 << 12), 8)
        if head.startswith(b"WARC/"):
            return found
        position = found + 1
    return size


def read_warc(
    raw: BinaryIO,
    path: str,
    fmt: str = "warc",
    cfg: InputConfig | None = None,
    byte_range: tuple[int, int] | None = None,
) -> Iterator[Document]:
    """Yield response (WARC) or conversion (WET) records; resume after a corrupt region at the next gzip
    member (.warc.gz) or the next record header (plain .warc).

    Requests, metadata, warcinfo and resource records (crawler logs) are not documents and are skipped.
    HTTP transfer and content encodings (chunked, gzip, br) are decoded before extraction. With
    ``byte_range`` (from record_ranges: it starts on a record), only the records that start inside it.
    """
    from fastwarc.warc import ArchiveIterator

    cfg = cfg or InputConfig()
    gzipped = path.endswith(".gz")
    position, end = byte_range or (0, None)
    while True:
        raw.seek(position)
        last_start = position
        pending: Document | None = None  # held back until we know its record was complete
        past_end = False
        records = 0
        try:
            for record in ArchiveIterator(
                raw, parse_http=(fmt == "warc"), auto_decode="all", fsspec_args=False
            ):
                # stream_pos is the record's offset in the file (FastWARC asks the file object's
                # tell()), also after a seek: not relative to where this iterator started.
                if end is not None and record.stream_pos >= end:
                    past_end = True
                    break
                if pending is not None:
                    yield pending
                last_start, records = record.stream_pos, records + 1
                pending = _warc_record_doc(record, path, fmt, last_start, cfg)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            if pending is not None:
                yield pending
            if gzipped:
                resume = next_gzip_member(raw, last_start + 1)
            else:
                resume = _next_warc_header(raw, last_start + 1)
            skipped = f", skipped to byte {resume}" if resume is not None else ""
            yield unreadable(
                path, f"byte {last_start}", f"corrupt record after this offset ({error}){skipped}"
            )
            if resume is None or (end is not None and resume >= end):
                return
            position = resume
            continue
        if past_end:  # the next range's first record follows: this range's last one was whole
            yield from [pending] if pending is not None else []
            return
        more = _record_start(raw, last_start + 1, _file_size(raw)) if gzipped else None
        if more is not None and more < _file_size(raw) and (end is None or more < end):
            # FastWARC ended without an error, yet whole records follow: read on from the next one
            # rather than lose the rest of the file without a word (seen once in a Beam worker).
            yield from [pending] if pending is not None else []
            if not records:  # nothing came out from `position`: say what was skipped
                yield unreadable(
                    path, f"byte {position}", f"no record could be read here; resumed at byte {more}"
                )
            position = more
            continue
        yield from _at_file_end(raw, path, pending, last_start, gzipped)
        return


def _file_size(raw: BinaryIO) -> int:
    here = raw.tell()
    size = raw.seek(0, io.SEEK_END)
    raw.seek(here)
    return size


def _at_file_end(
    raw: BinaryIO, path: str, pending: Document | None, last_start: int, gzipped: bool
) -> Iterator[Document]:
    """The file's last record, unless the file ends inside it, and what the end says (truncated)."""
    problem = _gzip_tail_problem(raw, last_start) if gzipped else None
    if problem == last_start:
        # FastWARC hands out the cut-off final record as if whole; it is not a document.
        yield unreadable(path, f"byte {problem}", "truncated: the file ends inside this record")
        return
    if pending is not None:
        yield pending
    if problem is not None:
        yield unreadable(path, f"byte {problem}", "truncated: the file ends inside a record")


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
        POSITION: where,
    }


# A JSON escape of a UTF-16 surrogate; only lines containing one need the (slower) full check.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _jsonl_record(line: bytes, path: str, where: str, cfg: InputConfig) -> Document:
    """One line as a document, or the rejection that says what is wrong with it."""
    if len(line) > cfg.max_document_bytes:
        return too_large(path, where, len(line), cfg)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return unreadable(path, where, f"invalid UTF-8 at byte {error.start} of the line")
    try:
        row = json.loads(text)
    except ValueError as error:
        return unreadable(path, where, f"invalid JSON ({str(error).splitlines()[0]})")
    if not isinstance(row, dict):
        return unreadable(path, where, f"not a JSON object but {type(row).__name__}")
    if _SURROGATE_ESCAPE.search(line):
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return unreadable(path, where, "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    try:
        return row_to_document(row, path, where, cfg)
    except ValueError as error:
        return unreadable(path, where, str(error))


def read_jsonl(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    """One document or rejection per non-blank line; a bad line costs that line only.

    Lines are split on bytes and decoded one by one, so a bad byte is reported on its true line. A
    damaged gzip/zstd member is one rejection naming the compressed byte range skipped; line numbers
    after it count the lines actually read. A line longer than ``max_document_bytes`` is rejected
    (``too_large``) without being held in memory whole.
    """
    line_number = 0
    pending = bytearray()
    oversize = 0  # bytes of the current line dropped because it is too large
    for chunk in decompressed_chunks(raw, path):
        if isinstance(chunk, LostRange):
            span = f"byte {chunk.start}" if chunk.start == chunk.end else f"bytes {chunk.start}-{chunk.end}"
            if pending or oversize:  # a line was cut: name it, with the compressed bytes lost
                yield unreadable(path, f"line {line_number + 1}", f"{span}: {chunk.problem}")
            else:
                yield unreadable(path, span, chunk.problem)
            pending.clear()
            oversize = 0
            continue
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline == -1 else newline
            size = len(pending) + end - start
            if oversize or size > cfg.max_document_bytes:
                oversize += size
                pending.clear()
            elif newline == -1:
                pending += chunk[start:]
            if newline == -1:
                break
            line_number += 1
            if oversize:
                yield too_large(path, f"line {line_number}", oversize, cfg)
                oversize = 0
            else:
                line = bytes(pending + chunk[start:newline]) if pending else chunk[start:newline]
                if line and not line.isspace():
                    yield _jsonl_record(line, path, f"line {line_number}", cfg)
            pending.clear()
            start = newline + 1
    if oversize:
        yield too_large(path, f"line {line_number + 1}", oversize, cfg)
    elif pending and not pending.isspace():
        yield _jsonl_record(bytes(pending), path, f"line {line_number + 1}", cfg)


# ------------------------------------------------------------------------------------------- Parquet


def read_parquet(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    """One document per row; a row group that cannot be decoded is one rejection per row it holds
    (the footer says how many), so the count of what was lost is exact."""
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
            problem = f"row group {group} cannot be decoded ({str(error).splitlines()[0]})"
            for _ in range(parquet.metadata.row_group(group).num_rows):
                yield unreadable(path, f"row {row_number}", problem)
                row_number += 1
            continue
        for row in rows:
            where = f"row {row_number}"
            text = row.get(cfg.text_field)
            if (
                isinstance(text, str)
                and len(text) > cfg.max_document_bytes // 4
                and (size := len(text.encode("utf-8"))) > cfg.max_document_bytes
            ):
                yield too_large(path, where, size, cfg)
            else:
                try:
                    yield row_to_document(row, path, where, cfg)
                except ValueError as error:
                    yield unreadable(path, where, str(error))
            row_number += 1


# ---------------------------------------------------------------------------------------------- Beam


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
        yield unreadable(path, "open", str(error).splitlines()[0] if str(error) else type(error).__name__)
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


def _unit(item: InputUnit) -> tuple[str, tuple[int, int] | None]:
    return (item, None) if isinstance(item, str) else (item[0], (item[1], item[2]))


def _ids_of(item: InputUnit, cfg: InputConfig) -> Iterator[tuple[str, Record]]:
    """The first, ids-only pass: ``(id, (source, position))`` of every document of a file."""
    path, byte_range = _unit(item)
    for doc in read_file(path, cfg, byte_range):
        if "reason" not in doc:
            yield id_and_record(doc)


class _ReadFile(beam.DoFn):
    def __init__(self, cfg: InputConfig):
        self._cfg = cfg

    def setup(self) -> None:
        from curate.core.files import share_s3_clients

        share_s3_clients()  # this worker process's S3 reads and Beam's S3 writes reuse one client

    def process(self, item: InputUnit, renames: dict[Record, str]) -> Iterator[Any]:
        path, byte_range = _unit(item)
        for doc in read_file(path, self._cfg, byte_range):
            report_read()
            if "reason" in doc:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, doc)
            else:
                yield unique(doc, renames)
        report_bytes(_size_of(path) if byte_range is None else byte_range[1] - byte_range[0])

    def finish_bundle(self) -> None:
        flush()


class ReadDocuments(StageTransform):
    """Files -> documents with ids unique in the run, with unreadable records as rejections of stage
    `read`."""

    stage_name = READ_STAGE
    annotation_types = {"read_error": "string"}

    def __init__(self, cfg: InputConfig, files: list[InputUnit]):
        super().__init__(label="Read")
        self._cfg = cfg
        self._files = files

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        cfg = self._cfg
        files = pbegin | "Files" >> beam.Create(self._files) | "SpreadFiles" >> beam.Reshuffle()
        # Colliding ids are found in a first pass that keeps only ids and record positions; the reader
        # gets the renames as a side input. No reshuffle of documents here, and no step waits with the
        # documents for a side input: either would hold every raw record (HTML included) in the memory
        # of Beam's local runner. Reading stays fused with the stages up to extraction.
        renames = (
            files | "IdsOnly" >> beam.FlatMap(_ids_of, cfg) | "UniqueIds" >> Renames(cfg.on_duplicate_id)
        )
        outputs = files | "Parse" >> beam.ParDo(_ReadFile(cfg), beam.pvalue.AsDict(renames)).with_outputs(
            REJECTED_TAG, main="docs"
        )
        return outputs.docs, outputs[REJECTED_TAG]


MAX_PROBLEM_FILES = 20  # files named on the console and in stats.json; rejected/ has every record


def _reading_order(error: str) -> list[Any]:
    """'f: row 8: ...' before 'f: row 10: ...': numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", error)]


def _count_and_first(values: Iterable[tuple[int, str]]) -> tuple[int, str]:
    values = list(values)
    return sum(count for count, _ in values), min((error for _, error in values), key=_reading_order)


def _problem_report(files: list[tuple[str, tuple[int, str]]]) -> dict[str, Any]:
    console = [
        f"{source}: {count:,} record(s) not read, e.g. {example}" for source, (count, example) in files
    ]
    if len(files) == MAX_PROBLEM_FILES:
        console.append(f"(only the first {MAX_PROBLEM_FILES} files are named; see rejected/ for all)")
    return {
        "kind": "read_problems",
        "files": {source: {"records": count, "example": example} for source, (count, example) in files},
        "console": console,
    }


class ReadProblems(beam.PTransform):
    """Read-stage rejections -> one report naming each damaged file (records lost, one example), so the
    console says which files to look at without anyone opening rejected/."""

    def expand(self, read_rejected: beam.PCollection) -> beam.PCollection:
        return (
            read_rejected
            | "BySource" >> beam.Map(lambda doc: (doc["source"], (1, doc["read_error"])))
            | "PerSource" >> beam.CombinePerKey(_count_and_first)
            | "FirstFiles" >> beam.combiners.Top.Smallest(MAX_PROBLEM_FILES)
            | "Report" >> beam.Map(_problem_report)
        )
