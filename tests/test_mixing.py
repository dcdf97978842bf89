"""Mixing logic: domain rules, sampling rates from weights/budget/max_epochs, the seeded draw, and
token shares within 2% of the targets on real text."""

from __future__ import annotations

import pytest

from curate.config import ConfigError, parse_config
from curate.core.tokenizer import load, prepare
from curate.filters.mixing import DomainRule, assign_domain, copies, mixing_report, plan_mix, unit_draw

RULES_YAML = [{"domain": "wiki", "url_host": "*.wikipedia.org"}]
RULES = [
    DomainRule(domain="wiki", url_host="*.wikipedia.org"),
    DomainRule(domain="ccnet_head", annotation="bucket", equals="head"),
    DomainRule(domain="french", lang="fr"),
    DomainRule(domain="file91", source="*0091*"),
]


def test_rules_in_order_then_default():
    assert assign_domain({"url": "https://en.wikipedia.org/wiki/X", "lang": "fr"}, RULES, "web") == "wiki"
    assert assign_domain({"metadata": {"bucket": "head"}}, RULES, "web") == "ccnet_head"
    assert assign_domain({"bucket": "tail", "lang": "fr"}, RULES, "web") == "french"
    assert assign_domain({"source": "/d/cc_en_head-0091.jsonl.gz"}, RULES, "web") == "file91"
    assert assign_domain({"url": "not a url", "source": None}, RULES, "web") == "web"


def test_recipe_mistakes_fail_with_the_key():
    with pytest.raises(ConfigError, match="sets no condition"):
        parse_config({"stages": {"mixing": {"rules": [{"domain": "wiki"}]}}})
    with pytest.raises(ConfigError, match=r"stages.mixing: .*\['wikk'\] that no rule assigns"):
        parse_config({"stages": {"mixing": {"rules": RULES_YAML, "weights": {"wikk": 1, "web": 1}}}})
    with pytest.raises(ConfigError, match="not all zero"):
        parse_config({"stages": {"mixing": {"weights": {"web": 0}}}})
    config = parse_config({"stages": {"mixing": {"rules": RULES_YAML, "weights": {"wiki": 1, "web": 3}}}})
    assert config.stages.mixing.rules[0].url_host == "*.wikipedia.org"


def test_plan_with_budget_downsamples_and_repeats():
    plans = plan_mix({"a": 1000, "b": 100}, {"a": 1, "b": 1}, budget=400, max_epochs=4)
    assert plans["a"].rate == pytest.approx(0.2) and plans["b"].rate == pytest.approx(2.0)
    assert plans["a"].met and plans["b"].met


def test_plan_without_budget_meets_every_target():
    plans = plan_mix({"a": 1000, "b": 100}, {"a": 0.5, "b": 0.5}, budget=None, max_epochs=4)
    # b can give at most 400 tokens; the total is sized so both halves are met.
    assert plans["b"].rate == pytest.approx(4.0) and plans["a"].rate == pytest.approx(0.4)
    assert all(p.met for p in plans.values())


def test_shortfall_is_reported():
    plans = plan_mix({"a": 1000, "b": 100, "c": 50}, {"a": 0.5, "b": 0.5}, budget=2000, max_epochs=2)
    assert plans["b"].rate == 2.0 and not plans["b"].met
    assert plans["c"].rate == 0.0  # no weight: left out
    report = mixing_report(plans, {"a": 1000, "b": 200}, 2000, 2)
    assert report["short"] == ["b"]
    assert (
        report["domains"]["b"]["target_tokens"] == 1000 and report["domains"]["b"]["achieved_tokens"] == 200
    )
    assert any(line.startswith("WARNING: mixing: domain 'b'") for line in report["console"])


def test_draw_is_seeded_and_uniform():
    ids = [f"doc-{i}" for i in range(20000)]
    assert [unit_draw(3, i) for i in ids[:50]] == [unit_draw(3, i) for i in ids[:50]]
    assert [unit_draw(3, i) for i in ids[:50]] != [unit_draw(4, i) for i in ids[:50]]
    assert sum(copies(0.3, 0, i) for i in ids) / len(ids) == pytest.approx(0.3, abs=0.01)
    assert sum(copies(2.5, 0, i) for i in ids) / len(ids) == pytest.approx(2.5, abs=0.01)
    assert {copies(2.5, 0, i) for i in ids} == {2, 3}


@pytest.mark.parametrize(
    ("weights", "budget"),
    [
        ({"file91": 0.3, "web": 0.7}, None),
        ({"file91": 0.8, "web": 0.2}, None),
        ({"file91": 1, "web": 1}, 40_000),
    ],
)
def test_shares_within_two_percent_on_real_text(sentence_docs, weights, budget):
    docs = sentence_docs
    tokenizer = load(prepare("gpt2").json)
    lengths = [len(e.ids) + 1 for e in tokenizer.encode_batch([d["text"] for d in docs])]
    domains = [assign_domain(d, RULES, "web") for d in docs]
    available: dict[str, int] = {}
    for domain, n in zip(domains, lengths, strict=True):
        available[domain] = available.get(domain, 0) + n
    plans = plan_mix(available, weights, budget, max_epochs=4)
    total_weight = sum(weights.values())
    for seed in range(5):
        got: dict[str, int] = {}
        for doc, domain, n in zip(docs, domains, lengths, strict=True):
            got[domain] = got.get(domain, 0) + n * copies(plans[domain].rate, seed, doc["id"])
        total = sum(got.values())
        for domain, weight in weights.items():
            assert abs(got[domain] / total - weight / total_weight) <= 0.02, (seed, domain)
        report = mixing_report(plans, got, budget, 4)
        assert report["short"] == [] and all(entry["met"] for entry in report["domains"].values())
