"""Domain mixing, pure logic: which domain a document belongs to, how often each domain is sampled to
meet its target share of output tokens, and the seeded per-document draw.

The draw is a hash of (seed, document id), never a random generator, so every runner and every worker
count keeps exactly the same documents with the same number of copies.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from curate.core.config import StageConfig, Strict
from curate.core.ids import seeded_hash


class DomainRule(Strict):
    """One rule of `mixing.rules`; every condition it sets must hold. Rules are tried in order."""

    domain: str
    url_host: str | None = Field(None, description="Glob on the URL host, e.g. '*.wikipedia.org'.")
    source: str | None = Field(None, description="Glob on the source file path.")
    lang: str | None = None
    annotation: str | None = Field(None, description="A document annotation or input metadata field.")
    equals: Any = Field(None, description="The annotation's value; null: the annotation is present.")
    at_least: float | None = Field(None, description="The annotation is a number >= this.")
    at_most: float | None = Field(None, description="The annotation is a number <= this.")

    @model_validator(mode="after")
    def _has_a_condition(self) -> DomainRule:
        if (self.at_least is not None or self.at_most is not None) and self.annotation is None:
            raise ValueError(f"rule for domain '{self.domain}': at_least/at_most need an annotation")
        if self.url_host is None and self.source is None and self.lang is None and self.annotation is None:
            raise ValueError(
                f"rule for domain '{self.domain}' sets no condition (url_host, source, lang, annotation)"
            )
        return self


class MixingConfig(StageConfig):
    enabled: bool = False
    rules: list[DomainRule] = Field(default_factory=list)
    default_domain: str = "web"
    weights: dict[str, float] = Field(default_factory=dict, description="Target token share per domain.")
    token_budget: int | None = Field(
        None, gt=0, description="Output tokens; null: as many as the data allows."
    )
    max_epochs: float = Field(
        4.0, ge=1.0, le=1000.0, description="Most times a document may be repeated to up-sample."
    )
    seed: int = 0

    @model_validator(mode="after")
    def _weights_name_known_domains(self) -> MixingConfig:
        known = {rule.domain for rule in self.rules} | {self.default_domain}
        unknown = sorted(set(self.weights) - known)
        if unknown:
            raise ValueError(
                f"weights name domain(s) {unknown} that no rule assigns (known: {sorted(known)})"
            )
        if any(w < 0 for w in self.weights.values()) or (self.weights and sum(self.weights.values()) <= 0):
            raise ValueError("weights must be >= 0 and not all zero")
        return self


# Rejection reasons of the mixing stage.
DOWNSAMPLED = "downsampled"
NOT_IN_MIX = "not_in_mix"  # the document's domain has no (or a zero) weight
# Shares are reported met when achieved is within this of the target (the acceptance tolerance).
SHARE_TOLERANCE = 0.02


def _host(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def rule_matches(rule: DomainRule, doc: Mapping[str, Any]) -> bool:
    """All conditions a rule sets must hold; a rule that sets none matches nothing."""
    checks = []
    if rule.url_host is not None:
        checks.append(fnmatch.fnmatchcase(_host(doc.get("url")), rule.url_host.lower()))
    if rule.source is not None:
        checks.append(fnmatch.fnmatchcase(str(doc.get("source") or ""), rule.source))
    if rule.lang is not None:
        checks.append(doc.get("lang") == rule.lang)
    if rule.annotation is not None:
        value = doc.get(rule.annotation, (doc.get("metadata") or {}).get(rule.annotation))
        checks.append(value is not None if rule.equals is None else value == rule.equals)
        if rule.at_least is not None or rule.at_most is not None:
            number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            checks.append(
                number is not None
                and (rule.at_least is None or number >= rule.at_least)
                and (rule.at_most is None or number <= rule.at_most)
            )
    return bool(checks) and all(checks)


def assign_domain(doc: Mapping[str, Any], rules: Sequence[DomainRule], default: str) -> str:
    """The first matching rule's domain (rules are ordered, like a firewall), else ``default``."""
    for rule in rules:
        if rule_matches(rule, doc):
            return rule.domain
    return default


@dataclass(frozen=True)
class DomainPlan:
    available: int  # tokens of this domain before mixing
    target_share: float
    target_tokens: float
    rate: float  # expected copies per document (< 1 down-samples, > 1 repeats)

    @property
    def met(self) -> bool:
        return self.available * self.rate >= self.target_tokens * (1 - 1e-9)


def plan_mix(
    available: Mapping[str, int],
    weights: Mapping[str, float],
    budget: int | None,
    max_epochs: float,
) -> dict[str, DomainPlan]:
    """Sampling rate per domain so that each domain's output tokens match its share of the total.

    The total is ``budget`` when given; otherwise the largest total, at most the input's size, at which
    every domain that has data can meet its share within ``max_epochs`` (so without a budget, targets are
    always met). Domains without a weight get rate 0; a domain that cannot meet its target even at
    ``max_epochs`` gets ``max_epochs`` and is reported short.
    """
    if not weights:  # no mix asked for: every document once
        return {d: DomainPlan(n, 0.0, float(n), 1.0) for d, n in available.items()}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("mixing weights must be >= 0 and not all zero")
    norm = sum(weights.values())
    shares = {d: w / norm for d, w in weights.items()}
    if budget is None:
        present = {d: s for d, s in shares.items() if s > 0 and available.get(d, 0) > 0}
        limit = min((available[d] * max_epochs / s for d, s in present.items()), default=0.0)
        total = min(float(sum(available.get(d, 0) for d in present)), limit)
    else:
        total = float(budget)
    plans: dict[str, DomainPlan] = {}
    for domain in sorted(set(available) | set(shares)):
        have, share = available.get(domain, 0), shares.get(domain, 0.0)
        target = share * total
        rate = min(target / have, max_epochs) if have else 0.0
        plans[domain] = DomainPlan(have, share, target, rate)
    return plans


def plan_to_dict(plans: Mapping[str, DomainPlan]) -> dict[str, dict[str, Any]]:
    return {d: asdict(p) for d, p in plans.items()}


def unit_draw(seed: int, doc_id: str) -> float:
    """A uniform draw in [0, 1) from the document id alone."""
    return seeded_hash(seed, doc_id) / 2.0**64


def copies(rate: float, seed: int, doc_id: str) -> int:
    """How many times a document goes into the shards: floor(rate), plus one with probability frac(rate)."""
    whole = math.floor(rate)
    return whole + (1 if unit_draw(seed, doc_id) < rate - whole else 0)


def mixing_report(
    plans: Mapping[str, DomainPlan], achieved: Mapping[str, int], budget: int | None, max_epochs: float
) -> dict[str, Any]:
    """Achieved vs target per domain, for stats.json (`mixing`) and the end of the console output."""
    total = sum(achieved.values())
    domains: dict[str, Any] = {}
    short: list[str] = []
    for domain, plan in sorted(plans.items()):
        got = achieved.get(domain, 0)
        share = got / total if total else 0.0
        met = plan.met and abs(share - plan.target_share) <= SHARE_TOLERANCE
        if plan.target_share > 0 and not plan.met:
            short.append(domain)
        domains[domain] = {
            "available_tokens": plan.available,
            "target_share": round(plan.target_share, 6),
            "target_tokens": round(plan.target_tokens),
            "rate": round(plan.rate, 6),
            "achieved_tokens": got,
            "achieved_share": round(share, 6),
            "met": met,
        }
    console = [f"mixing: {total:,} tokens" + (f" (budget {budget:,})" if budget else "")]
    for domain, entry in domains.items():
        console.append(
            f"  {domain:<16} target {entry['target_share']:6.1%}  achieved {entry['achieved_share']:6.1%}"
            f"  ({entry['achieved_tokens']:,} tokens, x{entry['rate']:.3g} of {entry['available_tokens']:,})"
        )
    for domain in short:
        entry = domains[domain]
        console.append(
            f"WARNING: mixing: domain '{domain}' is short of its target: {entry['achieved_tokens']:,} of "
            f"{entry['target_tokens']:,} tokens even at max_epochs {max_epochs:g}; add data for it, raise "
            "max_epochs, lower its weight or the token_budget"
        )
    return {
        "kind": "mixing",
        "total_tokens": total,
        "budget": budget,
        "max_epochs": max_epochs,
        "domains": domains,
        "short": short,
        "console": console,
    }
