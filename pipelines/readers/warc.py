"""WARC and WET files (one container; WARC keeps HTTP responses, WET text conversions), resynchronising
after damage so that one bad record costs that record only.

Plain ``.warc``/``.wet``: records are framed here, one at a time. A record is whole when its
``Content-Length`` ends exactly at the blank line before the next ``WARC/`` header (or the file's end);
otherwise it is one ``unreadable`` record and reading resumes at the next header, so a wrong length can
neither swallow the records after it nor end the file. Each whole record is parsed on its own by FastWARC
(HTTP headers, chunked transfer, gzip/br content), so what one record holds cannot disturb the next.

``.warc.gz``/``.wet.gz``: FastWARC reads the stream; after damage, reading resumes at the next gzip member
that starts a record (files are written one member per record), and a truncated final member is named.
``record_ranges`` cuts a big gzip file at members so several workers can share it.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from fastwarc.warc import ArchiveIterator

from curate.core.ids import document_id
from curate.pipelines.readers.members import gzip_member_end, next_gzip_member
from curate.pipelines.readers.records import Document, InputConfig, describe, too_large, unreadable
from curate.pipelines.unique_ids import POSITION

_WANTED = {"warc": b"response", "wet": b"conversion"}  # request, metadata, warcinfo: not documents
_HEADER_PEEK = 1 << 16  # bytes read to find a record header's end
_HEADER_LIMIT = 1 << 20  # a WARC header longer than this is damage, not a header
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$")
_WARC_TYPE = re.compile(rb"(?im)^warc-type[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"\nWARC/[0-9]")


def read_warc(
    raw: BinaryIO,
    path: str,
    fmt: str = "warc",
    cfg: InputConfig | None = None,
    byte_range: tuple[int, int] | None = None,
) -> Iterator[Document]:
    """Response (WARC) or conversion (WET) records as documents, damage as ``unreadable`` rejections.

    With ``byte_range`` (from record_ranges: it starts on a record), only the records that start inside it.
    """
    cfg = cfg or InputConfig()
    if path.endswith(".gz"):
        yield from _read_gzip(raw, path, fmt, cfg, byte_range)
    else:
        yield from _read_plain(raw, path, fmt, cfg)


def _record_doc(record: Any, path: str, fmt: str, offset: int, cfg: InputConfig) -> Document | None:
    """A FastWARC record as a document; None for the record types that are not documents."""
    record_type = str(record.record_type)
    if record_type.encode() != _WANTED[fmt]:
        return None
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
    if record.is_http:
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


def _iterate(stream: BinaryIO, fmt: str) -> Any:
    return ArchiveIterator(stream, parse_http=(fmt == "warc"), auto_decode="all", fsspec_args=False)


# ------------------------------------------------------------------------------------------ plain


@dataclass(frozen=True)
class _Frame:
    """One whole record of a plain WARC: its header and, unless longer than the limit, its block."""

    offset: int
    header: bytes
    length: int
    block: bytes | None


@dataclass(frozen=True)
class _Damage:
    """Bytes from ``offset`` that are no whole record; ``resume`` is where the next header starts."""

    offset: int
    problem: str
    resume: int | None


def _read_plain(raw: BinaryIO, path: str, fmt: str, cfg: InputConfig) -> Iterator[Document]:
    for frame in plain_frames(raw, cfg.max_document_bytes):
        if isinstance(frame, _Damage):
            where = f", skipped to byte {frame.resume}" if frame.resume is not None else ""
            yield unreadable(path, f"byte {frame.offset}", frame.problem + where)
            continue
        kind = _WARC_TYPE.search(frame.header)
        if kind is None:  # it may have been a document: count it
            yield unreadable(path, f"byte {frame.offset}", "the record header has no WARC-Type")
            continue
        if kind.group(1).lower() != _WANTED[fmt]:
            continue
        if frame.block is None:
            yield too_large(path, f"byte {frame.offset}", frame.length, cfg)
            continue
        try:
            records = _iterate(io.BytesIO(frame.header + frame.block + b"\r\n\r\n"), fmt)
            doc = next((_record_doc(r, path, fmt, frame.offset, cfg) for r in records), None)
        except Exception as error:  # one record's HTTP layer: whatever FastWARC raises costs it only
            doc = unreadable(path, f"byte {frame.offset}", f"cannot parse this record ({describe(error)})")
        yield doc or unreadable(path, f"byte {frame.offset}", "FastWARC cannot parse this record")


def plain_frames(raw: BinaryIO, max_block: int) -> Iterator[_Frame | _Damage]:
    """The records of an uncompressed WARC, checked against their framing, and the damage between them."""
    size = raw.seek(0, io.SEEK_END)
    position = 0
    while position < size:
        raw.seek(position)
        head = raw.read(_HEADER_PEEK)
        skip = len(head) - len(head.lstrip(b"\r\n"))  # blank lines between records
        if skip == len(head) and len(head) < _HEADER_PEEK:
            return
        position += skip
        frame = _frame_at(raw, position, size, max_block)
        yield frame
        if isinstance(frame, _Damage):
            if frame.resume is None:
                return
            position = frame.resume
        else:
            position = frame.offset + len(frame.header) + frame.length


def _frame_at(raw: BinaryIO, offset: int, size: int, max_block: int) -> _Frame | _Damage:
    raw.seek(offset)
    head = raw.read(_HEADER_PEEK)
    if not head.startswith(b"WARC/"):
        return _damage(raw, offset, "no WARC record starts here")
    end = _HEADER_END.search(head)
    if end is None and len(head) == _HEADER_PEEK:
        head += raw.read(_HEADER_LIMIT - _HEADER_PEEK)
        end = _HEADER_END.search(head)
    if end is None:
        return _damage(raw, offset, "the record header does not end (no blank line)")
    header = head[: end.end()]
    declared = _CONTENT_LENGTH.search(header)
    if declared is None:
        return _damage(raw, offset, "the record header has no Content-Length")
    block_start = offset + len(header)
    length = int(declared.group(1))
    block_end = block_start + length
    raw.seek(block_end)
    tail = raw.read(4 + 5)
    after = tail.lstrip(b"\r\n")
    if block_end > size or not (after.startswith(b"WARC/") or (block_end + len(tail) == size and not after)):
        # Not followed by the next record: a length that runs past it, or one that falls short
        resume = _next_warc_header(raw, offset + 1)
        if resume is not None and resume < block_end:
            return _Damage(offset, f"Content-Length {length:,} runs past the next record", resume)
        if block_end > size:
            return _Damage(offset, f"Content-Length {length:,} runs past the end of the file", resume)
        if not tail.startswith(b"\r\n\r\n"):  # a whole record ends in a blank line; then garbage may follow
            return _Damage(offset, f"Content-Length {length:,} does not end at a record", resume)
    if length > max_block:
        return _Frame(offset, header, length, None)
    raw.seek(block_start)
    return _Frame(offset, header, length, raw.read(length))


def _damage(raw: BinaryIO, offset: int, problem: str) -> _Damage:
    return _Damage(offset, problem, _next_warc_header(raw, offset + 1))


def _next_warc_header(raw: BinaryIO, after: int) -> int | None:
    """Offset of the next line at or after ``after`` that starts a WARC record header (``WARC/`` and a
    version digit: ClueWeb writes WARC/0.18), to resume an uncompressed WARC there."""
    position = max(after - 1, 0)  # from the line end before it
    raw.seek(position)
    carry = b""
    while block := raw.read(1 << 20):
        window = carry + block
        for found in _HEADER_LINE.finditer(window):
            start = position - len(carry) + found.start() + 1
            if start >= after:
                return start
        carry = window[-8:]
        position += len(block)
    return None


# ------------------------------------------------------------------------------------------- gzip


@dataclass
class _Pass:
    """How one FastWARC pass over a gzip WARC ended."""

    last_start: int  # offset of the last record it reached
    damage: tuple[int, str] | None  # damage not yet reported: (offset, problem)
    records: int = 0
    pending: Document | None = None  # the last record's document, held until we know it was whole
    past_end: bool = False  # stopped at the first record of the next byte range
    in_record: bool = False  # the error came from the record at last_start itself
    error: Exception | None = None


def _one_pass(
    raw: BinaryIO,
    path: str,
    fmt: str,
    cfg: InputConfig,
    start: int,
    end: int | None,
    damage: tuple[int, str] | None,
) -> Generator[Document, None, _Pass]:
    state = _Pass(start, damage)
    raw.seek(start)
    try:
        for record in _iterate(raw, fmt):
            # stream_pos is the record's offset in the file (FastWARC asks the file object's tell()),
            # also after a seek: not relative to where this iterator started.
            if end is not None and record.stream_pos >= end:
                state.past_end = True
                break
            if state.pending is not None:
                yield state.pending
                state.pending = None
            state.last_start, state.records = record.stream_pos, state.records + 1
            if state.damage is not None and state.damage[0] < state.last_start:  # bytes were skipped
                yield _damage_doc(path, state.damage, f"resumed at byte {state.last_start}")
            state.damage = None
            state.in_record = True
            state.pending = _record_doc(record, path, fmt, state.last_start, cfg)
            state.in_record = False
    except Exception as error:  # FastWARC raises OSError, ValueError or worse on damage
        state.error = error
    return state


def _read_gzip(
    raw: BinaryIO, path: str, fmt: str, cfg: InputConfig, byte_range: tuple[int, int] | None
) -> Iterator[Document]:
    """FastWARC over the stream; after an error, resume at the next gzip member that starts a record.

    Every damaged stretch is one rejection: the record whose member cannot be decompressed, or the bytes
    skipped between two whole members.
    """
    size = _file_size(raw)
    position, end = byte_range or (0, None)
    damage: tuple[int, str] | None = None
    while True:
        state = yield from _one_pass(raw, path, fmt, cfg, position, end, damage)
        damage, pending, last_start = state.damage, state.pending, state.last_start
        if state.error is not None:
            problem = f"corrupt record ({describe(state.error)})"
            good_end = None if state.in_record or not state.records else gzip_member_end(raw, last_start)
            if good_end is None:  # the record at last_start is the damaged one: not a document
                resume = next_gzip_member(raw, last_start + 1)
                damage = None
                yield _damage_doc(path, (last_start, problem), _resumed(resume))
            else:  # its member is whole: the damage follows it, named once we know where it ends
                yield from [pending] if pending is not None else []
                damage = (good_end, problem)
                resume = next_gzip_member(raw, good_end)
            if resume is None or (end is not None and resume >= end):
                yield from [_damage_doc(path, damage, _resumed(resume))] if damage else []
                return
            position = resume
            continue
        more = size if state.past_end else _record_start(raw, last_start + 1, size)
        if more < size and (end is None or more < end):
            # FastWARC ended without an error, yet whole records follow: read on from the next one
            # rather than lose the rest of the file without a word (seen once in a Beam worker).
            yield from [pending] if pending is not None else []
            if not state.records and damage is None:  # nothing came out from `position`: say so
                damage = (position, "no record could be read here")
            position = more
            continue
        yield from [_damage_doc(path, damage, "")] if damage else []
        if state.past_end:  # the next range's first record follows: this range's last one was whole
            yield from [pending] if pending is not None else []
        else:
            yield from _at_file_end(raw, path, pending, last_start)
        return


def _resumed(resume: int | None) -> str:
    return f"skipped to byte {resume}" if resume is not None else "no record follows"


def _damage_doc(path: str, damage: tuple[int, str], then: str) -> Document:
    offset, problem = damage
    return unreadable(path, f"byte {offset}", f"{problem}, {then}" if then else problem)


def _file_size(raw: BinaryIO) -> int:
    here = raw.tell()
    size = raw.seek(0, io.SEEK_END)
    raw.seek(here)
    return size


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


def _at_file_end(raw: BinaryIO, path: str, pending: Document | None, last_start: int) -> Iterator[Document]:
    """The file's last record, unless the file ends inside it, and what the end says (truncated)."""
    problem = _gzip_tail_problem(raw, last_start)
    if problem == last_start:
        # FastWARC hands out the cut-off final record as if whole; it is not a document.
        lost = _file_size(raw) - last_start
        yield unreadable(
            path, f"byte {problem}", f"truncated: the file ends inside this record ({lost:,} bytes unread)"
        )
        return
    if pending is not None:
        yield pending
    if problem is not None:
        lost = _file_size(raw) - problem
        yield unreadable(
            path, f"byte {problem}", f"truncated: the file ends inside a record ({lost:,} bytes unread)"
        )


def gzip_record_ranges(raw: BinaryIO, path: str, size: int, max_bytes: int) -> list[tuple[int, int]] | None:
    """Byte ranges of at most about ``max_bytes`` that cut a WARC.gz/WET.gz file at record boundaries,
    so that several workers (or segments) can each read a part of one big file; None when the file is
    small or cannot be cut (not gzip-per-record WARC: one gzip stream, plain text, JSONL, Parquet).

    A cut lands on the first gzip member at or after an even share of the file that decompresses to a
    WARC header; finding it reads a few kilobytes, not the file."""
    if size <= max_bytes or not path.endswith(".gz"):
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
