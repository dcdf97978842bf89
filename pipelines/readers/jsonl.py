"""JSON Lines files (plain, gzip or zstd): one document or one rejection per line.

Lines are split on bytes and decoded one by one, so a bad byte is reported on its true line; a damaged
gzip/zstd member is skipped (members.py) and named with the compressed bytes lost. What a file's encoding
may add costs nothing: a UTF-8 byte order mark is dropped, a UTF-16 file (with a byte order mark, or
recognised by its zero bytes) is decoded, and lines may end in LF, CRLF or a lone CR (a raw CR cannot
occur inside a JSON string, so it always ends a line).
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from curate.pipelines.readers.members import LostRange, decompressed_chunks
from curate.pipelines.readers.records import (
    Document,
    InputConfig,
    describe,
    row_to_document,
    too_large,
    unreadable,
)

# Nesting deeper than this is no document's metadata but an attack on the parser or on later pickling
# (Python's recursion limit is 1,000 frames).
MAX_JSON_DEPTH = 100
_UTF8_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 4096  # bytes looked at to recognise UTF-16
# A JSON escape of a UTF-16 surrogate; only lines containing one need the (slower) full check.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def read_jsonl(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    """One document or rejection per non-blank line; a bad line costs that line only.

    Line numbers after a damaged member count the lines actually read. A line longer than
    ``max_document_bytes`` is rejected (``too_large``) without being held in memory whole.
    """
    line_number = 0
    pending = bytearray()
    oversize = 0  # bytes of the current line dropped because it is too large
    for chunk in utf8_lines_text(decompressed_chunks(raw, path)):
        if isinstance(chunk, LostRange):
            lost = (
                f"; {chunk.end - chunk.start:,} compressed bytes skipped" if chunk.end > chunk.start else ""
            )
            if pending or oversize:  # a line was cut: name it, and how much of it was read
                cut = f"; the line is cut after {len(pending) + oversize:,} bytes, which are dropped"
                line_number += 1  # the cut line has its number: the lines after it count on from there
                yield unreadable(path, f"line {line_number}", f"{chunk.problem}{cut}{lost}")
            else:
                span = (
                    f"bytes {chunk.start}-{chunk.end}" if chunk.end > chunk.start else f"byte {chunk.start}"
                )
                yield unreadable(path, span, f"{chunk.problem}{lost}")
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
                    yield jsonl_record(line, path, f"line {line_number}", cfg)
            pending.clear()
            start = newline + 1
    if oversize:
        yield too_large(path, f"line {line_number + 1}", oversize, cfg)
    elif pending and not pending.isspace():
        yield jsonl_record(bytes(pending), path, f"line {line_number + 1}", cfg)


def jsonl_record(line: bytes, path: str, where: str, cfg: InputConfig) -> Document:
    """One line as a document, or the rejection that says what is wrong with it (never an exception)."""
    if len(line) > cfg.max_document_bytes:
        return too_large(path, where, len(line), cfg)
    try:
        return _parse(line, path, where, cfg)
    except Exception as error:  # whatever one line provokes costs that line only
        return unreadable(path, where, f"cannot read this line ({describe(error)})")


def _parse(line: bytes, path: str, where: str, cfg: InputConfig) -> Document:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return unreadable(path, where, f"invalid UTF-8 at byte {error.start} of the line")
    try:
        row = json.loads(text)
    except RecursionError:
        return unreadable(path, where, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    except ValueError as error:
        return unreadable(path, where, f"invalid JSON ({str(error).splitlines()[0]})")
    if not isinstance(row, dict):
        return unreadable(path, where, f"not a JSON object but {type(row).__name__}")
    if line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH and _depth(row) > MAX_JSON_DEPTH:
        return unreadable(path, where, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(line):
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return unreadable(path, where, "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    try:
        return row_to_document(row, path, where, cfg)
    except ValueError as error:
        return unreadable(path, where, str(error))


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion: the input is untrusted)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _encoding(head: bytes) -> str:
    """The file's encoding as far as its first bytes tell: UTF-16 by its byte order mark or by the zero
    byte beside every ASCII character, else UTF-8."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not head.startswith(
        codecs.BOM_UTF32_LE
    ):
        return "utf-16"  # the codec reads the mark and drops it
    sample = head[: len(head) - len(head) % 2]
    if len(sample) >= 4:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > 0.4 * len(sample) / 2 and even == 0:
            return "utf-16-le"
        if even > 0.4 * len(sample) / 2 and odd == 0:
            return "utf-16-be"
    return "utf-8"


def utf8_lines_text(chunks: Iterable[bytes | LostRange]) -> Iterator[bytes | LostRange]:
    """The decompressed chunks as UTF-8 with LF line ends: a UTF-8 byte order mark dropped, UTF-16
    decoded, CRLF and lone CR turned into LF. Damage (LostRange) passes through in place."""
    chunks = iter(chunks)
    head = bytearray()
    damage: list[LostRange] = []
    for chunk in chunks:
        if isinstance(chunk, LostRange):
            damage.append(chunk)
            break
        head += chunk
        if len(head) >= _SNIFF_BYTES:
            break
    convert = _converter(_encoding(bytes(head)))
    carry = b""  # a CR at a chunk's end: a line end of its own, or the start of a CRLF
    for index, chunk in enumerate(itertools.chain([bytes(head)], damage, chunks)):
        if isinstance(chunk, LostRange):
            if carry:
                yield b"\n"
                carry = b""
            yield chunk
            continue
        data = convert(chunk, False)
        text, carry = _newlines(carry + (data.removeprefix(_UTF8_BOM) if index == 0 else data), False)
        if text:
            yield text
    text, _ = _newlines(carry + convert(b"", True), True)
    if text:
        yield text


def _converter(encoding: str) -> Callable[[bytes, bool], bytes]:
    """A function (bytes, final) -> UTF-8 bytes, for a file in ``encoding``."""
    if encoding == "utf-8":
        return lambda data, final: data
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogatepass")

    def to_utf8(data: bytes, final: bool) -> bytes:
        # A lone surrogate becomes bytes that are not UTF-8, so its line is rejected as such; so does
        # an odd byte at the end.
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError:
            return b"\xff"
        return text.encode("utf-8", errors="surrogatepass")

    return to_utf8


def _newlines(data: bytes, final: bool) -> tuple[bytes, bytes]:
    """``data`` with CRLF and CR as LF; a CR at the end is held back unless ``final``."""
    carry = b""
    if not final and data.endswith(b"\r"):
        data, carry = data[:-1], b"\r"
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data, carry
