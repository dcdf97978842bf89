"""Documents -> domains -> tokens -> (mixing) -> deterministic Parquet token shards.

Everything that decides where a token lands is a seeded hash of the document id (sampling, shard
assignment, order inside a shard), and the number of shards comes from a global token count, so the
shards are byte-identical on any runner with any number of workers. Mixing lives here, not in the
stage registry, because it needs token counts: it samples by tokens, not documents.
"""

from __future__ import annotations

import functools
import hashlib
import math
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from curate.filters.mixing import (
    DOWNSAMPLED,
    NOT_IN_MIX,
    assign_domain,
    copies,
    mixing_report,
    plan_mix,
)
from curate.pipelines.stage import REJECTED_TAG, reject

from curate.config import Config
from curate.core.files import write_atomic
from curate.core.ids import seeded_hash
from curate.core.shard_format import SHARDS_DIR, TOKENIZER_FILE, shard_name, write_shard_bytes
from curate.core.tokenizer import TokenizerInfo, info_of, load, prepare, token_dtype

Document = dict[str, Any]


class ShardOutputs(NamedTuple):
    kept: beam.PCollection  # documents in the shards, annotated with domain, n_tokens, epochs
    rejected: beam.PCollection  # documents mixing left out (stage "mixing")
    shard_infos: beam.PCollection  # one dict per shard file written
    reports: beam.PCollection  # {"kind": "mixing" | "tokenize", ...} for stats.json


def _meta(tokenizer_json: str, source: str) -> dict[str, Any]:
    from tokenizers import Tokenizer

    return _meta_of(info_of(Tokenizer.from_str(tokenizer_json), source))


def _write_tokenizer(root: str, tokenizer_json: str) -> None:
    write_atomic(f"{root}/{TOKENIZER_FILE}", tokenizer_json.encode("utf-8"))


def _meta_of(info: TokenizerInfo) -> dict[str, Any]:
    return {
        "eos_id": info.eos_id,
        "vocab_size": info.vocab_size,
        "token_dtype": info.token_dtype,
        "tokenizer_source": info.source,
    }


@functools.lru_cache(maxsize=4)
def _load_checked(spec: str, sha256: str) -> TokenizerInfo:
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


class _Encode(beam.DoFn):
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
        self._tokenizer = None
        self._loaded_from: str | None = None

    def setup(self) -> None:
        if self._spec is not None:
            self._tokenizer = load(_load_checked(self._spec, self._sha256).json)

    def process(self, batch: list[Document], meta: dict[str, Any], trained_json: str | None = None):
        if self._spec is None and self._loaded_from != trained_json:
            self._tokenizer, self._loaded_from = load(trained_json), trained_json
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


class _Sample(beam.DoFn):
    """Mixing's draw: each document goes in ``copies`` times (0 = rejected) by a hash of its id; the
    chosen ones leave as shard rows (one per copy) and annotated documents, like `_Encode`'s."""

    def __init__(self, seed: int, rows: RowMaker):
        self._seed = seed
        self._rows = rows

    def process(self, item: tuple[Document, bytes], plan: dict[str, Any]):
        doc, data = item
        domain_plan = plan.get(doc["domain"])
        rate = domain_plan.rate if domain_plan is not None else 0.0
        n = copies(rate, self._seed, doc["id"])
        if n == 0:
            reason = NOT_IN_MIX if rate == 0 else DOWNSAMPLED
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(dict(doc), "mixing", reason))
            return
        yield from self._rows(doc, data, n)
        yield beam.pvalue.TaggedOutput(KEPT_TAG, {**doc, "epochs": n})
        yield beam.pvalue.TaggedOutput(TOKENS_TAG, (doc["domain"], doc["n_tokens"] * n))


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


def _curriculum_bounds(keys_and_tokens: list[tuple[tuple, int]], n_shards: int) -> list[tuple]:
    """Sort keys at which shard i+1 starts, cutting the ordered stream into equal token slices."""
    ordered = sorted(keys_and_tokens)
    total = sum(n for _, n in ordered)
    bounds, running, shard = [], 0, 1
    for key, n in ordered:
        while shard < n_shards and running >= shard * total / n_shards:
            bounds.append(key)
            shard += 1
        running += n
    return bounds


def _key_tokens(row: ShardRow, meta: dict[str, Any]) -> tuple[tuple, int]:
    return row[0], len(row[1][1]) // np.dtype(meta["token_dtype"]).itemsize


def _assign(row: tuple[tuple, Any], n_shards: int, bounds: list[tuple] | None) -> tuple[int, Any]:
    sort_key, payload = row
    shard = bisect_right(bounds, sort_key) if bounds is not None else sort_key[1] % n_shards
    return shard, (sort_key, payload)


class _WriteShard(beam.DoFn):
    def __init__(self, root: str, row_group_bytes: int, first_shard: int = 0):
        self._root = root
        self._row_group_bytes = row_group_bytes
        self._first_shard = first_shard

    def process(self, element: tuple[int, Iterable[Any]], meta: dict[str, Any]):
        index, rows = element
        dtype = np.dtype(meta["token_dtype"])
        ordered = sorted((r for r in rows if r is not None), key=lambda r: (r[0], r[1][0]))
        payload_rows = [
            (doc_id, np.frombuffer(tokens, dtype), domain, lang)
            for _, (doc_id, tokens, domain, lang) in ordered
        ]
        data = write_shard_bytes(payload_rows, meta["token_dtype"], self._row_group_bytes)
        path = shard_name(self._first_shard + index)
        write_atomic(f"{self._root}/{path}", data)
        domains: dict[str, int] = {}
        for _, tokens, domain, _ in payload_rows:
            domains[domain] = domains.get(domain, 0) + len(tokens)
        yield {
            "path": path,
            "n_docs": len(payload_rows),
            "n_tokens": sum(domains.values()),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "row_groups": _row_groups(data),
            "domains": dict(sorted(domains.items())),
            **meta,
        }


def _row_groups(data: bytes) -> int:
    import io

    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(data)).num_row_groups


class _SumPerKey(beam.CombineFn):
    """(key, n) pairs -> {key: sum}: one global combine where CombinePerKey + ToDict would take two."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, acc: dict[str, int], pair: tuple[str, int]) -> dict[str, int]:
        acc[pair[0]] = acc.get(pair[0], 0) + pair[1]
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, int]]) -> dict[str, int]:
        merged: dict[str, int] = {}
        for acc in accumulators:
            for key, n in acc.items():
                merged[key] = merged.get(key, 0) + n
        return merged

    def extract_output(self, acc: dict[str, int]) -> dict[str, int]:
        return dict(sorted(acc.items()))


class _SmallestByHash(beam.CombineFn):
    """The texts with the smallest seeded id-hashes, up to ``max_chars``: a runner-independent sample."""

    def __init__(self, seed: int, max_chars: int):
        self._seed = seed
        self._max_chars = max_chars

    def _trim(self, items: list[tuple[int, str]]) -> list[tuple[int, str]]:
        items.sort()
        kept, size = [], 0
        for h, text in items:
            size += len(text)
            if size > self._max_chars and kept:
                break
            kept.append((h, text))
        return kept

    def create_accumulator(self) -> list[tuple[int, str]]:
        return []

    def add_input(self, acc, doc):
        acc.append((seeded_hash(self._seed, doc["id"]), doc["text"]))
        if len(acc) % 1024 == 0:
            acc = self._trim(acc)
        return acc

    def merge_accumulators(self, accumulators):
        return self._trim([item for acc in accumulators for item in acc])

    def extract_output(self, acc):
        return [text for _, text in self._trim(list(acc))]


def _train(texts: list[str], vocab_size: int) -> str:
    from curate.core.tokenizer import train

    return train(texts, vocab_size).json


class TokenizeAndShard(beam.PTransform):
    """``docs | TokenizeAndShard(config)`` -> ShardOutputs(kept, rejected, shard_infos, reports)."""

    annotation_types = {"domain": "string", "n_tokens": "int64", "epochs": "int64"}

    def __init__(self, config: Config, first_shard: int = 0):
        super().__init__()
        self._config = config
        self._first_shard = first_shard  # shards already in the output folder (an appended run)
        tokenize = config.stages.tokenize
        # Fail at construction (before any worker starts) on a bad tokenizer path.
        self._info: TokenizerInfo | None = None if tokenize.train else prepare(tokenize.tokenizer)

    def expand(self, docs: beam.PCollection) -> ShardOutputs:
        config = self._config
        tokenize, mixing = config.stages.tokenize, config.stages.mixing
        root = config.output.path.rstrip("/")
        pipeline = docs.pipeline
        rules, default = list(mixing.rules), mixing.default_domain
        make_rows = RowMaker(tokenize.seed, tokenize.order_by)

        if self._info is not None:
            info = self._info
            spec, sha256 = info.source, info.sha256
            meta = pipeline | "TokenizerMeta" >> beam.Create([_meta_of(info)])
            _ = meta | "WriteTokenizer" >> beam.Map(
                lambda _, spec, sha: _write_tokenizer(root, _load_checked(spec, sha).json), spec, sha256
            )
            encode_side: dict[str, Any] = {"meta": beam.pvalue.AsSingleton(meta)}
        else:
            vocab_size = tokenize.train.vocab_size
            tokenizer_json = (
                docs
                | "TrainSample"
                >> beam.CombineGlobally(_SmallestByHash(tokenize.seed, tokenize.train.sample_chars))
                | "TrainTokenizer" >> beam.Map(_train, vocab_size)
            )
            source = f"trained (vocab_size {vocab_size})"
            meta = tokenizer_json | "TokenizerMeta" >> beam.Map(_meta, source)
            _ = tokenizer_json | "WriteTokenizer" >> beam.Map(lambda text: _write_tokenizer(root, text))
            spec, sha256 = None, None
            encode_side = {
                "meta": beam.pvalue.AsSingleton(meta),
                "trained_json": beam.pvalue.AsSingleton(tokenizer_json),
            }
        batches = docs | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=tokenize.batch_size)

        budget = mixing.token_budget if mixing.enabled else None
        if mixing.enabled:
            encode = _Encode(spec, sha256, rules, default, None)
            tokenized = batches | "Encode" >> beam.ParDo(encode, **encode_side)
            # Rates need every domain's token total first: a global count, as a side input.
            available = (
                tokenized
                | "DomainTokens" >> beam.MapTuple(lambda doc, _: (doc["domain"], doc["n_tokens"]))
                | "SumDomainTokens" >> beam.CombineGlobally(_SumPerKey())
            )
            plan = available | "Plan" >> beam.Map(plan_mix, dict(mixing.weights), budget, mixing.max_epochs)
            chosen = tokenized | "Sample" >> beam.ParDo(
                _Sample(mixing.seed, make_rows), beam.pvalue.AsSingleton(plan)
            ).with_outputs(REJECTED_TAG, KEPT_TAG, TOKENS_TAG, main="rows")
            mix_rejected = chosen[REJECTED_TAG]
        else:
            # Every document once: no barrier, so encoding makes the rows directly (and rejects none).
            chosen = batches | "Encode" >> beam.ParDo(
                _Encode(spec, sha256, rules, default, make_rows), **encode_side
            ).with_outputs(REJECTED_TAG, KEPT_TAG, TOKENS_TAG, main="rows")
            mix_rejected = chosen[REJECTED_TAG]
        rows, kept = chosen.rows, chosen[KEPT_TAG]

        achieved = chosen[TOKENS_TAG] | "SumAchieved" >> beam.CombineGlobally(_SumPerKey())
        n_shards = achieved | "ShardCount" >> beam.Map(
            lambda totals, per: max(1, math.ceil(sum(totals.values()) / per)), tokenize.shard_tokens
        )
        if tokenize.order_by:
            bounds = (
                rows
                | "KeyTokens" >> beam.Map(_key_tokens, beam.pvalue.AsSingleton(meta))
                | "AllKeys" >> beam.combiners.ToList()
                | "Bounds" >> beam.Map(_curriculum_bounds, beam.pvalue.AsSingleton(n_shards))
            )
            bounds_side = beam.pvalue.AsSingleton(bounds)
        else:
            bounds_side = None
        assigned = rows | "AssignShard" >> beam.Map(_assign, beam.pvalue.AsSingleton(n_shards), bounds_side)
        # Every shard index exists even when no document hashes into it, so names have no gaps.
        placeholders = n_shards | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        shard_infos = (
            (assigned, placeholders)
            | "WithPlaceholders" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard"
            >> beam.ParDo(
                _WriteShard(root, tokenize.row_group_bytes, self._first_shard), beam.pvalue.AsSingleton(meta)
            )
        )

        reports = [
            achieved
            | "TokenizeReport"
            >> beam.Map(_tokenize_report, beam.pvalue.AsSingleton(meta), beam.pvalue.AsSingleton(n_shards))
        ]
        if mixing.enabled:
            reports.append(
                achieved
                | "MixingReport"
                >> beam.Map(
                    lambda got, plans, b, e: mixing_report(plans, got, b, e),
                    beam.pvalue.AsSingleton(plan),
                    budget,
                    mixing.max_epochs,
                )
            )
        all_reports = tuple(reports) | "Reports" >> beam.Flatten()
        return ShardOutputs(kept, mix_rejected, shard_infos, all_reports)


def _tokenize_report(achieved: dict[str, int], meta: dict[str, Any], n_shards: int) -> dict[str, Any]:
    return {
        "kind": "tokenize",
        "total_tokens": sum(achieved.values()),
        "shards": n_shards,
        "domains": dict(sorted(achieved.items())),
        "tokenizer": meta,
    }


__all__ = ["SHARDS_DIR", "ShardOutputs", "TokenizeAndShard", "token_dtype"]
