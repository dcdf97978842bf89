"""Exact and near-duplicate removal as Beam stages; nothing here needs every document, signature or hash
on one worker.

- ExactDedup: documents are grouped by the hash of their normalised text; the smallest id survives.
- MinHashDedup: batched MinHash signatures -> one key per LSH band -> GroupByKey per band bucket ->
  verified star edges to the bucket's smallest id -> distributed connected components -> the smallest
  id of each cluster survives. The only groups ever held in memory are one hash's documents, one
  bucket's (id, signature) pairs, one node's neighbours and one cluster's ids.

Survivors are the smallest document ids, and ids are stable hashes, so every rerun and every runner
(one worker or many) keeps the same documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import apache_beam as beam
import numpy as np
from pydantic import Field, model_validator

from curate.core.config import StageConfig
from curate.filters.dedup_text import Normalization, exact_key, shingle_hashes
from curate.filters.minhash import MinHasher, band_keys, bucket_edges, choose_lsh_params
from curate.pipelines.connected_components import ConnectedComponents
from curate.pipelines.stage import REJECTED_TAG, Document, StageTransform, TransformStageDef, reject


class DedupExactConfig(StageConfig):
    """What does not make two texts different (defaults: datatrove's simplify_text)."""

    lowercase: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = True
    normalize_digits: bool = Field(True, description="Every digit counts as 0 (page counters, dates).")


class DedupMinhashConfig(StageConfig):
    """MinHash-LSH near-duplicates (see filters/minhash.py for why these defaults).

    FineWeb's 14 x 8 bands (112 perms) find a pair at Jaccard 0.8 only 92% of the time. With 128 perms,
    threshold 0.7 and false negatives weighted 0.8, datasketch's parameter choice gives 18 x 7 bands:
    98.6% at 0.8, 99.9% at 0.9; the candidates it admits below the threshold (13% at 0.5) are dropped
    by verifying the estimated Jaccard against the threshold before linking.
    """

    ngram: int = Field(5, ge=1, description="Shingle size (FineWeb: 5-grams of words).")
    unit: Literal["word", "char"] = "word"
    num_perm: int = Field(128, ge=8)
    threshold: float = Field(0.7, gt=0, lt=1, description="Jaccard similarity that makes a duplicate.")
    bands: int | None = Field(None, ge=1, description="Explicit LSH bands (with rows), e.g. FineWeb's 14.")
    rows: int | None = Field(None, ge=1, description="Explicit LSH rows per band, e.g. FineWeb's 8.")
    false_negative_weight: float = Field(
        0.8, gt=0, lt=1, description="Weight of missed pairs vs candidates when bands/rows are chosen."
    )
    seed: int = 1
    verify: bool = Field(True, description="Link a candidate pair only if estimated Jaccard >= threshold.")
    components_rounds: int = Field(16, ge=1, description="Unrolled connected-components rounds.")
    batch_size: int = Field(256, ge=1, description="Documents per vectorised signature batch.")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupMinhashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


REASON_EXACT = "duplicate_exact"
REASON_NEAR = "duplicate_near"


def _normalization(stage_config: DedupExactConfig) -> Normalization:
    return Normalization(
        lowercase=stage_config.lowercase,
        normalize_whitespace=stage_config.normalize_whitespace,
        strip_punctuation=stage_config.strip_punctuation,
        normalize_digits=stage_config.normalize_digits,
    )


def _text(doc: Document) -> str:
    return doc.get("text") or ""


class _KeepSmallestId(beam.DoFn):
    """One hash's documents: the smallest id is kept, the others point at it with ``dup_of``."""

    def __init__(self, stage_name: str):
        self._stage_name = stage_name

    def process(self, element: tuple[str, Iterable[Document]]) -> Iterator[Any]:
        _, docs = element
        survivor = min(doc["id"] for doc in docs)
        kept_one = False
        for doc in docs:
            if doc["id"] == survivor and not kept_one:
                kept_one = True
                yield {**doc, "dup_of": None}
            else:
                yield beam.pvalue.TaggedOutput(
                    REJECTED_TAG, reject(doc, self._stage_name, REASON_EXACT, dup_of=survivor)
                )


class ExactDedup(StageTransform):
    """Drop documents whose normalised text equals another's."""

    annotation_types = {"dup_of": "string"}

    def __init__(self, stage_name: str, stage_config: DedupExactConfig):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._normalization = _normalization(stage_config)

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        normalization = self._normalization
        outputs = (
            docs
            | "KeyByTextHash" >> beam.Map(lambda doc: (exact_key(_text(doc), normalization), doc))
            | "GroupByTextHash" >> beam.GroupByKey()
            | "KeepSmallestId"
            >> beam.ParDo(_KeepSmallestId(self.stage_name)).with_outputs(REJECTED_TAG, main="kept")
        )
        return outputs.kept, outputs[REJECTED_TAG]


class _BandKeys(beam.DoFn):
    """A batch of documents -> ``((band, band hash), (id, signature bytes))`` for every band."""

    def __init__(self, stage_config: DedupMinhashConfig):
        self._config = stage_config
        self._params = choose_lsh_params(
            stage_config.threshold,
            stage_config.num_perm,
            stage_config.false_negative_weight,
            stage_config.bands,
            stage_config.rows,
        )
        self._hasher: MinHasher | None = None
        self._normalization = Normalization()

    def setup(self) -> None:
        self._hasher = MinHasher(self._config.num_perm, self._config.seed)

    def process(self, batch: list[Document]) -> Iterator[tuple[tuple[int, int], tuple[str, bytes]]]:
        assert self._hasher is not None
        cfg = self._config
        shingles = [
            shingle_hashes(self._normalization.words(_text(doc)), cfg.ngram, cfg.unit) for doc in batch
        ]
        signatures = self._hasher.signatures(shingles)
        for doc, doc_shingles, signature in zip(batch, shingles, signatures, strict=True):
            if len(doc_shingles) == 0:
                continue  # no text: nothing to compare (and every empty signature would collide)
            payload = (doc["id"], signature.tobytes() if cfg.verify else b"")
            for key in band_keys(signature, self._params):
                yield key, payload


def _edges_of_bucket(
    element: tuple[Any, Iterable[tuple[str, bytes]]], threshold: float | None
) -> list[tuple[str, str]]:
    members = list(element[1])
    if len(members) < 2:
        return []
    ids = [doc_id for doc_id, _ in members]
    signatures = None
    if threshold is not None:
        signatures = np.stack([np.frombuffer(sig, dtype=np.uint32) for _, sig in members])
    return bucket_edges(ids, signatures, threshold)


def _cluster_members(root: str, nodes: Iterable[str]) -> Iterator[tuple[str, tuple[str, int]]]:
    """One cluster (its root and nodes, root included) -> ``(node, (root, size))`` for each node."""
    members = list(nodes)
    for node in members:
        yield node, (root, len(members))


class _MarkClusters(beam.DoFn):
    """Annotate each document with its cluster; reject all but the cluster's smallest id."""

    def __init__(self, stage_name: str):
        self._stage_name = stage_name

    def process(self, element: tuple[str, dict[str, list]]) -> Iterator[Any]:
        _, grouped = element
        cluster = grouped["cluster"][0] if grouped["cluster"] else None
        for doc in grouped["doc"]:
            if cluster is None:
                yield {**doc, "dup_cluster": None, "dup_cluster_size": 1}
                continue
            root, size = cluster
            marked = {**doc, "dup_cluster": root, "dup_cluster_size": size}
            if doc["id"] == root:
                yield marked
            else:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(marked, self._stage_name, REASON_NEAR))


class MinHashDedup(StageTransform):
    """Drop near-duplicates: documents whose shingle sets are at least ``threshold`` Jaccard-similar,
    directly or through a chain of such documents; each cluster keeps its smallest id."""

    annotation_types = {"dup_cluster": "string", "dup_cluster_size": "int64"}

    def __init__(self, stage_name: str, stage_config: DedupMinhashConfig):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._config = stage_config

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        cfg = self._config
        threshold = cfg.threshold if cfg.verify else None
        edges = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=cfg.batch_size)
            | "Signatures" >> beam.ParDo(_BandKeys(cfg))
            | "GroupByBand" >> beam.GroupByKey()
            | "BucketEdges" >> beam.FlatMap(_edges_of_bucket, threshold)
            | "DistinctEdges" >> beam.Distinct()
        )
        roots = edges | "Components" >> ConnectedComponents(cfg.components_rounds)
        node_clusters = (
            roots
            | "ByRoot" >> beam.MapTuple(lambda node, root: (root, node))
            | "GroupClusters" >> beam.GroupByKey()
            | "ClusterOfNode" >> beam.FlatMapTuple(_cluster_members)
        )
        outputs = (
            {"doc": docs | "KeyById" >> beam.Map(lambda doc: (doc["id"], doc)), "cluster": node_clusters}
            | "JoinClusters" >> beam.CoGroupByKey()
            | "MarkClusters"
            >> beam.ParDo(_MarkClusters(self.stage_name)).with_outputs(REJECTED_TAG, main="kept")
        )
        return outputs.kept, outputs[REJECTED_TAG]


EXACT_STAGE = TransformStageDef(name="dedup_exact", config=DedupExactConfig, transform=ExactDedup)
MINHASH_STAGE = TransformStageDef(name="dedup_minhash", config=DedupMinhashConfig, transform=MinHashDedup)
