"""The `url_filter` stage: reject documents whose URL is on a blocklist or contains banned words.

Blocklist files hold one entry a line: a domain (``example.com`` also blocks ``www.example.com`` and every
other subdomain) or a full URL (matched without scheme, ``www.`` or trailing slash). Banned-word files hold
one word or phrase a line, matched against the URL's alphanumeric words (as datatrove's URLFilter does).
No list ships with curate: users pass their own (e.g. UT1 blacklists, LDNOOBW).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field

from curate.core.config import MAX_BATCH, Fixed, NamesPath, StageConfig
from curate.core.errors import CurateError
from curate.core.files import read_text
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef


class UrlFilterConfig(StageConfig):
    """Block documents by URL: listed domains (and their subdomains), listed URLs, banned words."""

    enabled: bool = False
    blocklists: Annotated[list[str], NamesPath("file")] = Field(
        default_factory=list,
        description="Files: one domain (blocks its subdomains too) or full URL a line; '#' starts a comment.",
    )
    banned_words: Annotated[list[str], NamesPath("file")] = Field(
        default_factory=list, description="Files: one word a line, for URLs."
    )
    banned_word_min_hits: int = Field(1, ge=1, description="Banned words in a URL before it is rejected.")
    batch_size: int = Field(1024, ge=1, le=MAX_BATCH, description="Documents per annotate call.")


ANNOTATIONS: dict[str, str] = {
    "url_domain_blocked": "int32",  # 1 when the host or one of its parent domains is listed
    "url_blocked": "int32",  # 1 when the URL itself is listed
    "url_banned_words": "int32",  # distinct banned words/phrases among the URL's words
}
_URL_WORD_SPLIT = re.compile(r"[\W_]+")


def _entries(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if entry:
            yield entry


def _read(path: str) -> list[str]:
    try:
        return list(_entries(read_text(path).splitlines()))
    except OSError as error:
        raise CurateError(
            f"{path}: cannot read list for stages.url_filter: {error.strerror}; fix the path in the recipe"
        ) from None


def normalize_url(url: str) -> str:
    """``HTTPS://www.Example.com/a/`` -> ``example.com/a``: the form URLs are compared in."""
    parts = urlsplit(url.strip() if "://" in url else "//" + url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    path = parts.path.rstrip("/")
    return host + path + (f"?{parts.query}" if parts.query else "")


def url_words(url: str) -> list[str]:
    return [word for word in _URL_WORD_SPLIT.split(url.lower()) if word]


class UrlFilter:
    """Blocklists and banned words, loaded once per worker."""

    annotation_types = ANNOTATIONS

    def __init__(self, domains: Iterable[str], urls: Iterable[str], banned: Iterable[str], min_hits: int):
        self.domains = {d.lower().removeprefix("www.").rstrip(".") for d in domains}
        self.urls = {normalize_url(u) for u in urls}
        phrases = {" ".join(url_words(b)) for b in banned} - {""}
        self.banned_words = {p for p in phrases if " " not in p}
        self.banned_phrases = {p for p in phrases if " " in p}
        self.min_hits = min_hits

    @classmethod
    def from_files(
        cls, blocklists: Sequence[str], banned_word_files: Sequence[str], min_hits: int
    ) -> UrlFilter:
        entries = [entry for path in blocklists for entry in _read(path)]
        # An entry with a path or a scheme is a URL; anything else names a domain.
        urls = [e for e in entries if "/" in e]
        domains = [e for e in entries if "/" not in e]
        banned = [word for path in banned_word_files for word in _read(path)]
        return cls(domains, urls, banned, min_hits)

    def _domain_blocked(self, host: str) -> bool:
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.domains for i in range(len(labels)))

    def _annotate_one(self, url: str | None) -> Annotations:
        if not url:
            return dict.fromkeys(ANNOTATIONS, 0)
        normalized = normalize_url(url)
        host = normalized.split("/", 1)[0].split("?", 1)[0]
        words = url_words(url)
        hits = len(self.banned_words.intersection(words))
        if self.banned_phrases:
            joined = f" {' '.join(words)} "
            hits += sum(1 for phrase in self.banned_phrases if f" {phrase} " in joined)
        return {
            "url_domain_blocked": int(self._domain_blocked(host)),
            "url_blocked": int(normalized in self.urls),
            "url_banned_words": hits,
        }

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        return [self._annotate_one(doc.get("url")) for doc in docs]

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        if annotations["url_domain_blocked"]:
            return "url_domain"
        if annotations["url_blocked"]:
            return "url_listed"
        if annotations["url_banned_words"] >= self.min_hits:
            return "url_banned_words"
        return None


def stage_spec(cfg: UrlFilterConfig) -> FilterSpec:
    make = partial(
        UrlFilter.from_files, list(cfg.blocklists), list(cfg.banned_words), cfg.banned_word_min_hits
    )
    return FilterSpec(make)


STAGE = FilterStageDef(
    name="url_filter", config=UrlFilterConfig, spec=stage_spec, annotations=Fixed(ANNOTATIONS)
)
