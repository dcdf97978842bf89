"""Line and paragraph deduplication across documents (CCNet, Dolma): the pure text part, no Beam.

Boilerplate repeated across pages (navigation, cookie banners, footers) survives whole-document dedup
because the pages differ in their content. Counting, for every normalised line (or paragraph), how many
documents contain it finds that boilerplate; removing the units found in more than ``max_docs``
documents cleans every page that carries them. The counting is the Beam part (pipelines/line_dedup.py);
here are the unit split, the hashes and the rewrite of one document given the frequent hashes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import xxhash

from curate.filters.dedup_text import Normalization

REASON_BOILERPLATE = "boilerplate_only"
# Paragraphs are separated by a blank line; the separators are kept so a rewrite changes nothing else.
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t\r\f\v]*\n\s*)")


@dataclass(frozen=True)
class LineDedupSettings:
    unit: Literal["line", "paragraph"] = "line"
    max_docs: int = 10
    keep_first: bool = False
    min_chars_left: int = 100
    normalization: Normalization = Normalization()


@dataclass(frozen=True)
class Rewrite:
    text: str
    units_removed: int
    chars_removed: int
    chars_before: int

    @property
    def char_fraction_removed(self) -> float:
        return self.chars_removed / self.chars_before if self.chars_before else 0.0


def split_units(text: str, unit: str) -> list[str]:
    """Units and their separators, alternating (units at even positions): ''.join() gives the text back."""
    if unit == "line":
        parts = text.split("\n")
        pieces: list[str] = []
        for index, part in enumerate(parts):
            pieces.append(part)
            if index < len(parts) - 1:
                pieces.append("\n")
        return pieces
    if unit == "paragraph":
        return _PARAGRAPH_BREAK.split(text)
    raise ValueError(f"dedup_lines unit must be 'line' or 'paragraph', got {unit!r}")


def unit_hash(unit_text: str, normalization: Normalization) -> int | None:
    """64-bit hash of a normalised unit; None for a unit with nothing left after normalisation."""
    normalised = normalization.apply(unit_text)
    if not normalised:
        return None
    return xxhash.xxh3_64_intdigest(normalised.encode("utf-8", errors="surrogatepass"))


def unit_hashes(pieces: list[str], settings: LineDedupSettings) -> list[int | None]:
    """``unit_hash`` of every unit of ``split_units`` output (its even positions), in order.

    Lines take a fast path: the whole text is normalised in one pass and split at the newlines, which
    normalisation never adds, moves or removes (NFC does not compose across a newline, punctuation and
    digits are replaced in place); only the whitespace collapse is per line. Same hashes, about half
    the time of normalising each line on its own.
    """
    normalization = settings.normalization
    if settings.unit != "line" or not normalization.normalize_whitespace:
        return [unit_hash(piece, normalization) for piece in pieces[0::2]]
    lines = normalization.apply_keeping_lines("\n".join(pieces[0::2])).split("\n")
    hashes: list[int | None] = []
    for line in lines:
        collapsed = " ".join(line.split())
        hashes.append(
            xxhash.xxh3_64_intdigest(collapsed.encode("utf-8", errors="surrogatepass")) if collapsed else None
        )
    return hashes


def document_unit_hashes(text: str, settings: LineDedupSettings) -> set[int]:
    """The distinct unit hashes of one document: a unit repeated inside a page counts once."""
    hashes = set(unit_hashes(split_units(text, settings.unit), settings))
    hashes.discard(None)
    return hashes  # type: ignore[return-value]


def remove_frequent_units(
    text: str, doc_id: str, frequent: Mapping[int, str | None], settings: LineDedupSettings
) -> Rewrite:
    """The text without its frequent units. ``frequent`` maps a unit hash to the smallest id of the
    documents holding it (or None when ``keep_first`` is off); with ``keep_first`` that document keeps it.

    A removed unit takes the separator before it (or after it, for the first unit) with it, so removing
    a line leaves no blank line behind.
    """
    if not frequent:
        return Rewrite(text, 0, 0, len(text))
    pieces = split_units(text, settings.unit)
    hashes = unit_hashes(pieces, settings)
    kept: list[str] = []
    removed = removed_chars = 0
    pending_separator: str | None = None
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        separator = pieces[index + 1] if index + 1 < len(pieces) else None
        h = hashes[index // 2]
        drop = h is not None and h in frequent and not (settings.keep_first and frequent[h] == doc_id)
        if drop:
            removed += 1
            removed_chars += len(piece)
            continue
        if kept and pending_separator is not None:
            kept.append(pending_separator)
        kept.append(piece)
        pending_separator = separator
    return Rewrite("".join(kept), removed, removed_chars, len(text))


def is_boilerplate_only(rewrite: Rewrite, settings: LineDedupSettings) -> bool:
    """A page that had units removed and is left with too little text was boilerplate around nothing."""
    return rewrite.units_removed > 0 and len(rewrite.text.strip()) < settings.min_chars_left
