"""Documents -> domains -> tokens -> (mixing) -> deterministic Parquet token shards.

Everything that decides where a token lands is a seeded hash of the document id (sampling, shard
assignment, order inside a shard), and the number of shards comes from a global token count, so the
shards are byte-identical on any runner with any number of workers. Mixing lives here, not in the
stage registry, because it needs token counts: it samples by tokens, not documents.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from curate.config import Config
from curate.files import write_atomic
from curate.ids import seeded_hash
from curate.shards import SHARDS_DIR, TOKENIZER_FILE, shard_name, write_shard_bytes
from curate.tokenizer import TokenizerInfo, info_of, load, prepare, token_dtype
from filters.mixing import (
    DOWNSAMPLED,
    NOT_IN_MIX,
    assign_domain,
    copies,
    mixing_report,
    plan_mix,
)
from pipelines.stage import REJECTED_TAG, reject

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


def _load_checked(spec: str, sha256: str):
    """Load the tokenizer the driver prepared, by its spec ('gpt2' or a path), and prove it is the same
    (by hash): the 2 MB JSON never travels inside the pickled pipeline."""
    info = prepare(spec)
    if info.sha256 != sha256:
        raise RuntimeError(f"{spec}: the tokenizer on this worker differs from the driver's (sha256)")
    return info


class _Encode(beam.DoFn):
    """Batched encoding; appends EOS. The tokenizer loads once per worker: in setup when known up front,
    else from the side input on first use (a tokenizer trained in this run)."""

    def __init__(self, spec: str | None, sha256: str | None):
        self._spec = spec
        self._sha256 = sha256
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
        encodings = self._tokenizer.encode_batch([doc["text"] for doc in batch], add_special_tokens=False)
        for doc, encoding in zip(batch, encodings, strict=True):
            ids = encoding.ids
            tokens = np.empty(len(ids) + 1, dtype=dtype)
            tokens[:-1] = ids
            tokens[-1] = eos
            doc["n_tokens"] = len(tokens)
            yield doc, tokens


class _Sample(beam.DoFn):
    """Mixing's draw: each document goes in ``copies`` times (0 = rejected) by a hash of its id."""

    def __init__(self, seed: int):
        self._seed = seed

    def process(self, item: tuple[Document, np.ndarray], plan: dict[str, Any]):
        doc, tokens = item
        domain_plan = plan.get(doc["domain"])
        rate = domain_plan.rate if domain_plan is not None else 0.0
        n = copies(rate, self._seed, doc["id"])
        if n == 0:
            reason = NOT_IN_MIX if rate == 0 else DOWNSAMPLED
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(dict(doc), "mixing", reason))
        else:
            yield doc, tokens, n


def _order_key(value: Any) -> tuple:
    # Documents without the annotation go last; numbers compare as floats.
    if value is None:
        return (1, 0.0)
    return (0, float(value)) if isinstance(value, int | float) else (0, str(value))


def _copy_rows(item: tuple[Document, np.ndarray, int], seed: int, order_by: str | None):
    """One row per copy: (sort key, row). The first copy is keyed by the id alone."""
    doc, tokens, n = item
    for copy in range(n):
        key = doc["id"] if copy == 0 else f"{doc['id']}\x00{copy}"
        h = seeded_hash(seed, key)
        if order_by:
            value = doc.get(order_by, (doc.get("metadata") or {}).get(order_by))
            sort_key = (_order_key(value), h, copy)
        else:
            sort_key = ((0, 0.0), h, copy)
        yield sort_key, (doc["id"], tokens, doc["domain"], doc.get("lang"))


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


def _assign(row: tuple[tuple, Any], n_shards: int, bounds: list[tuple] | None) -> tuple[int, Any]:
    sort_key, payload = row
    shard = bisect_right(bounds, sort_key) if bounds is not None else sort_key[1] % n_shards
    return shard, (sort_key, payload)


class _WriteShard(beam.DoFn):
    def __init__(self, root: str, row_group_bytes: int):
        self._root = root
        self._row_group_bytes = row_group_bytes

    def process(self, element: tuple[int, Iterable[Any]], meta: dict[str, Any]):
        index, rows = element
        ordered = sorted((r for r in rows if r is not None), key=lambda r: (r[0], r[1][0]))
        payload_rows = [payload for _, payload in ordered]
        data = write_shard_bytes(payload_rows, meta["token_dtype"], self._row_group_bytes)
        path = shard_name(index)
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
    from curate.tokenizer import train

    return train(texts, vocab_size).json


class TokenizeAndShard(beam.PTransform):
    """``docs | TokenizeAndShard(config)`` -> ShardOutputs(kept, rejected, shard_infos, reports)."""

    annotation_types = {"domain": "string", "n_tokens": "int64", "epochs": "int64"}

    def __init__(self, config: Config):
        super().__init__()
        self._config = config
        tokenize = config.stages.tokenize
        # Fail at construction (before any worker starts) on a bad tokenizer path.
        self._info: TokenizerInfo | None = None if tokenize.train else prepare(tokenize.tokenizer)

    def expand(self, docs: beam.PCollection) -> ShardOutputs:
        config = self._config
        tokenize, mixing = config.stages.tokenize, config.stages.mixing
        root = config.output.path.rstrip("/")
        pipeline = docs.pipeline
        rules, default = list(mixing.rules), mixing.default_domain
        docs = docs | "Domain" >> beam.Map(_with_domain, rules, default)

        if self._info is not None:
            info = self._info
            meta = pipeline | "TokenizerMeta" >> beam.Create([_meta_of(info)])
            _ = (
                pipeline
                | "TokenizerSpec" >> beam.Create([(info.source, info.sha256)])
                | "WriteTokenizer"
                >> beam.MapTuple(lambda spec, sha: _write_tokenizer(root, _load_checked(spec, sha).json))
            )
            encode = _Encode(info.source, info.sha256)
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
            encode = _Encode(None, None)
            encode_side = {
                "meta": beam.pvalue.AsSingleton(meta),
                "trained_json": beam.pvalue.AsSingleton(tokenizer_json),
            }
        tokenized = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=tokenize.batch_size)
            | "Encode" >> beam.ParDo(encode, **encode_side)
        )

        budget = mixing.token_budget if mixing.enabled else None
        if mixing.enabled:
            # Rates need every domain's token total first: a global count, as a side input.
            available = (
                tokenized
                | "DomainTokens" >> beam.Map(lambda item: (item[0]["domain"], len(item[1])))
                | "SumDomainTokens" >> beam.CombinePerKey(sum)
                | "AvailableDict" >> beam.combiners.ToDict()
            )
            plan = available | "Plan" >> beam.Map(plan_mix, dict(mixing.weights), budget, mixing.max_epochs)
            sampled = tokenized | "Sample" >> beam.ParDo(
                _Sample(mixing.seed), beam.pvalue.AsSingleton(plan)
            ).with_outputs(REJECTED_TAG, main="kept")
            chosen, mix_rejected = sampled.kept, sampled[REJECTED_TAG]
        else:
            # Every document once; no barrier, so tokenizing fuses with what follows.
            chosen = tokenized | "Once" >> beam.MapTuple(lambda doc, tokens: (doc, tokens, 1))
            mix_rejected = pipeline | "NoneLeftOut" >> beam.Create([])

        out_tokens = (
            chosen
            | "OutTokens" >> beam.Map(lambda item: len(item[1]) * item[2])
            | "SumOutTokens" >> beam.CombineGlobally(sum)
        )
        n_shards = out_tokens | "ShardCount" >> beam.Map(
            lambda total, per: max(1, math.ceil(total / per)), tokenize.shard_tokens
        )
        rows = chosen | "CopyRows" >> beam.FlatMap(_copy_rows, tokenize.seed, tokenize.order_by)
        if tokenize.order_by:
            bounds = (
                rows
                | "KeyTokens" >> beam.Map(lambda row: (row[0], len(row[1][1])))
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
            >> beam.ParDo(_WriteShard(root, tokenize.row_group_bytes), beam.pvalue.AsSingleton(meta))
        )

        kept = chosen | "Annotate" >> beam.MapTuple(_annotated)
        achieved = (
            chosen
            | "AchievedTokens" >> beam.Map(lambda item: (item[0]["domain"], len(item[1]) * item[2]))
            | "SumAchieved" >> beam.CombinePerKey(sum)
            | "AchievedDict" >> beam.combiners.ToDict()
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


def _with_domain(doc: Document, rules: list, default: str) -> Document:
    # Copies, never mutates: Beam may hand the same input object to other consumers.
    return {**doc, "domain": assign_domain(doc, rules, default)}


def _annotated(doc: Document, tokens: np.ndarray, n: int) -> Document:
    return {**doc, "n_tokens": len(tokens), "epochs": n}


def _tokenize_report(achieved: dict[str, int], meta: dict[str, Any], n_shards: int) -> dict[str, Any]:
    return {
        "kind": "tokenize",
        "total_tokens": sum(achieved.values()),
        "shards": n_shards,
        "domains": dict(sorted(achieved.items())),
        "tokenizer": meta,
    }


__all__ = ["SHARDS_DIR", "ShardOutputs", "TokenizeAndShard", "token_dtype"]
