"""Per-language word splitting, stop words and line units shared by the quality rules (filters/text_units)."""

from __future__ import annotations

import gzip
import json

from curate.filters.html_extract import extract_main_text
from curate.filters.text_units import FALLBACK, PROFILES, TextUnits, duplicates, profile_for
from curate.pipelines.readers import read_warc
from tests.conftest import shared_path


def _jsonl_texts(name: str) -> list[str]:
    with gzip.open(shared_path("jsonl", name), "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def _warc_texts(name: str) -> dict[str, str]:
    """Extracted main text of each HTML response in a sample WARC, by URL."""
    path = shared_path("crawl", name)
    with open(path, "rb") as raw:
        docs = [doc for doc in read_warc(raw, str(path)) if doc.get("html")]
    return {doc["url"]: extract_main_text(doc["html"], doc.get("charset")) for doc in docs}


def test_english_words_tokens_and_stop_words_on_a_real_document():
    text = _jsonl_texts("cc_en_head-0091.jsonl.gz")[0]
    units = TextUnits(text, profile_for("en"))
    assert len(units.words) == 71
    assert units.n_tokens == 81  # 71 words + 4 periods + 6 commas
    assert sum(map(len, units.words)) == 355
    assert "you're" in units.words  # an apostrophe inside a word keeps it whole
    # Gopher's stop words present: and, be, of, that, the, to, with ("have" is absent)
    assert units.n_stop_words == 7
    assert units.n_alpha_words == 71


def test_numbers_and_urls_stay_single_tokens():
    units = TextUnits("It costs 4,000 dollars, or 3.5 at https://example.org/a.html today.")
    assert units.words == [
        "It",
        "costs",
        "4,000",
        "dollars",
        "or",
        "3.5",
        "at",
        "https://example.org/a.html",
        "today",
    ]
    assert units.n_tokens == len(units.words) + 2  # the comma after "dollars" and the final period


def test_operator_runs_and_empty_parentheses_are_one_token_as_in_spacy():
    units = TextUnits("if (p->next == NULL) return f();")
    assert units.words == ["if", "p", "next", "NULL", "return", "f"]
    assert units.n_tokens == 6 + 6  # ( -> == ) () ;


def test_paths_and_file_names_stay_whole_as_in_spacy():
    units = TextUnits("Edit /etc/apt/sources.list, then run apt-get update.")
    assert units.words == ["Edit", "/etc", "/apt", "/sources.list", "then", "run", "apt", "get", "update"]


def test_japanese_is_split_per_character_and_katakana_run_not_into_one_long_word():
    texts = _warc_texts("clueweb-quirk.warc.gz")
    text = next(iter(texts.values()))
    first_line = text.splitlines()[0]
    assert first_line == "アイテム検索"
    # a katakana run is one loanword ("item"); kanji count one word each
    assert TextUnits(first_line, profile_for("ja")).words == ["アイテム", "検", "索"]
    assert TextUnits("ヘッドポーターのみで", profile_for("ja")).words == ["ヘッドポーター", "の", "み", "で"]
    units = TextUnits(text, profile_for("ja"))
    assert len(units.words) > 400  # hundreds of "words", so never "too few words"
    assert not units.checks_word_length
    assert units.n_stop_words >= 2  # の, に, は, を, ... are tokens of their own


def test_chinese_without_language_falls_back_to_script_detection():
    texts = _warc_texts("cc-main-2020-34-excerpt.warc.gz")
    chinese = texts["http://044545.com/topic/20200207/015849.html"]
    units = TextUnits(chinese)  # langid did not run
    assert units.profile is FALLBACK
    assert units.has_segmented_script
    assert not units.checks_word_length  # one-character words: Gopher's 3-10 mean length does not apply
    assert units.n_stop_words >= 2
    russian = TextUnits(texts["http://01spb.ru/company/"], profile_for("ru"))
    assert russian.checks_word_length
    assert russian.n_stop_words >= 2


def test_c4_word_count_per_line_counts_characters_in_segmented_scripts():
    units = TextUnits("アイテム検索\nSOLD OUT 商品")
    assert units.count_words(0) == 3  # アイテム (one katakana run), 検, 索
    assert units.count_words(1) == 4
    assert TextUnits("plain words, only").count_words(0) == 3


def test_unknown_language_uses_the_fallback_and_overrides_replace_stop_words():
    assert profile_for(None) is FALLBACK
    assert profile_for("xx") is FALLBACK
    assert PROFILES["en"].stop_words <= FALLBACK.stop_words
    custom = profile_for("en", {"en": ["invoice", "factoring"]})
    text = _jsonl_texts("cc_en_head-0091.jsonl.gz")[0]
    assert TextUnits(text, custom).n_stop_words == 2


def test_thai_stop_words_match_inside_unsegmented_text():
    units = TextUnits("ข้อมูลที่สำคัญและมีประโยชน์", profile_for("th"))
    assert units.n_stop_words == 3  # ที่, และ, มี


def test_duplicates_count_every_repeat_after_the_first():
    texts = _warc_texts("clueweb-quirk.warc.gz")
    lines = [line for text in texts.values() for line in text.split("\n") if line.strip()]
    first_seen: set[str] = set()
    repeats = chars = 0
    for line in lines:  # the definition, spelled out
        if line in first_seen:
            repeats, chars = repeats + 1, chars + len(line)
        first_seen.add(line)
    assert duplicates(lines) == (repeats, chars)
    assert repeats > 0


def test_lines_and_paragraphs():
    units = TextUnits("a b\n\n\nc d\n  \ne f\n")
    assert units.lines == ["a b", "", "", "c d", "  ", "e f"]
    assert units.newline_lines == ["a b", "c d", "e f"]
    assert units.paragraphs == ["a b", "c d\n  \ne f"]
