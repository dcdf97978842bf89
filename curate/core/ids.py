"""Stable document ids: the same record gets the same id on every run and every runner."""

from __future__ import annotations

import xxhash


def document_id(url: str | None, record_id: str | None, text: str) -> str:
    """128-bit hash of url + record id when the source names the record, else of url + content.

    128 bits keep collisions out of reach at Common Crawl scale (billions of records), where 64 would not.
    """
    key = f"{url or ''}\x00{record_id}" if record_id else f"{url or ''}\x00\x00{text}"
    return xxhash.xxh3_128_hexdigest(key.encode("utf-8", errors="surrogatepass"))


def seeded_hash(seed: int, key: str) -> int:
    """A deterministic 64-bit hash of a key under a seed (sampling, shuffling)."""
    return xxhash.xxh3_64_intdigest(key.encode("utf-8", errors="surrogatepass"), seed=seed)
