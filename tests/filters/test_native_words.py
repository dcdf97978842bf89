"""The Rust splitter (native/, filters/native_words.py) gives exactly what the pure-Python splitter gives:
tokens, words, per-line counts, alphabetic words, Gopher's n-gram counts, and so every quality signal and
rejection reason. `make setup` builds it; CI fails (never skips) where it is missing."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

import pytest

from curate.filters import gopher, native_words, text_units
from curate.filters.quality import QualityConfig, QualityFilter
from curate.filters.spacy_words import split_chunk
from curate.filters.text_units import TextUnits, document_tokens, profile_for, split_line


@pytest.fixture(scope="module")
def native():
    if text_units._NATIVE is None:
        if os.environ.get("CI"):
            pytest.fail("the curate_native extension is not built: `make setup` builds it (native/)")
        pytest.skip("curate_native is not built here (pip install ./native) or CURATE_NATIVE=0")
    return text_units._NATIVE


@pytest.fixture
def in_python(monkeypatch):
    """Run the pure-Python splitter and n-gram counts instead of the extension, inside a `with`."""

    class Switch:
        def __enter__(self):
            monkeypatch.setattr(text_units, "_NATIVE", None)
            monkeypatch.setattr(gopher, "_NATIVE_NGRAMS", None)

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Switch()


def both(in_python, compute):
    with in_python:
        expected = compute()
    return compute(), expected


EDGE_CASES = {
    "unicode-letters": "Größe naïve café Ærø straße İstanbul ΣΊΣΥΦΟΣ Привет, мир! ǅemal",
    "emoji": "great 😀😀 day!👍🏽 ok👌. family: 👨‍👩‍👧 flags 🇩🇪🇫🇷 ♥♥ ★rated★ ©2024 ™",
    "cjk": "用户清单通常保存在 /etc/passwd 文件内，把哈希。アイテム検索 한국어 문장입니다. 中文English混合",
    "combining-marks": "e\u0301te\u0301 cafe\u0301, n\u0303 a\u0308\u0308 \u0915\u094d\u0937 "
    "\u0e01\u0e34\u0e19",
    "urls": "see https://example.org/a?b=c#d, www.x.co.uk/path. mail me@host.io or 192.168.0.1:8080/x "
    "http://[::1]/ ftp://user:pw@files.example.com:21/f.txt sources.list e.g. U.S.A. a.b.c.d",
    "numbers": "1,000 3.5 -4 +7 1e-5 2^10 5*3 10-20 1/2 50% $5 5$ US$10 10km 3.5GB 1°C 25°F. ²³ ١٢٣ Ⅻ 一二",
    "punctuation-runs": "wait... what?!? ---- ==> <!-- --> (((nested))) ''quoted'' «guillemets» …… "
    "¿qué? ‽ !!",
    "contractions": "don't can't won't I'm you're it's Cannot gonna y'all 'tis rock'n'roll O'Neil DON'T",
    "code": "if (p->next == NULL) { return f(x)[0]; } // a+=b; x<<2; a<b>c; std::vector<int> v{1,2};",
    "long-token": "x" * 5000 + " " + "ab-" * 700 + " " + "." * 300 + " " + "https://e.com/" + "a/" * 900,
    "whitespace": "a\tb\x0bc\x0cd\x1ce\x1df\x1eg\x85h\u2028i\u2029j\u00a0k\u3000l\r\nm\rn\n\n o ",
    "emoticons": ":) :-( <3 </3 ^_^ ;-) :D xD (>_<) ಠ_ಠ o.O :p",
}


@pytest.mark.parametrize("text", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_split_the_same_natively_and_in_python(native, in_python, text):
    got, expected = both(in_python, lambda: document_tokens(text))
    assert got == expected
    for chunk in text.split():
        assert native.split_chunk_tokens(chunk) == split_chunk(chunk), chunk
    got_line, expected_line = both(in_python, lambda: split_line(text, False))
    assert got_line == expected_line
    assert got_line[0] == got.tokens


def test_tokens_words_and_line_counts_of_a_small_text(native):
    units = document_tokens("Hello, world! Don't panic...\nSee e.g. https://x.org/a.\n\n")
    assert units.tokens == ["Hello", ",", "world", "!", "Do", "n't", "panic", "...", "See", "e.g."] + [
        "https://x.org/a",
        ".",
    ]
    assert units.words == ["Hello", "world", "Do", "n't", "panic", "See", "e.g.", "https://x.org/a"]
    assert units.line_counts == [8, 4, 0]  # str.splitlines: the blank line is a line
    assert units.alpha_words == 8


def test_random_strings_of_tricky_characters_split_the_same(native, in_python):
    # prefixes, suffixes, infixes, URL parts, letters of each case, digits of other scripts, symbols
    pool = list("aZé.,:;!?'\"-–—~/<>=+*^%$€£#@_()[]{}…°²0123456789") + [
        "ǅ",
        "ß",
        "ٳ",
        "١",
        "😀",
        "中",
        "n't",
        "'s",
    ]
    pool += ["http://", "www.", ".com", "km", "US$", "e.g.", "..", " "]
    rng = random.Random(29)
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(3000)]
    for text in texts:
        for chunk in text.split():
            assert native.split_chunk_tokens(chunk) == split_chunk(chunk), chunk
    got, expected = both(in_python, lambda: [document_tokens(t) for t in texts])
    assert got == expected


def test_a_lone_surrogate_falls_back_to_python(native, in_python):
    text = "broken \ud800 surrogate, still split"
    got, expected = both(in_python, lambda: (document_tokens(text), split_line(text, False)))
    assert got == expected
    assert got[0].words == ["broken", "\ud800", "surrogate", "still", "split"]


def test_beam_bundle_threads_share_the_splitter(native):
    results: list = []
    worker = threading.Thread(target=lambda: results.append(document_tokens("threads 😀 too.")))
    worker.start()
    worker.join()
    assert results == [document_tokens("threads 😀 too.")]
    assert results[0].tokens == ["threads", "😀", "too", "."]


def _datatrove_ngram_chars(words: list[str], n: int) -> tuple[int, int]:
    """datatrove 0.10.1's find_top_duplicate and find_all_duplicate (gopher_repetition_filter.py)."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    top_gram, top_count = Counter(grams).most_common(1)[0]
    unique: set[str] = set()
    repeated, i = 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in unique:
            repeated += len(gram)
            i += n
        else:
            unique.add(gram)
            i += 1
    return len(top_gram) * top_count, repeated


def test_ngram_counts_are_datatroves_natively_and_with_numpy(native, in_python):
    text = " ".join(["the cat sat on the mat ."] * 7 + ["a b a b a b c"] * 3 + ["unique words end here"])
    units = TextUnits(text)
    got, expected = both(in_python, lambda: gopher.repetition_signals(units))
    assert got == expected
    for n in gopher.TOP_NGRAMS:
        assert got[f"gopher_top_{n}gram_char_frac"] == _datatrove_ngram_chars(units.tokens, n)[0] / len(text)
    for n in gopher.DUP_NGRAMS:
        assert got[f"gopher_dup_{n}gram_char_frac"] == _datatrove_ngram_chars(units.tokens, n)[1] / len(text)
    assert got["gopher_dup_5gram_char_frac"] > 0.4


def test_real_pages_get_the_same_tokens_signals_and_reasons(native, in_python, crawl_pages, jsonl_texts):
    """Every page of ../shared/data's crawl samples and JSONL: all units, all quality signals and the
    rejection reason, each in the documents' own language profile and in English."""
    docs = [dict(page, lang=lang) for page in crawl_pages for lang in (None, "en")]
    docs += [{"text": text, "lang": "en"} for text in jsonl_texts]
    rules = QualityFilter(QualityConfig())

    def judge():
        units = [TextUnits(doc["text"], profile_for(doc["lang"])) for doc in docs]
        split = [(u.tokens, u.words, u.line_token_counts, u.n_tokens, u.n_alpha_words) for u in units]
        annotations = rules.annotate(docs)
        return split, annotations, [rules.decide(a, d) for a, d in zip(annotations, docs, strict=True)]

    got, expected = both(in_python, judge)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert got[2] == expected[2]
    assert len({reason for reason in got[2]}) > 3  # kept pages and several rules' rejections
    chunks = {chunk for doc in docs for chunk in doc["text"].split()}
    assert [native.split_chunk_tokens(c) for c in chunks] == [split_chunk(c) for c in chunks]


def test_switched_off_with_curate_native_0(monkeypatch):
    monkeypatch.setenv("CURATE_NATIVE", "0")
    assert not native_words.enabled()
    assert native_words.ngram_chars() is None
    assert native_words.splitter(text_units._HAS_LETTER, text_units._DATATROVE_PUNCTUATION) is None
