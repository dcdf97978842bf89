"""Language ID (filters/langid.py) with the real lid.176 model on real crawled pages."""

from __future__ import annotations

import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.html_extract import is_html_content_type
from curate.filters.langid import (
    ANNOTATION_TYPES,
    LangIdConfig,
    LangIdFilter,
    make_filter,
    normalize_language,
    stage_spec,
)


@pytest.fixture(scope="module")
def crawl_texts(extracted_pages):
    """`crawl_texts(name)`: main text of every HTML response in a real WARC from ../shared/data/crawl."""

    def texts(name: str) -> list[str]:
        pages = extracted_pages(name)
        return [p["text"] for p in pages if is_html_content_type(p["content_type"]) and p["text"].strip()]

    return texts


@pytest.fixture(scope="module")
def english_only() -> LangIdFilter:
    return make_filter(LangIdConfig(languages=["en"]))


def run(filt: LangIdFilter, texts: list[str]) -> list[tuple[dict, str | None]]:
    docs = [{"text": text} for text in texts]
    return [(a, filt.decide(a, d)) for a, d in zip(filt.annotate(docs), docs, strict=True)]


def test_english_pages_kept_with_score_at_least_threshold(english_only, crawl_texts):
    results = run(
        english_only, crawl_texts("web-sample-0000.warc.gz") + crawl_texts("web-sample-0001.warc.gz")
    )
    kept = [a for a, reason in results if reason is None]
    assert len(kept) >= 30  # 37 real Dolma pages, nearly all confidently English
    assert all(a["lang"] == "en" and a["lang_score"] >= 0.65 for a in kept)
    # the few rejected ones are English below FineWeb's 0.65 confidence, rejected for that reason
    assert all(reason == "langid" and a["lang_score"] < 0.65 for a, reason in results if reason)


def test_non_english_pages_rejected(english_only, crawl_texts):
    results = run(english_only, crawl_texts("clueweb-quirk.warc.gz"))  # a Japanese site
    assert len(results) == 29
    assert all(a["lang"] == "ja" and reason == "langid" for a, reason in results)


def test_multilingual_crawl_languages_and_decisions(english_only, crawl_texts):
    results = run(english_only, crawl_texts("cc-main-2020-34-excerpt.warc.gz"))
    langs = {a["lang"] for a, _ in results}
    assert {"zh", "ru", "de", "nl", "ja", "en"} <= langs
    for scores, reason in results:
        english = scores["lang"] == "en" and scores["lang_score"] >= 0.65
        assert reason == (None if english else "langid")


def test_all_languages_keeps_confident_pages_of_any_language(crawl_texts):
    filt = make_filter(parse_config({"stages": {"langid": {"languages": "all"}}}).stages.langid)
    results = run(filt, crawl_texts("clueweb-quirk.warc.gz"))
    assert all(reason is None and a["lang_score"] >= 0.65 for a, reason in results)


def test_min_score_rejects_low_confidence(crawl_texts):
    strict = make_filter(LangIdConfig(languages=None, min_score=0.99))
    results = run(strict, crawl_texts("web-sample-0001.warc.gz"))
    assert all((reason == "langid") == (a["lang_score"] < 0.99) for a, reason in results)
    assert any(reason == "langid" for _, reason in results)


def test_empty_text_gets_none_and_is_rejected(english_only):
    [(scores, reason)] = run(english_only, ["  \n "])
    assert scores == {"lang": None, "lang_score": None}
    assert reason == "langid"


def test_multiline_text_is_predicted_whole(english_only):
    # fastText refuses text containing newlines; the filter joins lines as FineWeb does
    [(scores, _)] = run(english_only, ["Das ist ein Satz.\nUnd noch ein deutscher Satz hier."])
    assert scores["lang"] == "de"


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("__label__en", "en"),
        ("__label__eng_Latn", "en"),
        ("__label__cmn_Hani", "zh"),
        ("__label__arb_Arab", "ar"),
        ("__label__srp_Cyrl", "sr"),
        ("__label__als", "als"),  # lid.176's Alemannic label is not remapped
        ("deu", "de"),
        ("yue_Hant", "yue"),  # no two-letter code: kept
    ],
)
def test_label_normalisation(label, code):
    assert normalize_language(label) == code


def test_configured_three_letter_codes_match_two_letter_labels(crawl_texts):
    filt = make_filter(LangIdConfig(languages=["jpn"]))
    results = run(filt, crawl_texts("clueweb-quirk.warc.gz"))
    assert all(reason is None for _, reason in results)


def test_stage_spec_builds_filter_and_declares_annotations():
    spec = stage_spec(LangIdConfig())
    assert spec.annotation_types == ANNOTATION_TYPES == {"lang": "string", "lang_score": "float64"}
    assert isinstance(spec.make(), LangIdFilter)


def test_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises(CurateError, match="stages.langid.model: fastText model .*nope.bin not found"):
        make_filter(LangIdConfig(model=str(tmp_path / "nope.bin")))


def test_one_predict_call_per_batch_gives_each_text_its_own_prediction(crawl_texts, jsonl_texts):
    """fastText predicts every line alone: the batched call (top_labels) returns, for real texts in many
    languages, exactly the labels and probabilities of one call per text, in order."""
    from curate.filters.langid import default_model_path, load_fasttext, one_line, top_labels

    model = load_fasttext(default_model_path(), "langid.model")
    others = ["Der Hund läuft schnell über die Straße.", "Le chat dort sur le canapé.", "Это тест."]
    texts = [*crawl_texts("web-sample-0000.warc.gz"), *jsonl_texts, *others, "", "   "]
    batched = top_labels(model, texts, k=2)
    for text, best in zip(texts, batched, strict=True):
        labels, probs = model.predict(one_line(text), k=2)
        assert best == [(label, min(1.0, float(p))) for label, p in zip(labels, probs, strict=True)]
    assert {best[0][0] for best in batched} >= {"__label__en", "__label__de", "__label__fr", "__label__ru"}
