"""Domain/URL blocklists and banned words in URLs (filters/url_filter.py), on real crawl URLs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from curate.core.errors import CurateError
from curate.filters.url_filter import UrlFilter, UrlFilterConfig, normalize_url, stage_spec, url_words
from curate.pipelines.readers import read_warc


@pytest.fixture(scope="module")
def crawl_urls(shared_path) -> tuple[str, ...]:
    """The URLs of every record of three real crawl samples (multilingual, English, Japanese)."""
    urls = []
    for name in ("cc-main-2020-34-excerpt.warc.gz", "web-sample-0000.warc.gz", "clueweb-quirk.warc.gz"):
        path = shared_path("crawl", name)
        with open(path, "rb") as raw:
            urls += [doc["url"] for doc in read_warc(raw, str(path)) if doc.get("url")]
    return tuple(urls)


def _filter(
    tmp_path: Path, blocklist: str = "", banned: list[str] | None = None, min_hits: int = 1
) -> UrlFilter:
    listed = tmp_path / "blocklist.txt"
    listed.write_text(blocklist, encoding="utf-8")
    cfg = UrlFilterConfig(
        enabled=True, blocklists=[str(listed)], banned_words=banned or [], banned_word_min_hits=min_hits
    )
    return stage_spec(cfg).make()


def _reasons(flt: UrlFilter, urls: Sequence[str]) -> dict[str, str | None]:
    docs = [{"url": url, "text": ""} for url in urls]
    return {d["url"]: flt.decide(a, d) for d, a in zip(docs, flt.annotate(docs), strict=True)}


def test_a_listed_domain_blocks_itself_and_its_subdomains_only(tmp_path, crawl_urls):
    urls = crawl_urls
    flt = _filter(tmp_path, "# adult and gambling\nlive-radsport.ch\n\nuraharajuku.st  # shop\n")
    reasons = _reasons(flt, urls)
    blocked = {url for url, reason in reasons.items() if reason == "url_domain"}
    assert any(u.startswith("http://06.live-radsport.ch/") for u in blocked)
    assert any(u.startswith("http://www.uraharajuku.st/") for u in blocked)  # www. is a subdomain too
    expected = {
        u for u in urls if "live-radsport.ch" in u.split("/")[2] or "uraharajuku.st" in u.split("/")[2]
    }
    assert blocked == expected
    assert set(reasons.values()) == {"url_domain", None}
    # a label boundary is required: "radsport.ch" does not block "live-radsport.ch"
    assert _reasons(_filter(tmp_path, "radsport.ch\n"), urls) == dict.fromkeys(urls)


def test_a_listed_url_blocks_that_page_only(tmp_path):
    flt = _filter(tmp_path, "https://soldaini.net/facts/\n")
    reasons = _reasons(
        flt, ["https://soldaini.net/facts", "http://www.soldaini.net/facts/", "https://soldaini.net/"]
    )
    assert reasons == {
        "https://soldaini.net/facts": "url_listed",
        "http://www.soldaini.net/facts/": "url_listed",
        "https://soldaini.net/": None,
    }
    assert normalize_url("HTTPS://www.Soldaini.net:443/facts/?a=1") == "soldaini.net/facts?a=1"


def test_banned_words_match_whole_url_words_from_a_real_list(tmp_path, crawl_urls, ldnoobw):
    banned = ldnoobw("en")
    flt = _filter(tmp_path, banned=[banned])
    urls = crawl_urls
    # no sample URL contains a listed word as a whole word ("analysis" does not match a listed substring)
    assert set(_reasons(flt, urls).values()) == {None}
    assert {"anal", "xxx"} <= flt.banned_words
    assert "ball gag" in flt.banned_phrases
    reasons = _reasons(
        flt,
        [
            "https://example.com/xxx-videos",
            "https://example.com/analysis",
            "https://example.com/ball-gag/shop",
        ],
    )
    assert reasons == {
        "https://example.com/xxx-videos": "url_banned_words",
        "https://example.com/analysis": None,
        "https://example.com/ball-gag/shop": "url_banned_words",
    }
    strict = _filter(tmp_path, banned=[banned], min_hits=2)
    annotations = strict.annotate(
        [{"url": "https://example.com/xxx-videos"}, {"url": "https://xxx.example.com/anal"}]
    )
    assert [a["url_banned_words"] for a in annotations] == [1, 2]
    assert [strict.decide(a, {}) for a in annotations] == [None, "url_banned_words"]


def test_documents_without_url_are_kept_with_zero_signals(tmp_path):
    flt = _filter(tmp_path, "example.com\n")
    annotations = flt.annotate([{"url": None, "text": "x"}])
    assert annotations == [{"url_domain_blocked": 0, "url_blocked": 0, "url_banned_words": 0}]
    assert flt.decide(annotations[0], {}) is None


def test_url_words_split_on_anything_not_alphanumeric():
    assert url_words("http://06.live-radsport.ch/Tippspiel/stats_140") == [
        "http",
        "06",
        "live",
        "radsport",
        "ch",
        "tippspiel",
        "stats",
        "140",
    ]


def test_a_missing_list_is_a_one_line_error_naming_the_file(tmp_path):
    cfg = UrlFilterConfig(enabled=True, blocklists=[str(tmp_path / "nope.txt")])
    with pytest.raises(CurateError, match=r"nope\.txt: cannot read list for stages\.url_filter"):
        stage_spec(cfg).make()
