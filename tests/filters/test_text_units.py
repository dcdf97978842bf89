"""Per-language word splitting, stop words and line units shared by the quality rules (filters/text_units)."""

from __future__ import annotations

import random
import re

import pytest

from curate.filters.text_units import FALLBACK, PROFILES, TextUnits, duplicates, profile_for


@pytest.fixture(scope="module")
def warc_texts(extracted_pages):
    """`warc_texts(name)`: extracted main text of each HTML response in a sample WARC, by URL."""
    return lambda name: {page["url"]: page["text"] for page in extracted_pages(name)}


def test_english_words_tokens_and_stop_words_on_a_real_document(jsonl_rows):
    text = jsonl_rows[0]["text"]
    units = TextUnits(text, profile_for("en"))
    # as spaCy's English tokenizer (datatrove's Gopher filter): 82 tokens, 72 of them words
    assert len(units.words) == 72
    assert units.n_tokens == 82  # 72 words + 4 periods + 6 commas
    assert sum(map(len, units.words)) == 355
    assert "'re" in units.words and "you" in units.words  # spaCy's exception: you're -> you, 're
    # Gopher's stop words present: and, be, of, that, the, to, with ("have" is absent)
    assert units.n_stop_words == 7
    assert units.n_alpha_words == 72


@pytest.mark.parametrize(
    ("text", "words", "punctuation"),
    [
        pytest.param(
            "It costs 4,000 dollars, or 3.5 at https://example.org/a.html today.",
            ["It", "costs", "4,000", "dollars", "or", "3.5", "at", "https://example.org/a.html", "today"],
            2,  # the comma after "dollars" and the final period
            id="numbers-and-urls-stay-single-tokens",
        ),
        # Expected tokens are spaCy 3.8's (spacy.blank("en"), as datatrove calls it) for the same text.
        pytest.param(
            "if (p->next == NULL) return f();",
            ["if", "p->next", "NULL", "return", "f"],
            7,  # ( = = ) ( ) ;  -- "->" is no infix between letters; "=" and "(" are prefixes
            id="code-as-spacy-splits-it",
        ),
        pytest.param(
            "Edit /etc/apt/sources.list, then run apt-get update.",
            ["Edit", "/etc", "apt", "sources.list", "then", "run", "apt", "get", "update"],
            5,  # / / , - .  -- "/" and "-" between letters are infixes
            id="paths-split-at-inner-slashes-as-in-spacy",
        ),
        pytest.param(
            "Run ls -t --color=auto or sizeof(struct page) on Device¶, e.g. twice; don't.",
            [
                "Run",
                "ls",
                "-t",
                "--color",
                "auto",
                "or",
                "sizeof(struct",
                "page",
                "on",
                "Device¶",
                "e.g.",
                "twice",
                "do",
                "n't",
            ],  # fmt: skip
            5,  # = ) , ; .  -- flags, "(" inside a chunk, "¶" stay attached; e.g. and don't: exceptions
            id="flags-calls-and-contractions-as-spacy-splits-them",
        ),
    ],
)
def test_words_and_tokens_split_as_in_spacy(text, words, punctuation):
    units = TextUnits(text)
    assert units.words == words
    assert units.n_tokens == len(words) + punctuation


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # Expected tokens are datatrove 0.10.1's split_into_words (spaCy 3.8's English tokenizer). Pages of
        # the Debian handbook's zh-CN edition mix Chinese and English, and FineWeb's language ID calls some
        # of them English; datatrove's filters then split them so, CJK runs whole.
        pytest.param(
            "用户清单通常保存在 /etc/passwd 文件内，把哈希编码后的密码保存在 /etc/shadow 文件内。",
            ["用户清单通常保存在", "/etc", "/", "passwd", "文件内，把哈希编码后的密码保存在"]
            + ["/etc", "/", "shadow", "文件内", "。"],
            id="cjk-runs-in-english-text-stay-whole-as-in-spacy",
        ),
        # spaCy 3.8's symbol list includes the degree sign (docs.kernel.org/hwmon/tmp103.html)
        pytest.param(
            "It has a resolution of 1°C. The TMP103 reads 25°C (77°F).",
            ["It", "has", "a", "resolution", "of", "1", "°", "C", ".", "The", "TMP103", "reads", "25", "°"]
            + ["C", "(", "77", "°", "F", ")", "."],
            id="degree-sign-split-off-as-in-spacy",
        ),
    ],
)
def test_english_profile_splits_every_line_as_spacy_english(text, tokens):
    units = TextUnits(text, profile_for("en"))
    assert units.tokens == tokens
    # C4's words per line are datatrove's str.split ones, not one per Chinese character
    assert units.count_words(0) == len(text.split())


def test_japanese_is_split_per_character_and_katakana_run_not_into_one_long_word(warc_texts):
    texts = warc_texts("clueweb-quirk.warc.gz")
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


def test_chinese_without_language_falls_back_to_script_detection(warc_texts):
    texts = warc_texts("cc-main-2020-34-excerpt.warc.gz")
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


def test_unknown_language_uses_the_fallback_and_overrides_replace_stop_words(jsonl_rows):
    assert profile_for(None) is FALLBACK
    assert profile_for("xx") is FALLBACK
    assert PROFILES["en"].stop_words <= FALLBACK.stop_words
    custom = profile_for("en", {"en": ["invoice", "factoring"]})
    text = jsonl_rows[0]["text"]
    assert TextUnits(text, custom).n_stop_words == 2


def test_thai_stop_words_match_inside_unsegmented_text():
    units = TextUnits("ข้อมูลที่สำคัญและมีประโยชน์", profile_for("th"))
    assert units.n_stop_words == 3  # ที่, และ, มี


def test_duplicates_count_every_repeat_after_the_first(warc_texts):
    texts = warc_texts("clueweb-quirk.warc.gz")
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


def test_paragraphs_are_the_text_split_at_runs_of_two_or_more_newlines(jsonl_texts, warc_texts):
    # Gopher's (datatrove's) definition is re.split(r"\n{2,}", text.strip()); TextUnits splits with str
    rng = random.Random(0)
    texts = [*jsonl_texts, *warc_texts("web-sample-0001.warc.gz").values(), ""]
    texts += ["".join(rng.choice("ab \t\r\n\n\n") for _ in range(rng.randint(1, 25))) for _ in range(20_000)]
    for text in texts:
        assert TextUnits(text).paragraphs == re.split(r"\n{2,}", text.strip())


def _per_line_units(units: TextUnits) -> tuple[list[list[str]], list[list[str]]]:
    """The reference: every line split on its own (what the whole-document pass must reproduce)."""
    from curate.filters.text_units import split_line

    parts = [split_line(line, False) for line in units.lines]
    return [texts for texts, _ in parts], [marked for _, marked in parts]


@pytest.mark.parametrize("lang", ["en", "de", None])
def test_whole_document_split_equals_line_by_line_split_on_real_texts(jsonl_texts, warc_texts, lang):
    """The one-pass split over a document (memoised per chunk) gives each line's tokens, counts and
    alphabetic words exactly as splitting line by line does, on every real sample text, including line
    breaks that are not "\\n" (form feed, U+2028, \\x1c) and chunks the memo sees for the second time."""
    texts = [*jsonl_texts, *warc_texts("web-sample-0000.warc.gz").values()]
    texts.append("a,b\x0cc.d e\u2028f-g:h\x1cdon't (x)\r\n€5 5km\x85i.e. ಠ_ಠ")
    for text in texts + texts[:3]:
        units = TextUnits(text, profile_for(lang))
        if units.has_segmented_script and lang != "en":
            continue  # split line by line anyway
        line_texts, line_marked = _per_line_units(units)
        assert units.tokens == [token for line in line_texts for token in line]
        assert units.words == [token for line in line_marked for token in line if token]
        assert units.line_token_counts == [len(marked) for marked in line_marked]
        chunks_per_line = [len(line.split()) for line in units.lines]
        assert [units.count_words(i) for i in range(len(units.lines))] == chunks_per_line
        alpha = sum(1 for word in units.words if re.search(r"[^\W\d_]", word))
        assert units.n_alpha_words == alpha
