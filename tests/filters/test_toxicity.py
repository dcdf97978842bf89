"""Toxicity (filters/toxicity.py): the shipped classifier against human Jigsaw labels, keyword lists."""

from __future__ import annotations

import pytest
from sklearn.metrics import roc_auc_score

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.langid import default_model_path
from curate.filters.toxicity import (
    ANNOTATION_TYPES,
    STAGE,
    ToxicityConfig,
    ToxicityFilter,
    WordList,
    make_filter,
    stage_spec,
)


@pytest.fixture(scope="module")
def default_filter() -> ToxicityFilter:
    return make_filter(ToxicityConfig(enabled=True))


def scores(filt: ToxicityFilter, texts: list[str]) -> list[dict]:
    return filt.annotate([{"text": t} for t in texts])


@pytest.mark.parametrize("split", ["test", "train"])
def test_default_model_separates_human_labels(default_filter, jigsaw, split):
    rows = jigsaw(split)
    toxicity = [a["toxicity"] for a in scores(default_filter, [r["comment_text"] for r in rows])]
    assert roc_auc_score([int(r["toxic"]) for r in rows], toxicity) >= 0.85


def test_threshold_decides_and_reason_is_toxicity(default_filter, jigsaw):
    rows = jigsaw("train")
    docs = [{"text": r["comment_text"]} for r in rows]
    for scored, doc in zip(default_filter.annotate(docs), docs, strict=True):
        expected = "toxicity" if scored["toxicity"] >= 0.9 else None
        assert default_filter.decide(scored, doc) == expected
        assert scored["toxic_words"] is None  # no keyword list configured


def test_ldnoobw_lists_count_whole_words_and_phrases(ldnoobw):
    words = WordList.from_files([ldnoobw("en")])
    # "Scunthorpe" must not match inside a word; "two girls one cup" is a listed phrase
    assert words.count("Scunthorpe United played at home.") == 0
    assert words.count("The video two girls one cup is listed.") >= 1
    assert words.count("nothing to see here") == 0


def test_ldnoobw_unspaced_scripts_match_as_substrings(ldnoobw):
    words = WordList.from_files([ldnoobw("zh")])
    assert words.count("这是一部三级片的广告") == 1
    assert words.count("今天天气很好") == 0


def test_wordlists_reject_at_min_hits(jigsaw, ldnoobw):
    rows = jigsaw("train")
    en = ldnoobw("en")
    cfg = parse_config(
        {"stages": {"toxicity": {"enabled": True, "classifier": None, "wordlists": [en], "word_min_hits": 2}}}
    ).stages.toxicity
    filt = make_filter(cfg)
    docs = [{"text": r["comment_text"]} for r in rows]
    results = [(a, filt.decide(a, d)) for a, d in zip(filt.annotate(docs), docs, strict=True)]
    assert all(a["toxicity"] is None for a, _ in results)
    assert all((reason == "toxicity") == (a["toxic_words"] >= 2) for a, reason in results)
    flagged = [int(r["toxic"]) for r, (_, reason) in zip(rows, results, strict=True) if reason]
    assert flagged and sum(flagged) / len(flagged) > 0.5  # keyword hits are mostly human-labelled toxic


def test_per_language_wordlists_follow_the_document_language(ldnoobw):
    lists = {lang: ldnoobw(lang) for lang in ("en", "de")}
    filt = make_filter(ToxicityConfig(classifier=None, wordlists=lists))
    docs = [
        {"text": "Der Direktor war ein Arschloch.", "lang": "de"},
        {"text": "He said something about his arschloch.", "lang": "en"},  # a German word in English text
        {"text": "Ein Arschloch.", "lang": "fr"},  # no list for French: not computed
    ]
    assert [a["toxic_words"] for a in filt.annotate(docs)] == [1, 0, None]


def test_fasttext_classifier_probability_of_its_label():
    # No fastText toxicity model ships offline: lid.176 exercises the same path, with "de" as the label.
    cfg = ToxicityConfig(
        enabled=True, classifier=None, fasttext_model=default_model_path(), fasttext_label="de"
    )
    filt = make_filter(cfg)
    german, english = scores(filt, ["Das ist ein ganz normaler deutscher Satz.", "This is plain English."])
    assert german["toxicity"] > 0.9 > 0.1 > english["toxicity"]


def test_every_document_gets_every_key(default_filter):
    [scored] = scores(default_filter, [""])
    assert set(scored) == set(ANNOTATION_TYPES) == {"toxicity", "toxic_words"}


def test_stage_spec_needs_some_signal():
    with pytest.raises(CurateError, match="stages.toxicity"):
        stage_spec(ToxicityConfig(enabled=True, classifier=None))
    assert isinstance(stage_spec(ToxicityConfig(enabled=True)).make(), ToxicityFilter)
    assert STAGE.annotations(ToxicityConfig(enabled=True)) == ANNOTATION_TYPES


def test_unreadable_wordlist_is_a_one_line_error(tmp_path):
    with pytest.raises(CurateError, match="stages.toxicity.wordlists: cannot read .*missing"):
        make_filter(ToxicityConfig(classifier=None, wordlists=[str(tmp_path / "missing")]))
