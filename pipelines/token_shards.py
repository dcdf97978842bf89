"""The shard tail: documents -> domains -> tokens -> (mixing) -> deterministic Parquet token shards.

Everything that decides where a token lands is a seeded hash of the document id (sampling, shard
assignment, order inside a shard), and the number of shards comes from a global token count, so the
shards are byte-identical on any runner with any number of workers. Mixing happens here, not among the
per-document stages, because it samples by tokens: it needs every domain's token total first.
Encoding (encode.py), the draw (mixing.py), shard writing (shard_writer.py), the global combines
(combiners.py) and tokenizer training (tokenizer_training.py) each live in their own module.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, NamedTuple

import apache_beam as beam
from pydantic import Field

from curate.core.config import MAX_BATCH, Fixed, NamesPath, Role, Signal, StageConfig, StageDef, Strict
from curate.core.tokenizer import TokenizerInfo, prepare
from curate.filters.mixing import MixingConfig, mixing_report, plan_mix
from curate.pipelines.combiners import SumPerKey
from curate.pipelines.encode import (
    KEPT_TAG,
    TOKENS_TAG,
    Encode,
    RowMaker,
    load_checked,
    tokenizer_meta,
    tokenizer_meta_of_json,
)
from curate.pipelines.mixing import Sample
from curate.pipelines.shard_writer import (
    WriteShard,
    assign_shard,
    curriculum_bounds,
    key_tokens,
    write_tokenizer,
)
from curate.pipelines.stage import REJECTED_TAG, batches_of
from curate.pipelines.tokenizer_training import SmallestByHash, train_tokenizer


class TokenizerTrainConfig(Strict):
    vocab_size: int = Field(32000, ge=256, le=1_048_576)
    sample_chars: int = Field(
        200_000_000,
        ge=1,
        le=100_000_000_000,
        description="Train on the smallest-id-hash documents up to this many characters.",
    )


class TokenizeConfig(StageConfig):
    tokenizer: Annotated[str, NamesPath("file", builtins=("gpt2",))] = Field(
        "gpt2", description="'gpt2' (bundled BPE) or a tokenizer.json path."
    )
    train: TokenizerTrainConfig | None = None
    batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    shard_tokens: int = Field(50_000_000, ge=1, description="Target tokens per shard.")
    row_group_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=1 << 31)
    seed: int = 0
    order_by: str | None = Field(None, description="Curriculum: order by this annotation, not shuffle.")


class ShardOutputs(NamedTuple):
    kept: beam.PCollection  # documents in the shards, annotated with domain, n_tokens, epochs
    rejected: beam.PCollection  # documents mixing left out (stage "mixing")
    shard_infos: beam.PCollection  # one dict per shard file written
    reports: beam.PCollection  # {"kind": "mixing" | "tokenize", ...} for stats.json
    tokenized: beam.PCollection | None  # with mixing: (document, tokens) before the draw, for its count


class TokenizeAndShard(beam.PTransform):
    """``docs | TokenizeAndShard(tokenize, mixing, root)`` -> ShardOutputs (see there)."""

    def __init__(self, tokenize: TokenizeConfig, mixing: MixingConfig, root: str, first_shard: int = 0):
        super().__init__()
        self._tokenize, self._mixing, self._root = tokenize, mixing, root.rstrip("/")
        self._first_shard = first_shard
        # Fail at construction (before any worker starts) on a bad tokenizer path.
        self._info: TokenizerInfo | None = None if tokenize.train else prepare(tokenize.tokenizer)

    def expand(self, docs: beam.PCollection) -> ShardOutputs:
        tokenize, mixing, root = self._tokenize, self._mixing, self._root
        pipeline = docs.pipeline
        rules, default = list(mixing.rules), mixing.default_domain
        make_rows = RowMaker(tokenize.seed, tokenize.order_by)

        if self._info is not None:
            info = self._info
            spec, sha256 = info.source, info.sha256
            meta = pipeline | "TokenizerMeta" >> beam.Create([tokenizer_meta(info)])
            _ = meta | "WriteTokenizer" >> beam.Map(
                lambda _, spec, sha: write_tokenizer(root, load_checked(spec, sha).json), spec, sha256
            )
            encode_side: dict[str, Any] = {"meta": beam.pvalue.AsSingleton(meta)}
        else:
            assert tokenize.train is not None  # no tokenizer prepared means one is trained
            vocab_size = tokenize.train.vocab_size
            tokenizer_json = (
                docs
                | "TrainSample"
                >> beam.CombineGlobally(SmallestByHash(tokenize.seed, tokenize.train.sample_chars))
                | "TrainTokenizer" >> beam.Map(train_tokenizer, vocab_size)
            )
            source = f"trained (vocab_size {vocab_size})"
            meta = tokenizer_json | "TokenizerMeta" >> beam.Map(tokenizer_meta_of_json, source)
            _ = tokenizer_json | "WriteTokenizer" >> beam.Map(lambda text: write_tokenizer(root, text))
            spec, sha256 = None, None
            encode_side = {
                "meta": beam.pvalue.AsSingleton(meta),
                "trained_json": beam.pvalue.AsSingleton(tokenizer_json),
            }
        batches = docs | "Batch" >> batches_of(tokenize.batch_size)

        budget = mixing.token_budget if mixing.enabled else None
        if mixing.enabled:
            encode = Encode(spec, sha256, rules, default, None)
            tokenized = batches | "Encode" >> beam.ParDo(encode, **encode_side)
            # Rates need every domain's token total first: a global count, as a side input.
            available = (
                tokenized
                | "DomainTokens" >> beam.MapTuple(lambda doc, _: (doc["domain"], doc["n_tokens"]))
                | "SumDomainTokens" >> beam.CombineGlobally(SumPerKey())
            )
            plan = available | "Plan" >> beam.Map(plan_mix, dict(mixing.weights), budget, mixing.max_epochs)
            chosen = tokenized | "Sample" >> beam.ParDo(
                Sample(mixing.seed, make_rows), beam.pvalue.AsSingleton(plan)
            ).with_outputs(REJECTED_TAG, KEPT_TAG, TOKENS_TAG, main="rows")
            mix_rejected = chosen[REJECTED_TAG]
        else:
            # Every document once: no barrier, so encoding makes the rows directly (and rejects none).
            chosen = batches | "Encode" >> beam.ParDo(
                Encode(spec, sha256, rules, default, make_rows), **encode_side
            ).with_outputs(REJECTED_TAG, KEPT_TAG, TOKENS_TAG, main="rows")
            mix_rejected = chosen[REJECTED_TAG]
        rows, kept = chosen.rows, chosen[KEPT_TAG]

        achieved = chosen[TOKENS_TAG] | "SumAchieved" >> beam.CombineGlobally(SumPerKey())
        n_shards = achieved | "ShardCount" >> beam.Map(
            lambda totals, per: max(1, math.ceil(sum(totals.values()) / per)), tokenize.shard_tokens
        )
        if tokenize.order_by:
            bounds = (
                rows
                | "KeyTokens" >> beam.Map(key_tokens, beam.pvalue.AsSingleton(meta))
                | "AllKeys" >> beam.combiners.ToList()
                | "Bounds" >> beam.Map(curriculum_bounds, beam.pvalue.AsSingleton(n_shards))
            )
            bounds_side = beam.pvalue.AsSingleton(bounds)
        else:
            bounds_side = None
        assigned = rows | "AssignShard" >> beam.Map(
            assign_shard, beam.pvalue.AsSingleton(n_shards), bounds_side
        )
        # Every shard index exists even when no document hashes into it, so names have no gaps.
        placeholders = n_shards | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        shard_infos = (
            (assigned, placeholders)
            | "WithPlaceholders" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard"
            >> beam.ParDo(
                WriteShard(root, tokenize.row_group_bytes, self._first_shard), beam.pvalue.AsSingleton(meta)
            )
        )

        reports = [
            achieved
            | "TokenizeReport"
            >> beam.Map(tokenize_report, beam.pvalue.AsSingleton(meta), beam.pvalue.AsSingleton(n_shards))
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
        return ShardOutputs(
            kept, mix_rejected, shard_infos, all_reports, tokenized if mixing.enabled else None
        )


def tokenize_report(achieved: dict[str, int], meta: dict[str, Any], n_shards: int) -> dict[str, Any]:
    return {
        "kind": "tokenize",
        "total_tokens": sum(achieved.values()),
        "shards": n_shards,
        "domains": dict(sorted(achieved.items())),
        "tokenizer": meta,
    }


# Implemented by TokenizeAndShard, the last step of every run that writes shards.
STAGE = StageDef(
    name="tokenize",
    config=TokenizeConfig,
    annotations=Fixed({"domain": "string", "n_tokens": "int64", "epochs": "int64"}),
    signals=(Signal("n_tokens", chart=False), Signal("epochs", chart=False)),
    role=Role.SHARDS,
)
