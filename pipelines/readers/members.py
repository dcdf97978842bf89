"""The bytes of a plain, gzip or zstd file, member by member, skipping members that cannot be read.

A gzip or zstd file is a sequence of independently compressed members (zstd: frames). Damage in one
member must cost that member, not the rest of the file: the damaged member is dropped, reading resumes at
the next member header, and the compressed byte range that was skipped is handed to the caller, which
turns it into a rejection. A member's output is held back until its checksum has been verified (up to
``HOLD_BYTES``; bigger members are passed on as they decompress), so a corrupt member never leaks
garbled text into the output; a member cut off by the end of the file keeps what was read before the cut.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

BLOCK = 1 << 16  # compressed bytes fed per call
HOLD_BYTES = 16 << 20  # a member's output held back until its checksum is verified
_PROBE = 1 << 16  # compressed bytes decompressed to confirm that a header really starts a member
GZIP_MAGIC = b"\x1f\x8b\x08"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class LostRange:
    """Compressed bytes ``start``..``end`` of the file could not be read; ``problem`` says why."""

    start: int
    end: int
    problem: str


@dataclass(frozen=True)
class _Codec:
    """What differs between gzip and zstd: the member header and a one-member decompressor."""

    name: str
    magic: bytes
    new: Callable[[], Any]
    errors: tuple[type[Exception], ...]


def _gzip() -> _Codec:
    return _Codec("gzip", GZIP_MAGIC, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), (zlib.error,))


def _zstd() -> _Codec:
    import zstandard

    return _Codec(
        "zstd",
        ZSTD_MAGIC,
        lambda: zstandard.ZstdDecompressor().decompressobj(),
        (zstandard.ZstdError,),
    )


def codec_for(name: str) -> _Codec | None:
    """The codec a file name asks for (.gz, .zst), or None for a plain file."""
    if name.endswith(".gz"):
        return _gzip()
    if name.endswith(".zst"):
        return _zstd()
    return None


def _size(raw: BinaryIO) -> int:
    raw.seek(0, 2)
    return raw.tell()


def _starts_member(raw: BinaryIO, codec: _Codec, offset: int) -> bool:
    """Whether a member really starts at ``offset``: its first bytes decompress without an error."""
    raw.seek(offset)
    try:
        codec.new().decompress(raw.read(_PROBE))
    except codec.errors:
        return False
    return True


def _next_member(raw: BinaryIO, codec: _Codec, after: int, size: int) -> int:
    """Offset of the first member header after ``after`` that decompresses, or ``size`` if none."""
    position = after
    overlap = len(codec.magic) - 1
    while position < size:
        raw.seek(position)
        window = raw.read(BLOCK + overlap)
        index = window.find(codec.magic)
        while index != -1:
            if _starts_member(raw, codec, position + index):
                return position + index
            index = window.find(codec.magic, index + 1)
        position += BLOCK
    return size


def next_gzip_member(raw: BinaryIO, after: int) -> int | None:
    """Offset of the next readable gzip member after ``after`` (a WARC.gz reader resumes there), or None."""
    size = _size(raw)
    found = _next_member(raw, _gzip(), after, size)
    return found if found < size else None


def gzip_member_end(raw: BinaryIO, start: int) -> int | None:
    """Where the gzip member at ``start`` ends, or None when it is damaged or cut off (its output is
    decompressed in bounded pieces and dropped: this only checks the member)."""
    raw.seek(start)
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    offset = start
    try:
        while not decompressor.eof:
            data = decompressor.unconsumed_tail or raw.read(BLOCK)
            if not data:
                return None
            if not decompressor.unconsumed_tail:
                offset += len(data)
            decompressor.decompress(data, BLOCK * 16)
    except zlib.error:
        return None
    return offset - len(decompressor.unused_data)


def decompressed_chunks(raw: BinaryIO, name: str) -> Iterator[bytes | LostRange]:
    """The file's content in chunks, with a LostRange where a damaged member was skipped.

    ``raw`` must be seekable (readers give non-seekable streams a BytesIO)."""
    codec = codec_for(name)
    if codec is None:
        raw.seek(0)
        while chunk := raw.read(BLOCK):
            yield chunk
        return
    size = _size(raw)
    start = 0
    while start < size:
        raw.seek(start)
        decompressor = codec.new()
        held: list[bytes] | None = []  # None once the member outgrew HOLD_BYTES and streams
        held_bytes = 0
        offset = start
        problem = detail = None
        while not decompressor.eof:
            block = raw.read(BLOCK)
            if not block:
                # What came before the cut decompressed correctly; only the end is missing.
                yield from held or ()
                held = None
                problem = (
                    f"truncated: the file ends inside the {codec.name} member at byte {start} "
                    f"({offset - start:,} compressed bytes of it read, the rest missing)"
                )
                break
            try:
                out = decompressor.decompress(block)
            except codec.errors as error:
                detail = str(error)
                problem = f"damaged {codec.name} member ({detail})"
                break
            offset += len(block)
            if held is None:
                yield out
            else:
                held.append(out)
                held_bytes += len(out)
                if held_bytes > HOLD_BYTES:
                    yield from held
                    held = None
        if problem is None:
            yield from held or ()
            start = offset - len(decompressor.unused_data)
            raw.seek(start)
            if not raw.read(BLOCK).strip(b"\x00"):
                return  # zero padding after the last member (tape blocks) is not data
            continue
        lost_from = start if held is not None else offset  # a streamed member lost only what followed
        end = _next_member(raw, codec, lost_from + 1, size)
        if lost_from == 0 and end == size:
            problem = f"not a {codec.name} file ({detail or problem})"
        yield LostRange(lost_from, end, problem)
        start = end
