"""The classifier filter (filters/classifier.py): any fastText model and positive label by configuration,
one-line errors, and the run-wide cut points (token-weighted buckets and top fraction)."""

from __future__ import annotations

import random

import fasttext
import numpy as np
import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.classifier import (
    FINE_BINS,
    ClassifierConfig,
    QualityClassifier,
    bucket_of,
    classifier_text,
    coarse_bin,
    cut_positions,
    position,
    refine_bins,
    stage_spec,
)
from curate.filters.mixing import DomainRule, rule_matches


@pytest.fixture(scope="module")
def good_bad_model(tmp_path_factory, jsonl_texts, jigsaw) -> str:
    """A model with labels __label__good / __label__bad (not DCLM's hq/cc): real CC documents' paragraphs
    against real Jigsaw comments."""
    good = [p for text in jsonl_texts for p in text.split("\n") if len(p.split()) > 15]
    bad = [row["comment_text"] for row in jigsaw("train", scored_only=False)]
    lines = [f"__label__good {classifier_text(t)}" for t in good] + [
        f"__label__bad {classifier_text(t)}" for t in bad
    ]
    random.Random(0).shuffle(lines)
    folder = tmp_path_factory.mktemp("goodbad")
    (folder / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = fasttext.train_supervised(
        str(folder / "train.txt"), epoch=25, lr=1.0, wordNgrams=2, thread=1, seed=1, verbose=0
    )
    model.save_model(str(folder / "goodbad.bin"))
    return str(folder / "goodbad.bin")


def test_another_positive_label_works_by_configuration_alone(good_bad_model):
    cfg = parse_config(
        {"stages": {"classifier": {"enabled": True, "models": [
            {"name": "gb", "path": good_bad_model, "positive_label": "good", "min_score": 0.5}]}}}
    ).stages.classifier  # fmt: skip
    scorer = stage_spec(cfg).make()
    docs = [
        {"text": "The committee reviewed the annual report and approved the budget for the coming year."},
        {"text": "you are a stupid idiot, go away and never come back"},
    ]
    annotations = scorer.annotate(docs)
    assert annotations[0]["gb_score"] > 0.5 > annotations[1]["gb_score"]
    assert [scorer.decide(a, d) for a, d in zip(annotations, docs, strict=True)] == [
        None,
        "gb_below_min_score",
    ]


def test_a_label_the_model_lacks_is_a_one_line_error(good_bad_model):
    cfg = ClassifierConfig(
        enabled=True, models=[{"name": "gb", "path": good_bad_model}]
    )  # default __label__hq
    with pytest.raises(CurateError) as error:
        stage_spec(cfg)
    assert "positive_label" in str(error.value) and "__label__hq" in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_model_and_config_errors(tmp_path):
    with pytest.raises(CurateError, match="not found"):
        QualityClassifier(
            ClassifierConfig(enabled=True, models=[{"name": "x", "path": str(tmp_path / "m.bin")}])
        )
    with pytest.raises(Exception, match="at least one model"):
        parse_config({"stages": {"classifier": {"enabled": True}}})


def _place(scores, weights, buckets=None, fraction=None, bins=1 << 16):
    coarse = np.zeros(bins, np.int64)
    for score, weight in zip(scores, weights, strict=True):
        coarse[coarse_bin(score, bins)] += weight
    fine = {c: np.zeros(FINE_BINS, np.int64) for c in refine_bins(coarse, buckets, fraction)}
    for score, weight in zip(scores, weights, strict=True):
        c, f = divmod(position(score, bins), FINE_BINS)
        if c in fine:
            fine[c][f] += weight
    return cut_positions(coarse, fine, buckets, fraction)


def test_buckets_share_tokens_evenly_even_when_scores_crowd_together():
    rng = random.Random(3)
    scores = [0.5 + rng.random() * 1e-4 for _ in range(600)]  # a weak model: all within 1e-4
    weights = [rng.randint(20, 160) for _ in scores]
    cuts = _place(scores, weights, buckets=10)
    total = sum(weights)
    for b in range(10):
        share = sum(
            w
            for s, w in zip(scores, weights, strict=True)
            if bucket_of(position(s, 1 << 16), cuts["edges"]) == b
        )
        assert abs(share / total - 0.1) < 0.01
    ordered = sorted(scores)
    assert bucket_of(position(ordered[0], 1 << 16), cuts["edges"]) == 0
    assert bucket_of(position(ordered[-1], 1 << 16), cuts["edges"]) == 9


def test_top_fraction_keeps_the_fewest_best_documents_holding_that_share():
    scores = [0.1, 0.2, 0.3, 0.4, 0.9]
    weights = [100, 100, 100, 100, 100]
    cuts = _place(scores, weights, fraction=0.3)
    kept = [s for s in scores if position(s, 1 << 16) >= cuts["keep_from"]]
    assert kept == [0.4, 0.9]  # two documents: 40% of the tokens, the fewest holding >= 30%
    assert [
        s for s in scores if position(s, 1 << 16) >= _place(scores, weights, fraction=0.4)["keep_from"]
    ] == [
        0.4,
        0.9,
    ]


def test_equal_scores_share_a_bucket():
    cuts = _place([0.7] * 10 + [0.2] * 10, [10] * 20, buckets=4)
    low, high = (bucket_of(position(s, 1 << 16), cuts["edges"]) for s in (0.2, 0.7))
    assert (low, high) == (1, 3)  # each half of the tokens is one position: its midpoint decides


def test_mixing_rules_on_a_bucket_annotation():
    rule = DomainRule(domain="hq", annotation="q_bucket", at_least=7)
    assert rule_matches(rule, {"q_bucket": 9}) and rule_matches(rule, {"q_bucket": 7})
    assert not rule_matches(rule, {"q_bucket": 6}) and not rule_matches(rule, {})
    band = DomainRule(domain="mid", annotation="q_score", at_least=0.2, at_most=0.5)
    assert rule_matches(band, {"q_score": 0.3}) and not rule_matches(band, {"q_score": 0.6})
    with pytest.raises(ValueError, match="need an annotation"):
        DomainRule(domain="x", lang="en", at_least=1)
