"""Line/paragraph dedup's pure part: unit split, hashes, and the rewrite of one document."""

from __future__ import annotations

from curate.filters.dedup_text import Normalization
from curate.filters.line_dedup import (
    LineDedupSettings,
    document_unit_hashes,
    is_boilerplate_only,
    remove_frequent_units,
    split_units,
    unit_hash,
    unit_hashes,
)

NAV = "Home | Docs | About us"
FOOTER = "© 2024 Example Corp. All rights reserved."


def test_split_units_gives_the_text_back():
    for text in ("a\nb\n\nc\n", "", "one", "p1 line\np1 more\n\n\np2\n \n p3"):
        for unit in ("line", "paragraph"):
            assert "".join(split_units(text, unit)) == text
    assert split_units("p1\np1b\n\np2", "paragraph")[0::2] == ["p1\np1b", "p2"]


def test_hash_is_of_the_normalised_unit():
    normalization = Normalization()
    assert unit_hash("Home | DOCS | about us  ", normalization) == unit_hash(NAV, normalization)
    assert unit_hash(" -- | ", normalization) is None  # nothing left: never counted
    body = "Real content line.\n" + NAV + "\n" + NAV
    assert len(document_unit_hashes(body, LineDedupSettings())) == 2  # repeated inside a page: once


def test_removes_frequent_lines_and_their_line_breaks():
    settings = LineDedupSettings()
    frequent = {unit_hash(NAV, settings.normalization): None, unit_hash(FOOTER, settings.normalization): None}
    body = "The kernel's memory manager keeps pages.\nIt reclaims them under pressure.\n"
    rewrite = remove_frequent_units(f"{NAV}\n{body}{FOOTER}", "d1", frequent, settings)
    assert rewrite.text == body.rstrip("\n")
    assert rewrite.units_removed == 2
    assert rewrite.chars_removed == len(NAV) + len(FOOTER)
    assert abs(rewrite.char_fraction_removed - rewrite.chars_removed / len(f"{NAV}\n{body}{FOOTER}")) < 1e-12
    untouched = remove_frequent_units(body, "d1", frequent, settings)
    assert untouched.text == body and untouched.units_removed == 0


def test_keep_first_leaves_the_smallest_id_its_copy():
    settings = LineDedupSettings(keep_first=True)
    frequent = {unit_hash(NAV, settings.normalization): "a"}
    text = f"{NAV}\nSome text that is the page's own."
    assert remove_frequent_units(text, "a", frequent, settings).text == text
    assert remove_frequent_units(text, "b", frequent, settings).text == "Some text that is the page's own."


def test_paragraph_mode_removes_whole_paragraphs():
    settings = LineDedupSettings(unit="paragraph")
    cookie = "We use cookies.\nBy continuing you accept them."
    frequent = {unit_hash(cookie, settings.normalization): None}
    text = f"First paragraph, own text.\n\n{cookie}\n\nLast paragraph, own text."
    rewrite = remove_frequent_units(text, "x", frequent, settings)
    assert rewrite.text == "First paragraph, own text.\n\nLast paragraph, own text."
    assert rewrite.units_removed == 1


def test_boilerplate_only_needs_something_removed_and_little_left():
    settings = LineDedupSettings(min_chars_left=30)
    frequent = {unit_hash(NAV, settings.normalization): None}
    assert is_boilerplate_only(remove_frequent_units(f"{NAV}\nshort", "d", frequent, settings), settings)
    assert not is_boilerplate_only(remove_frequent_units("short", "d", frequent, settings), settings)


def test_fast_line_hashes_equal_hashing_each_line():
    settings = LineDedupSettings()
    text = "Ünïcode Straße — ΣΊΣΥΦΟΣ\n  Page 12 of 30!  \n\n---\ne\u0301t\u00e9 caf\u00e9\r\nlast ΣΑΣ"
    pieces = split_units(text, "line")
    assert unit_hashes(pieces, settings) == [unit_hash(p, settings.normalization) for p in pieces[0::2]]
