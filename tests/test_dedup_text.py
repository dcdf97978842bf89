"""Normalisation, exact keys and shingles (filters/dedup_text.py)."""

from __future__ import annotations

from curate.filters.dedup_text import Normalization, exact_key, jaccard, shingle_hashes, shingle_set


def test_default_normalisation_ignores_case_spacing_punctuation_and_digits():
    norm = Normalization()
    assert norm.apply("Hello,  World!\n Page 12 of 30") == "hello world page 00 of 00"
    assert exact_key("Hello, World! Page 1", norm) == exact_key("hello world  page 7", norm)


def test_each_normalisation_can_be_turned_off():
    strict = Normalization(
        lowercase=False, normalize_whitespace=False, strip_punctuation=False, normalize_digits=False
    )
    assert exact_key("Hello world", strict) != exact_key("hello world", strict)
    assert exact_key("page 1", Normalization(normalize_digits=False)) != exact_key(
        "page 2", Normalization(normalize_digits=False)
    )


def test_normalisation_keeps_letters_of_any_script():
    assert Normalization().apply("Привет, МИР! 東京都。") == "привет мир 東京都"


def test_word_shingle_hashes_count_distinct_ngrams():
    text = "a b c d e f a b c d e"
    assert len(shingle_hashes(text, n=5)) == len(shingle_set(text, n=5)) == 7 - 1 + 0  # abcde repeats


def test_short_texts_become_one_shingle_and_empty_text_none():
    assert len(shingle_hashes("two words", n=5)) == 1
    assert len(shingle_hashes("", n=5)) == 0


def test_char_shingles_see_character_edits():
    a, b = shingle_hashes("near duplicate", 3, "char"), shingle_hashes("near duplicates", 3, "char")
    assert len(set(a) & set(b)) == len(a)  # every 3-gram of a is in b
    assert len(b) == len(a) + 1


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 1.0


def test_words_fast_path_equals_apply_then_split():
    text = "Über-cool_stuff: 3.14 apples,\tand   ДВА\u00a0banana's!  x2"
    for norm in (
        Normalization(),
        Normalization(strip_punctuation=False),
        Normalization(normalize_digits=False),
    ):
        assert norm.words(text) == norm.apply(text).split()
