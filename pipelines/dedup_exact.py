"""Exact duplicate removal as a Beam stage: ``(hash of the normalised text, id)`` pairs are grouped by
hash; the smallest id survives; each document meets its decision in one join by id (documents never go
through the hash grouping). A hash held by an `against` version's index rejects this run's documents
(`duplicate_of_version`). The stage also yields the exact-index row of every survivor (see
pipelines/dedup_index.py). Survivors are the smallest ids, and ids are stable hashes, so every rerun
and every runner keeps the same documents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import apache_beam as beam
from pydantic import Field

from curate.core.config import NamesPath, Role, StageConfig
from curate.filters.dedup_text import Normalization, exact_key
from curate.pipelines.dedup_index import (
    EXACT_SCHEMA,
    REASON_VERSION,
    Versions,
    index_files,
    key_by_id,
    read_index,
    text_of,
)
from curate.pipelines.stage import REJECTED_TAG, IndexSpec, StageTransform, TransformStageDef, reject


class DedupExactConfig(StageConfig):
    """What does not make two texts different (defaults: datatrove's simplify_text)."""

    lowercase: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = True
    normalize_digits: bool = Field(True, description="Every digit counts as 0 (page counters, dates).")
    against: Annotated[list[str], NamesPath("folder", versions=True)] = Field(
        default_factory=list,
        description="Versions (NAME@REF or output folders) whose kept documents this run must not repeat.",
    )


REASON_EXACT = "duplicate_exact"


def _normalization(stage_config: DedupExactConfig) -> Normalization:
    return Normalization(
        lowercase=stage_config.lowercase,
        normalize_whitespace=stage_config.normalize_whitespace,
        strip_punctuation=stage_config.strip_punctuation,
        normalize_digits=stage_config.normalize_digits,
    )


ExactDecision = tuple[str | None, str | None, str | None]  # (dup_of, reason, version); reason None: kept


def _exact_survivor_row(element: tuple[str, Iterable[tuple[str, str]]]) -> Iterator[dict[str, str]]:
    """One hash's ids -> the exact-index row of its survivor (none when an `against` version holds it:
    that version's index has the hash already)."""
    text_hash, members = element
    members = list(members)
    if all(not version for version, _ in members):
        yield {"hash": text_hash, "id": min(doc_id for _, doc_id in members)}


def _exact_decisions(
    element: tuple[str, Iterable[tuple[str, str]]], against: list[str]
) -> Iterator[tuple[str, ExactDecision]]:
    """One hash's ids -> ``(id, decision)`` for each of this run's documents in it.

    Members are ``(version, id)``: version "" for this run's documents, else the index of the `against`
    version that kept it. A hash kept by an earlier version rejects all of this run's documents
    (`duplicate_of_version`); otherwise the smallest id survives and the others point at it. One
    decision per occurrence, so a document read twice (same id) is kept once.
    """
    _, members = element
    new_ids = sorted(doc_id for version, doc_id in members if not version)
    old = sorted((doc_id, int(version)) for version, doc_id in members if version)
    if old:
        old_id, version = old[0]
        for doc_id in new_ids:
            yield doc_id, (old_id, REASON_VERSION, against[version])
        return
    for position, doc_id in enumerate(new_ids):
        yield doc_id, (None, None, None) if position == 0 else (new_ids[0], REASON_EXACT, None)


class _ApplyDecisions(beam.DoFn):
    """Documents of one id joined with their decisions -> kept or rejected copies (never mutated)."""

    def __init__(self, stage_name: str, with_version: bool):
        self._stage_name = stage_name
        self._with_version = with_version

    def process(self, element: tuple[str, dict[str, list]]) -> Iterator[Any]:
        _, joined = element
        # Sorted both ways so that when one id was read twice, which copy is kept does not depend on
        # the shuffle's order.
        docs = sorted(joined["doc"], key=lambda doc: (doc.get("source") or "", doc.get("url") or ""))
        decisions = sorted(joined["decision"], key=lambda d: (d[1] is not None, d[1] or "", d[0] or ""))
        for doc, (dup_of, reason, version) in zip(docs, decisions, strict=True):
            doc = {**doc, "dup_of": dup_of}
            if self._with_version:
                doc["dup_version"] = version
            if reason is None:
                yield doc
            else:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, reason))


def exact_index_settings(stage_config: DedupExactConfig) -> dict[str, Any]:
    """What an exact index's keys depend on: must be equal to join against another version's index."""
    return {"key": "xxh3_128(normalised text)", **dataclasses.asdict(_normalization(stage_config))}


class ExactDedup(StageTransform):
    """Drop documents whose normalised text equals another's, or a kept document's of an `against`
    version. Only ``(hash, id)`` pairs are grouped; the documents meet their decision in one join by id."""

    def __init__(self, stage_name: str, stage_config: DedupExactConfig, versions: Versions):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._normalization = _normalization(stage_config)
        self._against = list(stage_config.against)
        settings = exact_index_settings(stage_config)
        # Resolved now, in the driver: a missing or incompatible version fails before any worker starts.
        self._against_files = [index_files(spec, "exact", settings, versions) for spec in self._against]
        self.index_rows: beam.PCollection | None = None  # set by expand: {hash, id} of each survivor

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        normalization = self._normalization
        keys = docs | "KeyByTextHash" >> beam.Map(
            lambda doc: (exact_key(text_of(doc), normalization), ("", doc["id"]))
        )
        old_keys = [
            read_index(docs.pipeline, files, ["hash", "id"], f"Against{k}")
            | f"Against{k}Keys" >> beam.Map(lambda row, k=k: (row["hash"], (str(k), row["id"])))
            for k, files in enumerate(self._against_files)
        ]
        if old_keys:
            keys = (keys, *old_keys) | "WithVersions" >> beam.Flatten()
        groups = keys | "GroupByTextHash" >> beam.GroupByKey()
        decisions = groups | "Decide" >> beam.FlatMap(_exact_decisions, self._against)
        self.index_rows = groups | "IndexRows" >> beam.FlatMap(_exact_survivor_row)
        outputs = (
            {"doc": key_by_id(docs), "decision": decisions}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "Apply"
            >> beam.ParDo(_ApplyDecisions(self.stage_name, bool(self._against))).with_outputs(
                REJECTED_TAG, main="kept"
            )
        )
        return outputs.kept, outputs[REJECTED_TAG]


def _exact_annotations(stage_config: DedupExactConfig) -> dict[str, str]:
    return {"dup_of": "string", **({"dup_version": "string"} if stage_config.against else {})}


STAGE = TransformStageDef(
    name="dedup_exact",
    config=DedupExactConfig,
    transform=ExactDedup,
    annotations=_exact_annotations,
    role=Role.DEDUP,
    index=IndexSpec("exact", EXACT_SCHEMA, exact_index_settings),
)
