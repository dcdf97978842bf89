"""Word lists and word splitting agree on which scripts are written without spaces."""

from __future__ import annotations

import pytest

from curate.filters.toxicity import WordList


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("ឆ្កួត", "គាត់ជាមនុស្សឆ្កួតណាស់"),  # Khmer: no spaces between words
        ("ရူး", "သူကရူးနေတယ်"),  # Myanmar
        ("傻瓜", "你这个傻瓜"),  # Han
    ],
)
def test_terms_of_unspaced_scripts_match_inside_text(term, text):
    assert WordList([term]).count(text) == 1


def test_terms_of_spaced_scripts_match_whole_words_only():
    words = WordList(["ass"])
    assert words.count("a class act") == 0
    assert words.count("what an ass") == 1
