"""Gopher, C4 and FineWeb rules on real sample text (filters/quality.py and the rule modules)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from curate.config import parse_config
from curate.filters import c4, fineweb, gopher
from curate.filters.quality import STAGE, QualityConfig, QualityFilter, annotation_types, stage_spec
from curate.filters.text_units import TextUnits, profile_for


@pytest.fixture
def jsonl_docs(jsonl_texts) -> list[dict]:
    """The 20 real documents of the JSONL samples, as the filter sees them."""
    return [{"text": text, "url": None} for text in jsonl_texts]


@pytest.fixture(scope="module")
def warc_docs(extracted_pages):
    """`warc_docs(name)`: the extracted pages of a sample WARC as documents, by URL."""
    return lambda name: {p["url"]: {"url": p["url"], "text": p["text"]} for p in extracted_pages(name)}


def _quality(**groups) -> QualityFilter:
    return QualityFilter(parse_config({"stages": {"quality": groups}}).stages.quality)


def _reason(flt: QualityFilter, doc: dict) -> str | None:
    return flt.decide(flt.annotate([doc])[0], doc)


# --- reference definitions: datatrove 0.10.1's string-joining code, spelled out on our word tokens


def _ref_top_ngram_chars(words: list[str], n: int) -> int:
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def _ref_dup_ngram_chars(words: list[str], n: int) -> int:
    seen: set[tuple[str, ...]] = set()
    chars = idx = 0
    while idx < len(words) - n + 1:
        gram = tuple(words[idx : idx + n])
        if gram in seen:
            chars += sum(map(len, gram))
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return chars


def test_hashed_ngram_signals_equal_the_string_definitions_on_real_documents(jsonl_docs, warc_docs):
    docs = jsonl_docs + list(warc_docs("clueweb-quirk.warc.gz").values())
    checked_repeats = 0
    for doc in docs:
        units = TextUnits(doc["text"])
        signals = gopher.repetition_signals(units)
        length = len(doc["text"])
        for n in gopher.TOP_NGRAMS:
            expected = _ref_top_ngram_chars(units.tokens, n) / length
            assert signals[f"gopher_top_{n}gram_char_frac"] == pytest.approx(expected, abs=1e-12)
        for n in gopher.DUP_NGRAMS:
            expected = _ref_dup_ngram_chars(units.tokens, n) / length
            assert signals[f"gopher_dup_{n}gram_char_frac"] == pytest.approx(expected, abs=1e-12)
            checked_repeats += expected > 0
    assert checked_repeats > 10  # the comparison covered documents that do repeat n-grams


def test_repeated_ngram_walk_matches_the_definition_on_highly_repetitive_sequences(jsonl_docs):
    # few distinct words make repeats overlap and jumps land on first occurrences: the walk's rare paths
    vocabulary = TextUnits(jsonl_docs[0]["text"]).words[:4]
    rng = random.Random(0)
    for _ in range(200):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(5, 60))]
        units = TextUnits(" ".join(words))
        signals = gopher.repetition_signals(units)
        for n in gopher.DUP_NGRAMS:
            expected = _ref_dup_ngram_chars(units.tokens, n) / len(units.text)
            assert signals[f"gopher_dup_{n}gram_char_frac"] == pytest.approx(expected, abs=1e-12)


def test_exact_signals_of_a_real_english_document(jsonl_docs):
    text = jsonl_docs[0]["text"]  # 435 characters, 2 lines, 4 sentences
    units = TextUnits(text, profile_for("en"))
    assert gopher.quality_signals(units) == {
        "gopher_words": 72,  # as spaCy splits it: "you're" is "you" and "'re"
        "gopher_avg_word_length": 355 / 72,  # 355 characters / 72 words
        "gopher_hash_ratio": 0.0,
        "gopher_ellipsis_ratio": 0.0,
        "gopher_bullet_lines_ratio": 0.0,
        "gopher_ellipsis_lines_ratio": 0.0,
        "gopher_alpha_words_ratio": 72 / 82,  # 82 tokens: 72 words, 10 punctuation marks
        "gopher_stop_words": 7,
    }
    repetition = gopher.repetition_signals(units)
    # n-grams of every token, punctuation included, as datatrove 0.10.1's GopherRepetitionFilter counts
    # them (values checked against datatrove on this document)
    assert repetition["gopher_top_2gram_char_frac"] == 14 / 435
    assert repetition["gopher_top_3gram_char_frac"] == 38 / 435
    assert repetition["gopher_top_4gram_char_frac"] == 19 / 435
    assert repetition["gopher_dup_5gram_char_frac"] == 0.0
    assert repetition["gopher_dup_line_frac"] == 0.0
    c4_signals, kept = c4.signals(units, QualityConfig().c4)
    assert c4_signals["c4_sentences"] == 4
    assert kept.text == text
    fw = fineweb.signals(kept, QualityConfig().fineweb)
    assert fw == {
        "fineweb_line_punct_ratio": 1.0,
        "fineweb_short_line_ratio": 0.0,
        "fineweb_char_dup_ratio": 0.0,
        "fineweb_list_ratio": 1 / 82,  # one newline, 82 tokens
    }
    assert _reason(_quality(), {"text": text, "lang": "en"}) == "c4_too_few_sentences"


@pytest.mark.parametrize(
    ("groups", "reason"),
    [
        ({}, None),  # the defaults keep the document: each case below tightens one rule
        ({"gopher_quality": {"min_doc_words": 73}}, "gopher_short_doc"),
        ({"gopher_quality": {"max_doc_words": 70}}, "gopher_long_doc"),
        ({"gopher_quality": {"min_avg_word_length": 4.94}}, "gopher_below_avg_threshold"),
        ({"gopher_quality": {"max_avg_word_length": 4.92}}, "gopher_above_avg_threshold"),
        ({"gopher_quality": {"min_alpha_words_ratio": 0.9}}, "gopher_below_alpha_threshold"),
        ({"gopher_quality": {"min_stop_words": 8}}, "gopher_few_stop_words"),
        ({"gopher_repetition": {"top_2gram_char_frac": 0.03}}, "gopher_top_2gram"),
        ({"fineweb": {"new_line_ratio": 0.01}}, "fineweb_list_ratio"),
        ({"fineweb": {"short_line_length": 300}}, "fineweb_short_line_ratio"),
    ],
)
def test_each_rule_rejects_with_its_own_reason(jsonl_docs, groups, reason):
    doc = {"text": jsonl_docs[0]["text"], "lang": "en"}
    # C4's sentence count would reject this 4-sentence document first: off, so each rule is seen alone
    assert _reason(_quality(**groups, c4={"min_sentences": None}), doc) == reason


def test_c4_document_rules_on_real_lines(jsonl_docs):
    lines = jsonl_docs[0]["text"].split("\n")
    lorem = {
        "text": "\n".join([lines[0], "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", lines[1]])
    }
    assert _reason(_quality(), lorem) == "c4_lorem_ipsum"
    assert _reason(_quality(c4={"lorem_ipsum": False, "min_sentences": 3}), lorem) is None
    curly = {"text": "\n".join([*lines, "The handler is declared as void main() { return; } here."])}
    assert _reason(_quality(c4={"min_sentences": 2}), curly) == "c4_curly_bracket"
    # a line with "javascript" is dropped, so its sentences do not count
    script = {"text": lines[0] + "\nPlease enable JavaScript to view the comments. Thank you."}
    units = TextUnits(script["text"])
    signals, kept = c4.signals(units, QualityConfig().c4)
    assert signals["c4_javascript_lines"] == 1
    assert signals["c4_sentences"] == 2
    assert kept.text == lines[0]


def test_sentence_breaks_are_counted_as_one_alternation_counts_them(jsonl_docs, crawl_docs):
    # c4 counts with two patterns so that `re` can skip to candidates; the definition is their alternation
    definition = re.compile(r"[.!?…]+[\"'”’»)\]]*[^\S\n]+(?=\S)|[。！？]+(?=\S)")
    rng = random.Random(0)
    texts = [doc["text"] for doc in [*jsonl_docs, *crawl_docs]]
    texts += [
        "".join(rng.choice('.!?…。！？"”»)] \t\nab') for _ in range(rng.randint(1, 30)))
        for _ in range(20_000)
    ]
    for text in texts:
        lines = text.split("\n")
        expected = len(definition.findall(text)) + sum(1 for line in lines if line)
        assert c4.count_sentences(lines) == expected


def _c4_walk(units: TextUnits, cfg: c4.C4Config) -> tuple[dict[str, int], list[str]]:
    """C4's line rules as datatrove walks the lines, one line at a time (no shortcut)."""
    counts = dict.fromkeys(c4.ANNOTATIONS, 0)
    kept = []
    for index, raw in enumerate(units.lines):
        line = raw.strip()
        if any(len(word) > cfg.max_word_length for word in line.split()):
            counts["c4_long_word_lines"] += 1
            continue
        line = c4.CITATION.sub("", line)
        if cfg.terminal_punct and (not line.endswith(c4.END_PUNCTUATION) or line.endswith(c4.ELLIPSIS)):
            counts["c4_no_terminal_punct_lines"] += 1
            continue
        if units.count_words(index) < cfg.min_words_per_line:
            counts["c4_few_words_lines"] += 1
            continue
        if "lorem ipsum" in line.lower():
            counts["c4_lorem_ipsum"] = 1
        if "javascript" in line.lower():
            counts["c4_javascript_lines"] += 1
            continue
        if "{" in line:
            counts["c4_curly_bracket"] = 1
        if any(phrase in line.lower() for phrase in c4.POLICY_SUBSTRINGS):
            counts["c4_policy_lines"] += 1
            continue
        kept.append(line)
    counts["c4_sentences"] = c4.count_sentences(kept)
    return counts, kept


def test_c4_line_rules_count_what_a_line_by_line_walk_counts(jsonl_docs, crawl_docs):
    lines = jsonl_docs[0]["text"].split("\n")
    script = "Please enable JavaScript [1] to view the comments. Lorem ipsum dolor sit amet."
    docs = [*jsonl_docs, *crawl_docs, {"text": "\n".join([lines[0], script, lines[1]])}]
    fired: Counter[str] = Counter()
    for cfg in (QualityConfig().c4, QualityConfig(c4={"terminal_punct": True, "max_word_length": 40}).c4):
        for doc in docs:
            units = TextUnits(doc["text"], profile_for(doc.get("lang")))
            expected, kept = _c4_walk(units, cfg)
            signals, kept_units = c4.signals(units, cfg)
            assert signals == expected
            assert kept_units.text == "\n".join(kept).strip()
            fired.update(key for key, count in signals.items() if count)
    assert set(fired) == set(c4.ANNOTATIONS)  # every rule was met


def test_kept_text_token_count_is_carried_over_from_the_lines_exactly(jsonl_docs, warc_docs):
    docs = jsonl_docs + list(warc_docs("web-sample-0000.warc.gz").values())
    for doc in docs:
        _, kept = c4.signals(TextUnits(doc["text"]), QualityConfig().c4)
        assert kept.n_tokens == TextUnits(kept.text).n_tokens


def test_c4_terminal_punctuation_is_c4s_rule_but_off_in_fineweb_recipe(warc_docs):
    docs = warc_docs("web-sample-0000.warc.gz")
    units = TextUnits(docs["https://kyleclo.com/"]["text"])
    with_rule, _ = c4.signals(units, QualityConfig(c4={"terminal_punct": True}).c4)
    without, _ = c4.signals(units, QualityConfig().c4)
    assert with_rule["c4_no_terminal_punct_lines"] > 0
    assert without["c4_no_terminal_punct_lines"] == 0
    assert with_rule["c4_sentences"] < without["c4_sentences"]


def test_fineweb_judges_the_lines_c4_keeps(warc_docs):
    doc = warc_docs("web-sample-0001.warc.gz")
    # A page whose repeated short navigation lines C4 drops (fewer than 3 words) before FineWeb looks.
    for d in doc.values():
        units = TextUnits(d["text"])
        _, kept = c4.signals(units, QualityConfig().c4)
        raw = fineweb.signals(units, QualityConfig().fineweb)["fineweb_char_dup_ratio"]
        after = fineweb.signals(kept, QualityConfig().fineweb)["fineweb_char_dup_ratio"]
        if raw > 0.01 >= after:
            assert _quality().annotate([d])[0]["fineweb_char_dup_ratio"] == after
            return
    pytest.fail("expected a sample page with duplicated short lines")


def test_cjk_is_not_rejected_for_too_few_or_too_short_words(warc_docs):
    chinese = warc_docs("cc-main-2020-34-excerpt.warc.gz")["http://044545.com/topic/20200207/015849.html"]
    japanese = next(iter(warc_docs("clueweb-quirk.warc.gz").values()))
    word_rules = {"gopher_short_doc", "gopher_below_avg_threshold", "gopher_above_avg_threshold"}
    for doc, lang in ((chinese, "zh"), (japanese, "ja"), (chinese, None), (japanese, None)):
        annotations = _quality().annotate([{**doc, "lang": lang}])[0]
        assert annotations["gopher_words"] > 400
        assert _reason(_quality(), {**doc, "lang": lang}) not in word_rules
        assert _reason(
            _quality(c4=False, fineweb=False, gopher_repetition=False), {**doc, "lang": lang}
        ) not in (word_rules)
    # Judged as English, the page is split as datatrove's English filters split it (spaCy's English
    # tokenizer keeps a run of Chinese characters as one word) and fails the mean word length rule from
    # above, as in datatrove 0.10.1's GopherQualityFilter on the same text.
    assert (
        _reason(_quality(gopher_repetition=False), {**chinese, "lang": "en"}) == "gopher_above_avg_threshold"
    )


def test_rejection_follows_finewebs_rule_order(warc_docs):
    page = warc_docs("web-sample-0000.warc.gz")["https://soldaini.net/facts/"]
    # fails Gopher repetition (top 3-gram) and Gopher quality (11 words < 50): repetition comes first
    assert _reason(_quality(), page) == "gopher_top_3gram"
    assert _reason(_quality(gopher_repetition=False), page) == "gopher_short_doc"


def test_every_document_gets_every_enabled_signal_and_nothing_else(jsonl_docs):
    docs = jsonl_docs
    flt = _quality(c4=False, all_signals=True)
    expected = set(annotation_types(flt.cfg))
    assert not any(key.startswith("c4_") for key in expected)
    annotations = flt.annotate(docs)
    assert all(set(a) == expected for a in annotations)
    reasons = {flt.decide(a, d) for a, d in zip(annotations, docs, strict=True)}
    assert None in reasons and len(reasons) > 1  # kept and rejected alike carry the signals
    assert _reason(flt, {"text": "  \n"}) == "empty_text"


@pytest.fixture(scope="module")
def crawl_docs(warc_docs) -> list[dict]:
    """Every extracted page of the sample crawls, judged as English (as after langid) and without a
    language (langid off)."""
    names = ("web-sample-0000.warc.gz", "web-sample-0001.warc.gz", "cc-main-2024-22-whirlwind.warc.gz")
    pages = [doc for name in names for doc in warc_docs(name).values()]
    return [{**doc, "lang": lang} for doc in pages for lang in ("en", None)]


def test_rules_stop_at_the_first_failing_one_with_the_reason_all_signals_give(jsonl_docs, crawl_docs):
    docs = [*jsonl_docs, *crawl_docs]
    early, full = _quality(), _quality(all_signals=True)
    every = set(annotation_types(full.cfg))
    stopped = Counter()
    for doc in docs:
        fast, slow = early.annotate([doc])[0], full.annotate([doc])[0]
        reason = early.decide(fast, {**doc, **fast})
        assert reason == full.decide(slow, {**doc, **slow})
        assert fast == {key: slow[key] for key in fast}  # the same values where computed
        assert set(slow) == every
        if reason is None:
            assert set(fast) == every  # a kept document has every signal
        elif set(fast) != every:
            stopped[reason.split("_")[0]] += 1
    # the sample covers documents stopped in both Gopher groups and in C4, and fewer signals on them
    assert stopped["gopher"] > 5 and stopped["c4"] > 0


def test_a_document_rejected_by_an_early_group_has_no_signals_of_the_later_ones(warc_docs):
    page = warc_docs("web-sample-0000.warc.gz")["https://soldaini.net/facts/"]
    signals = _quality().annotate([page])[0]  # rejected by Gopher's top 3-gram rule
    assert signals["gopher_top_3gram_char_frac"] > 0.18
    assert not any(key.startswith(("gopher_words", "c4_", "fineweb_")) for key in signals)
    full = _quality(all_signals=True).annotate([page])[0]
    assert full["gopher_words"] == 11 and "fineweb_list_ratio" in full


def test_a_threshold_set_to_null_turns_only_that_rule_off(warc_docs):
    page = warc_docs("web-sample-0000.warc.gz")["https://soldaini.net/facts/"]
    flt = _quality(gopher_repetition={"top_3gram_char_frac": None})
    assert _reason(flt, page) == "gopher_top_4gram"  # the next rule in line
    assert "gopher_top_3gram_char_frac" in flt.annotate([page])[0]


def test_stage_spec_builds_the_filter_and_declares_its_annotations():
    cfg = parse_config({"stages": {"quality": {"gopher_quality": False}}}).stages.quality
    flt = stage_spec(cfg).make()
    declared = STAGE.annotations(cfg)
    assert declared == flt.annotation_types
    assert "gopher_words" not in declared
    assert declared["fineweb_list_ratio"] == "float32"
