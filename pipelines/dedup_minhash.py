"""Near-duplicate removal as a Beam stage; nothing here needs every document or signature on one worker.

Batched MinHash signatures -> one key per LSH band -> GroupByKey per band bucket -> verified star edges
to the bucket's smallest id -> distributed connected components -> the smallest id of each cluster
survives. The only groups ever held in memory are one bucket's (id, signature) pairs, one node's
neighbours and one cluster's ids. An `against` version's index rows join the same band buckets, tagged
so that an old document always wins. The stage also yields the MinHash-index row of every banded
document, survivor or near-duplicate (see pipelines/dedup_index.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

import apache_beam as beam
import numpy as np
from pydantic import Field, model_validator

from curate.core.config import MAX_BATCH, NamesPath, Role, Signal, StageConfig
from curate.filters.dedup_text import Normalization, shingle_hashes
from curate.filters.minhash import MinHasher, band_keys, bucket_edges, choose_lsh_params
from curate.pipelines.connected_components import ConnectedComponents
from curate.pipelines.dedup_index import (
    MINHASH_SCHEMA,
    OLD_TAG,
    REASON_VERSION,
    Versions,
    index_files,
    key_by_id,
    old_node,
    parse_old_node,
    read_index,
    text_of,
)
from curate.pipelines.stage import (
    REJECTED_TAG,
    Document,
    IndexSpec,
    StageTransform,
    TransformStageDef,
    batches_of,
    reject,
)

# Permutations per signature: each costs a hash per shingle of every document and 4 bytes per document in
# the index; past a few thousand a run crawls (datasketch and FineWeb use 128-256).
MAX_NUM_PERM = 4096


class DedupMinhashConfig(StageConfig):
    """MinHash-LSH near-duplicates (see filters/minhash.py for why these defaults).

    FineWeb's 14 x 8 bands (112 perms) find a pair at Jaccard 0.8 only 92% of the time. With 128 perms,
    threshold 0.7 and false negatives weighted 0.8, datasketch's parameter choice gives 18 x 7 bands:
    98.6% at 0.8, 99.9% at 0.9; the candidates it admits below the threshold (13% at 0.5) are dropped
    by verifying the estimated Jaccard against the threshold before linking.
    """

    ngram: int = Field(5, ge=1, le=64, description="Shingle size (FineWeb: 5-grams of words).")
    unit: Literal["word", "char"] = "word"
    num_perm: int = Field(128, ge=8, le=MAX_NUM_PERM)
    threshold: float = Field(0.7, gt=0, lt=1, description="Jaccard similarity that makes a duplicate.")
    bands: int | None = Field(
        None, ge=1, le=MAX_NUM_PERM, description="Explicit LSH bands (with rows), e.g. FineWeb's 14."
    )
    rows: int | None = Field(
        None, ge=1, le=MAX_NUM_PERM, description="Explicit LSH rows per band, e.g. FineWeb's 8."
    )
    false_negative_weight: float = Field(
        0.8, gt=0, lt=1, description="Weight of missed pairs vs candidates when bands/rows are chosen."
    )
    seed: int = 1
    verify: bool = Field(True, description="Link a candidate pair only if estimated Jaccard >= threshold.")
    components_rounds: int = Field(16, ge=1, le=64, description="Unrolled connected-components rounds.")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="Documents per vectorised signature batch.")
    against: Annotated[list[str], NamesPath("folder", versions=True)] = Field(
        default_factory=list,
        description="Versions (NAME@REF or output folders) whose documents' near-duplicates to drop.",
    )

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupMinhashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


REASON_NEAR = "duplicate_near"


SIGNATURE_TAG = "signature"


class _BandKeys(beam.DoFn):
    """A batch of documents -> ``((band, band hash), (id, signature bytes))`` for every band, and
    ``(id, signature bytes)`` once per document on the SIGNATURE_TAG output (for the dedup index)."""

    def __init__(self, stage_config: DedupMinhashConfig):
        self._config = stage_config
        self._params = lsh_params(stage_config)
        self._hasher: MinHasher | None = None
        self._normalization = Normalization()

    def setup(self) -> None:
        self._hasher = MinHasher(self._config.num_perm, self._config.seed)

    def process(self, batch: list[Document]) -> Iterator[Any]:
        assert self._hasher is not None
        cfg = self._config
        shingles = [
            shingle_hashes(self._normalization.words(text_of(doc)), cfg.ngram, cfg.unit) for doc in batch
        ]
        signatures = self._hasher.signatures(shingles)
        for doc, doc_shingles, signature in zip(batch, shingles, signatures, strict=True):
            if len(doc_shingles) == 0:
                continue  # no text: nothing to compare (and every empty signature would collide)
            signature_bytes = signature.tobytes()
            payload = (doc["id"], signature_bytes if cfg.verify else b"")
            for key in band_keys(signature, self._params):
                yield key, payload
            yield beam.pvalue.TaggedOutput(SIGNATURE_TAG, (doc["id"], signature_bytes))


class _OldBandKeys(beam.DoFn):
    """Index rows of an `against` version -> the same band keys as this run's documents, tagged old."""

    def __init__(self, stage_config: DedupMinhashConfig, version: int):
        self._params = lsh_params(stage_config)
        self._version = version
        self._verify = stage_config.verify

    def process(self, row: dict[str, Any]) -> Iterator[tuple[tuple[int, int], tuple[str, bytes]]]:
        signature = np.frombuffer(row["signature"], dtype=np.uint32)
        node = old_node(self._version, row["id"], row.get("dup_of"))
        payload = (node, row["signature"] if self._verify else b"")
        for key in band_keys(signature, self._params):
            yield key, payload


def lsh_params(stage_config: DedupMinhashConfig):
    return choose_lsh_params(
        stage_config.threshold,
        stage_config.num_perm,
        stage_config.false_negative_weight,
        stage_config.bands,
        stage_config.rows,
    )


def minhash_index_settings(stage_config: DedupMinhashConfig) -> dict[str, Any]:
    """What stored signatures depend on (bands and rows do not: band keys are recomputed on read)."""
    return {
        "num_perm": stage_config.num_perm,
        "seed": stage_config.seed,
        "ngram": stage_config.ngram,
        "unit": stage_config.unit,
        **dataclasses.asdict(Normalization()),
    }


def _edges_of_bucket(
    element: tuple[Any, Iterable[tuple[str, bytes]]], threshold: float | None
) -> list[tuple[str, str]]:
    members = list(element[1])
    if len(members) < 2 or all(doc_id.startswith(OLD_TAG) for doc_id, _ in members):
        return []  # nothing of this run in the bucket: older versions were deduplicated already
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


INDEX_TAG = "index"


class _MarkClusters(beam.DoFn):
    """Annotate a copy of each document with its cluster; reject all but the cluster's smallest id, and
    every document of a cluster that holds a document of an `against` version. Each id with a signature
    also yields its index row (INDEX_TAG): ``dup_of`` None when it survives, else what it duplicates."""

    def __init__(self, stage_name: str, against: list[str]):
        self._stage_name = stage_name
        self._against = against

    def process(self, element: tuple[str, dict[str, list]]) -> Iterator[Any]:
        doc_id, grouped = element
        cluster = grouped["cluster"][0] if grouped["cluster"] else None
        if grouped["signature"]:
            dup_of = None
            if cluster is not None and cluster[0] != doc_id:
                old = parse_old_node(cluster[0])
                dup_of = old[1] if old is not None else cluster[0]
            row = {"id": doc_id, "signature": grouped["signature"][0], "dup_of": dup_of}
            yield beam.pvalue.TaggedOutput(INDEX_TAG, row)
        for doc in grouped["doc"]:
            if cluster is None:
                yield {**doc, "dup_cluster": None, "dup_cluster_size": 1}
                continue
            root, size = cluster
            old = parse_old_node(root)
            if old is not None:
                version, old_id = old
                doc = {**doc, "dup_cluster": old_id, "dup_cluster_size": size, "dup_of": old_id}
                doc["dup_version"] = self._against[version]
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, REASON_VERSION))
                continue
            doc = {**doc, "dup_cluster": root, "dup_cluster_size": size}
            if doc["id"] == root:
                yield doc
            else:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, REASON_NEAR))


class MinHashDedup(StageTransform):
    """Drop near-duplicates: documents whose shingle sets are at least ``threshold`` Jaccard-similar,
    directly or through a chain of such documents; each cluster keeps its smallest id."""

    def __init__(self, stage_name: str, stage_config: DedupMinhashConfig, versions: Versions):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._config = stage_config
        self._against = list(stage_config.against)
        settings = minhash_index_settings(stage_config)
        self._against_files = [index_files(spec, "minhash", settings, versions) for spec in self._against]
        # Set by expand: {id, signature, dup_of} of every banded document, survivor or near-duplicate.
        self.index_rows: beam.PCollection | None = None

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        cfg = self._config
        threshold = cfg.threshold if cfg.verify else None
        signed = (
            docs
            | "Batch" >> batches_of(cfg.batch_size)
            | "Signatures" >> beam.ParDo(_BandKeys(cfg)).with_outputs(SIGNATURE_TAG, main="bands")
        )
        band_entries = signed.bands
        old_entries = [
            read_index(docs.pipeline, files, None, f"Against{k}")
            | f"Against{k}BandKeys" >> beam.ParDo(_OldBandKeys(cfg, k))
            for k, files in enumerate(self._against_files)
        ]
        if old_entries:
            band_entries = (band_entries, *old_entries) | "WithVersions" >> beam.Flatten()
        edges = (
            band_entries
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
        # The signature (512 bytes at 128 perms) rides along with its document to this join, for the
        # index row; it saves computing every signature a second time.
        outputs = (
            {"doc": key_by_id(docs), "cluster": node_clusters, "signature": signed[SIGNATURE_TAG]}
            | "JoinClusters" >> beam.CoGroupByKey()
            | "MarkClusters"
            >> beam.ParDo(_MarkClusters(self.stage_name, self._against)).with_outputs(
                REJECTED_TAG, INDEX_TAG, main="kept"
            )
        )
        self.index_rows = outputs[INDEX_TAG]
        return outputs.kept, outputs[REJECTED_TAG]


def _minhash_annotations(stage_config: DedupMinhashConfig) -> dict[str, str]:
    types = {"dup_cluster": "string", "dup_cluster_size": "int64"}
    if stage_config.against:
        types.update({"dup_of": "string", "dup_version": "string"})
    return types


STAGE = TransformStageDef(
    name="dedup_minhash",
    config=DedupMinhashConfig,
    transform=MinHashDedup,
    annotations=_minhash_annotations,
    # A cluster's size is bookkeeping (the report draws cluster sizes on their own chart).
    signals=(Signal("dup_cluster_size", chart=False),),
    role=Role.DEDUP,
    index=IndexSpec("minhash", MINHASH_SCHEMA, minhash_index_settings),
)
