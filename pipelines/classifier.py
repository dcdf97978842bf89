"""The `classifier` stage in Beam: score (and `min_score`) per document, then the run-wide decisions.

`keep_top_fraction` and `buckets` need every score of the run before any document can be placed: a first
pass sums, per model, a token-weighted coarse histogram of scores (integer counts, so the sum is the same
in any order, on any runner, with any number of workers); a second pass histograms finely only the coarse
bins that hold a cut point (filters/classifier.py: why); a third places every document with the cut
points as a side input. Only histograms (arrays per model per bundle, combined before the shuffle) cross
it, never documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np

from curate.filters.classifier import (
    FINE_BINS,
    ClassifierConfig,
    ClassifierModelConfig,
    annotation_types,
    bucket_of,
    coarse_bin,
    cut_positions,
    position,
    refine_bins,
    stage_spec,
)
from curate.pipelines.dedup_index import Versions
from curate.pipelines.stage import (
    REJECTED_TAG,
    FilterStage,
    StageTransform,
    TransformStageDef,
    batches_of,
    reject,
)

TOKENS_ANNOTATION = "classifier_tokens"  # the weight of a document in the run-wide percentiles


class _CountTokens(beam.DoFn):
    """Annotates each document's token count (batched; the tokenizer loads once per worker)."""

    def __init__(self, tokenizer_spec: str):
        self._spec = tokenizer_spec
        self._tokenizer: Any = None

    def setup(self) -> None:
        from curate.core.tokenizer import load, prepare

        self._tokenizer = load(prepare(self._spec).json)

    def process(self, batch: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        encodings = self._tokenizer.encode_batch_fast([doc.get("text") or "" for doc in batch])
        for doc, encoding in zip(batch, encodings, strict=True):
            yield {**doc, TOKENS_ANNOTATION: len(encoding.ids)}


class CoarseHistograms(beam.CombineFn):
    """Per ranked model, token weight per coarse score bin (int64: an exact, order-free sum)."""

    def __init__(self, names: list[str], bins: int):
        self._names = names
        self._bins = bins

    def create_accumulator(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(self._bins, dtype=np.int64) for name in self._names}

    def add_input(self, acc: dict[str, np.ndarray], doc: dict[str, Any]) -> dict[str, np.ndarray]:
        weight = int(doc[TOKENS_ANNOTATION])
        for name in self._names:
            acc[name][coarse_bin(doc[f"{name}_score"], self._bins)] += weight
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for name in self._names:
                merged[name] += acc[name]
        return merged

    def extract_output(self, acc: dict[str, np.ndarray]) -> dict[str, list[int]]:
        return {name: acc[name].tolist() for name in self._names}


class FineHistograms(beam.CombineFn):
    """Token weight per fine bin inside the coarse bins that hold a cut point: (model, coarse) -> array."""

    def create_accumulator(self) -> dict[tuple[str, int], np.ndarray]:
        return {}

    def add_input(self, acc: dict, item: tuple[str, int, int, int]) -> dict:
        name, coarse, fine, weight = item
        counts = acc.get((name, coarse))
        if counts is None:
            counts = acc[(name, coarse)] = np.zeros(FINE_BINS, dtype=np.int64)
        counts[fine] += weight
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict]) -> dict:
        merged: dict[tuple[str, int], np.ndarray] = {}
        for acc in accumulators:
            for key, counts in acc.items():
                if key in merged:
                    merged[key] = merged[key] + counts
                else:
                    merged[key] = counts.copy()
        return merged

    def extract_output(self, acc: dict) -> dict[tuple[str, int], list[int]]:
        return {key: counts.tolist() for key, counts in acc.items()}


def _needed(coarse: dict[str, list[int]], models: list[ClassifierModelConfig]) -> dict[str, list[int]]:
    return {m.name: refine_bins(coarse[m.name], m.buckets, m.keep_top_fraction) for m in models}


def _fine_items(doc: dict[str, Any], needed: dict[str, list[int]], bins: int):
    """(model, coarse, fine, tokens) for a document whose score falls in a bin that is refined."""
    for name, coarse_bins in needed.items():
        where = position(doc[f"{name}_score"], bins)
        coarse, fine = divmod(where, FINE_BINS)
        if coarse in coarse_bins:
            yield name, coarse, fine, int(doc[TOKENS_ANNOTATION])


def _cuts(
    fine: dict[tuple[str, int], list[int]], coarse: dict[str, list[int]], models: list[ClassifierModelConfig]
) -> dict[str, Any]:
    return {
        m.name: cut_positions(
            coarse[m.name],
            {c: counts for (name, c), counts in fine.items() if name == m.name},
            m.buckets,
            m.keep_top_fraction,
        )
        for m in models
    }


class _Place(beam.DoFn):
    """Annotates buckets and applies keep_top_fraction with the run's cut points."""

    def __init__(self, stage_name: str, models: list[ClassifierModelConfig], bins: int):
        self._stage_name = stage_name
        self._models = models
        self._bins = bins

    def process(self, doc: dict[str, Any], cuts: dict[str, Any]):
        placed = dict(doc)
        reason = None
        for model in self._models:
            where = position(doc[f"{model.name}_score"], self._bins)
            cut = cuts[model.name]
            if cut["edges"] is not None:
                placed[f"{model.name}_bucket"] = bucket_of(where, cut["edges"])
            if reason is None and cut["keep_from"] is not None and where < cut["keep_from"]:
                reason = f"{model.name}_below_top_fraction"
        if reason is None:
            yield placed
        else:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(placed, self._stage_name, reason))


class ClassifierStage(StageTransform):
    """Score with every model; then, if any model ranks (top fraction, buckets), the run-wide pass."""

    def __init__(self, stage_name: str, cfg: ClassifierConfig, versions: Versions | None = None):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        spec = stage_spec(cfg)  # checks every model path and label in the driver
        self._score = FilterStage(stage_name, spec.make, cfg.batch_size)
        self._ranked = [m for m in cfg.models if m.buckets or m.keep_top_fraction]
        self._bins = cfg.histogram_bins
        self._batch_size = cfg.batch_size
        self._tokenizer_spec = cfg.tokenizer

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        scored, rejected = docs | "Score" >> self._score
        if not self._ranked:
            return scored, rejected
        names = [m.name for m in self._ranked]
        weighted = (
            scored
            | "BatchForTokens" >> batches_of(self._batch_size)
            | "CountTokens" >> beam.ParDo(_CountTokens(self._tokenizer_spec))
        )
        coarse = weighted | "CoarseHistograms" >> beam.CombineGlobally(CoarseHistograms(names, self._bins))
        needed = coarse | "RefinedBins" >> beam.Map(_needed, self._ranked)
        fine = (
            weighted
            | "FineItems" >> beam.FlatMap(_fine_items, beam.pvalue.AsSingleton(needed), self._bins)
            | "FineHistograms" >> beam.CombineGlobally(FineHistograms())
        )
        cuts = fine | "CutPoints" >> beam.Map(_cuts, beam.pvalue.AsSingleton(coarse), self._ranked)
        placed = weighted | "Place" >> beam.ParDo(
            _Place(self.stage_name, self._ranked, self._bins), beam.pvalue.AsSingleton(cuts)
        ).with_outputs(REJECTED_TAG, main="kept")
        all_rejected = (rejected, placed[REJECTED_TAG]) | "ClassifierRejected" >> beam.Flatten()
        return placed.kept, all_rejected


def stage_annotations(cfg: ClassifierConfig) -> dict[str, str]:
    """Each model's score (and bucket); a ranking model's weight too."""
    types = annotation_types(cfg)
    if any(m.buckets or m.keep_top_fraction for m in cfg.models):
        types[TOKENS_ANNOTATION] = "int64"
    return types


STAGE = TransformStageDef(
    name="classifier", config=ClassifierConfig, transform=ClassifierStage, annotations=stage_annotations
)
