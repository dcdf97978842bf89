"""Encoding for token shards: each document's domain and tokens (with EOS), and its shard rows.

The tokenizer the driver prepared loads once per worker process (by spec and hash: the 2 MB JSON never
travels inside the pickled pipeline); a tokenizer trained in the run arrives as a side input instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from tokenizers import Tokenizer

from curate.core.ids import seeded_hash
from curate.core.tokenizer import TokenizerInfo, info_of, load, prepare
from curate.filters.mixing import assign_domain

Document = dict[str, Any]


def tokenizer_meta_of_json(tokenizer_json: str, source: str) -> dict[str, Any]:
    return tokenizer_meta(info_of(Tokenizer.from_str(tokenizer_json), source))


def tokenizer_meta(info: TokenizerInfo) -> dict[str, Any]:
    return {
        "eos_id": info.eos_id,
        "vocab_size": info.vocab_size,
        "token_dtype": info.token_dtype,
        "tokenizer_source": info.source,
    }


@functools.lru_cache(maxsize=4)
def load_checked(spec: str, sha256: str) -> TokenizerInfo:
    """Load the tokenizer the driver prepared, by its spec ('gpt2' or a path), and prove it is the same
    (by hash): the 2 MB JSON never travels inside the pickled pipeline. Cached per worker process,
    where the tokenizer writer and every encoder need it."""
    info = prepare(spec)
    if info.sha256 != sha256:
        raise RuntimeError(f"{spec}: the tokenizer on this worker differs from the driver's (sha256)")
    return info


# Tagged outputs of the encode and sample steps, beside the main output (shard rows or tokenized docs).
KEPT_TAG = "kept"  # the document, annotated with domain, n_tokens, epochs


TOKENS_TAG = "tokens"  # (domain, output tokens), summed per batch


ShardRow = tuple[tuple, tuple[str, bytes, str, str | None]]  # (sort key, (id, tokens, domain, lang))


class Encode(beam.DoFn):
    """Domain, batched encoding with EOS and, when every document goes in once (no mixing), its shard row
    and annotations, all in one step: separate per-document Beam steps cost a measurable share of what
    tokenizing does (bench/tokenize_shards.py). Tokens travel as bytes, which Beam's coder copies without
    pickling. The tokenizer loads once per worker: in setup when known up front, else from the side input
    on first use (a tokenizer trained in this run)."""

    def __init__(
        self, spec: str | None, sha256: str | None, rules: list, default: str, rows: RowMaker | None
    ):
        self._spec = spec
        self._sha256 = sha256
        self._rules = rules
        self._default = default
        self._rows = rows  # None: emit (doc, tokens) for mixing to sample
        self._tokenizer: Tokenizer | None = None
        self._loaded_from: str | None = None

    def setup(self) -> None:
        if self._spec is not None:
            self._tokenizer = load(load_checked(self._spec, self._sha256 or "").json)

    def process(self, batch: list[Document], meta: dict[str, Any], trained_json: str | None = None):
        if self._spec is None and trained_json is not None and self._loaded_from != trained_json:
            self._tokenizer, self._loaded_from = load(trained_json), trained_json
        assert self._tokenizer is not None, "no tokenizer: neither a spec nor a trained one arrived"
        dtype = np.dtype(meta["token_dtype"])
        eos = meta["eos_id"]
        # encode_batch_fast: the same ids as encode_batch without computing character offsets, which
        # shards do not keep (~25% less tokenizer CPU on web text, bench/tokenize_shards.py).
        texts = [doc["text"] for doc in batch]
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        totals: dict[str, int] = {}
        for doc, encoding in zip(batch, encodings, strict=True):
            ids = encoding.ids
            tokens = np.empty(len(ids) + 1, dtype=dtype)
            tokens[:-1] = ids
            tokens[-1] = eos
            data = tokens.tobytes()
            n_tokens = len(tokens)
            # Copies, never mutates: Beam may hand the same input object to other consumers.
            doc = {**doc, "domain": assign_domain(doc, self._rules, self._default), "n_tokens": n_tokens}
            if self._rows is None:
                yield doc, data
                continue
            yield from self._rows(doc, data, 1)
            doc["epochs"] = 1
            yield beam.pvalue.TaggedOutput(KEPT_TAG, doc)
            totals[doc["domain"]] = totals.get(doc["domain"], 0) + n_tokens
        for domain, n in totals.items():
            yield beam.pvalue.TaggedOutput(TOKENS_TAG, (domain, n))


def _order_key(value: Any) -> tuple:
    # Documents without the annotation go last; numbers compare as floats.
    if value is None:
        return (1, 0.0)
    return (0, float(value)) if isinstance(value, int | float) else (0, str(value))


class RowMaker:
    """A document's shard rows, one per copy, keyed for placement: by the seeded hash of its id (copy 0)
    or of id + copy number, after the curriculum annotation when ``order_by`` is set."""

    def __init__(self, seed: int, order_by: str | None):
        self._seed = seed
        self._order_by = order_by

    def __call__(self, doc: Document, tokens: bytes, n: int) -> Iterable[ShardRow]:
        order_by = self._order_by
        if order_by:
            value = doc.get(order_by, (doc.get("metadata") or {}).get(order_by))
            first = _order_key(value)
        else:
            first = (0, 0.0)
        payload = (doc["id"], tokens, doc["domain"], doc.get("lang"))
        for copy in range(n):
            key = doc["id"] if copy == 0 else f"{doc['id']}\x00{copy}"
            yield (first, seeded_hash(self._seed, key), copy), payload
