"""The `classifier` stage in Beam: score (and `min_score`) per document, then the run-wide decisions.

`keep_top_fraction` and `buckets` need every score of the run before any document can be placed: a first
pass sums, per model, a token-weighted histogram of scores (integer counts, so the sum is the same in any
order, on any runner, with any number of workers); the cut points follow from it in one small step; a
second pass places every document with those cut points as a side input. Only the histograms (one array
per model per bundle) cross the shuffle, never documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from curate.filters.classifier import (
    ClassifierConfig,
    ClassifierModelConfig,
    annotation_types,
    bucket_edges,
    bucket_of,
    score_bin,
    stage_spec,
    top_fraction_threshold,
)
from curate.pipelines.stage import REJECTED_TAG, FilterStage, StageTransform, reject

from curate.config import Config

STAGE = "classifier"
TOKENS_ANNOTATION = "classifier_tokens"  # the weight of a document in the run-wide percentiles


def weight_tokenizer_spec(config: Config) -> str:
    """Tokens are counted with the tokenizer the shards will use when it is known before the run; a
    tokenizer trained during the run is not, and GPT-2's counts stand in for it."""
    tokenize = config.stages.tokenize
    return tokenize.tokenizer if tokenize.enabled and tokenize.train is None else "gpt2"


class _CountTokens(beam.DoFn):
    """Annotates each document's token count (batched; the tokenizer loads once per worker)."""

    def __init__(self, tokenizer_spec: str):
        self._spec = tokenizer_spec
        self._tokenizer = None

    def setup(self) -> None:
        from curate.core.tokenizer import load, prepare

        self._tokenizer = load(prepare(self._spec).json)

    def process(self, batch: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        encodings = self._tokenizer.encode_batch_fast([doc.get("text") or "" for doc in batch])
        for doc, encoding in zip(batch, encodings, strict=True):
            yield {**doc, TOKENS_ANNOTATION: len(encoding.ids)}


class ScoreHistograms(beam.CombineFn):
    """Per ranked model, token weight per score bin (int64: an order-independent, exact sum)."""

    def __init__(self, names: list[str], bins: int):
        self._names = names
        self._bins = bins

    def create_accumulator(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(self._bins, dtype=np.int64) for name in self._names}

    def add_input(self, acc: dict[str, np.ndarray], doc: dict[str, Any]) -> dict[str, np.ndarray]:
        weight = int(doc[TOKENS_ANNOTATION])
        for name in self._names:
            acc[name][score_bin(doc[f"{name}_score"], self._bins)] += weight
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for name in self._names:
                merged[name] += acc[name]
        return merged

    def extract_output(self, acc: dict[str, np.ndarray]) -> dict[str, list[int]]:
        return {name: acc[name].tolist() for name in self._names}


def cut_points(histograms: dict[str, list[int]], models: list[ClassifierModelConfig]) -> dict[str, Any]:
    """Per model: the bucket edges and the lowest kept bin, as bin indices."""
    cuts: dict[str, Any] = {}
    for model in models:
        histogram = histograms[model.name]
        cuts[model.name] = {
            "edges": bucket_edges(histogram, model.buckets) if model.buckets else None,
            "keep_from": top_fraction_threshold(histogram, model.keep_top_fraction)
            if model.keep_top_fraction
            else None,
        }
    return cuts


class _Place(beam.DoFn):
    """Annotates buckets and applies keep_top_fraction with the run's cut points."""

    def __init__(self, models: list[ClassifierModelConfig], bins: int):
        self._models = models
        self._bins = bins

    def process(self, doc: dict[str, Any], cuts: dict[str, Any]):
        placed = dict(doc)
        reason = None
        for model in self._models:
            index = score_bin(doc[f"{model.name}_score"], self._bins)
            cut = cuts[model.name]
            if cut["edges"] is not None:
                placed[f"{model.name}_bucket"] = bucket_of(index, cut["edges"])
            if reason is None and cut["keep_from"] is not None and index < cut["keep_from"]:
                reason = f"{model.name}_below_top_fraction"
        if reason is None:
            yield placed
        else:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(placed, STAGE, reason))


class ClassifierStage(StageTransform):
    """Score with every model; then, if any model ranks (top fraction, buckets), the run-wide pass."""

    stage_name = STAGE

    def __init__(self, cfg: ClassifierConfig, config: Config):
        super().__init__(label=STAGE)
        spec = stage_spec(cfg)  # checks every model path and label in the driver
        self._score = FilterStage(STAGE, spec.make, spec.annotation_types, cfg.batch_size)
        self._ranked = [m for m in cfg.models if m.buckets or m.keep_top_fraction]
        self._bins = cfg.histogram_bins
        self._batch_size = cfg.batch_size
        self._tokenizer_spec = weight_tokenizer_spec(config)
        self.annotation_types = annotation_types(cfg)
        if self._ranked:
            self.annotation_types[TOKENS_ANNOTATION] = "int64"

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        scored, rejected = docs | "Score" >> self._score
        if not self._ranked:
            return scored, rejected
        names = [m.name for m in self._ranked]
        weighted = (
            scored
            | "BatchForTokens" >> beam.BatchElements(min_batch_size=1, max_batch_size=self._batch_size)
            | "CountTokens" >> beam.ParDo(_CountTokens(self._tokenizer_spec))
        )
        cuts = (
            weighted
            | "ScoreHistograms" >> beam.CombineGlobally(ScoreHistograms(names, self._bins))
            | "CutPoints" >> beam.Map(cut_points, self._ranked)
        )
        placed = weighted | "Place" >> beam.ParDo(
            _Place(self._ranked, self._bins), beam.pvalue.AsSingleton(cuts)
        ).with_outputs(REJECTED_TAG, main="kept")
        all_rejected = (rejected, placed[REJECTED_TAG]) | "ClassifierRejected" >> beam.Flatten()
        return placed.kept, all_rejected
