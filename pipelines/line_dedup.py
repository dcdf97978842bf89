"""The `dedup_lines` stage: remove lines (or paragraphs) that occur in more than K documents of the run.

Counting is by key in Beam: CombinePerKey over 64 groups of unit hashes, each batch of documents
contributing one numpy array per group and each worker combining its arrays before the shuffle, so no
worker holds more than its share of the distinct units; only the frequent hashes (the boilerplate, a
small set) come back as a side input for the rewrite. Documents never go through a
shuffle here. Each changed document is a copy with the rewritten text, which flows on to later stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import apache_beam as beam
import numpy as np
from pydantic import Field

from curate.core.config import Fixed, StageConfig
from curate.filters.dedup_text import Normalization
from curate.filters.line_dedup import (
    REASON_BOILERPLATE,
    LineDedupSettings,
    document_unit_hashes,
    is_boilerplate_only,
    remove_frequent_units,
)
from curate.pipelines.dedup_index import Versions
from curate.pipelines.stage import REJECTED_TAG, StageTransform, TransformStageDef, reject


class DedupLinesConfig(StageConfig):
    """Remove lines (or paragraphs) repeated across documents: navigation, cookie banners, footers."""

    enabled: bool = False
    unit: Literal["line", "paragraph"] = Field("line", description="Count lines, or blank-line paragraphs.")
    max_docs: int = Field(10, ge=1, description="A unit in more than this many documents is removed.")
    keep_first: bool = Field(False, description="The document with the smallest id keeps its copy.")
    min_chars_left: int = Field(
        100, ge=0, description="Reject a page left with fewer characters (reason: boilerplate_only)."
    )


def settings_of(cfg: DedupLinesConfig) -> LineDedupSettings:
    return LineDedupSettings(
        unit=cfg.unit,
        max_docs=cfg.max_docs,
        keep_first=cfg.keep_first,
        min_chars_left=cfg.min_chars_left,
        normalization=Normalization(),
    )


# Unit hashes are counted in this many groups (by hash modulo), so that the counting spreads over
# the workers and no worker holds more than its share of the distinct units.
HASH_GROUPS = 64
# Hashes gathered in an accumulator before it is compacted (np.unique): bounds its memory.
_COMPACT_EVERY = 1 << 18


class _HashBatch(beam.DoFn):
    """A batch of documents -> per hash group, one numpy array of the documents' distinct unit hashes
    (and the holders' ids when ``keep_first``): a few elements per batch instead of one per line."""

    def __init__(self, settings: LineDedupSettings):
        self._settings = settings

    def process(self, batch: list[dict[str, Any]]) -> Iterator[tuple[int, tuple[np.ndarray, list | None]]]:
        hashes: list[int] = []
        ids: list[str] = []
        for doc in batch:
            distinct = document_unit_hashes(doc.get("text") or "", self._settings)
            hashes.extend(distinct)
            if self._settings.keep_first:
                ids.extend([doc["id"]] * len(distinct))
        if not hashes:
            return
        values = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
        groups = values % np.uint64(HASH_GROUPS)
        id_array = np.asarray(ids, dtype=object) if self._settings.keep_first else None
        for group in np.unique(groups):
            chosen = groups == group
            yield int(group), (values[chosen], list(id_array[chosen]) if id_array is not None else None)


def _compact(hashes: np.ndarray, counts: np.ndarray, ids: np.ndarray | None):
    """Distinct hashes with summed document counts (and the smallest holder id)."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)
    if ids is None:
        return unique, summed, None
    order = np.argsort(ids, kind="stable")  # smallest id first within each hash
    _, first = np.unique(inverse[order], return_index=True)
    return unique, summed, ids[order[first]]


class _CountDocs(beam.CombineFn):
    """Per hash group: each distinct unit hash with the number of documents holding it (and, for
    keep_first, the smallest id among them). The accumulator is compacted numpy arrays, so Beam's
    partial combining on each worker sends one small array per group through the shuffle."""

    def __init__(self, keep_first: bool):
        self._keep_first = keep_first

    def create_accumulator(self) -> list:
        return []  # pieces: (hashes, counts, ids or None)

    def _merge(self, pieces: list) -> list:
        if len(pieces) <= 1:
            return pieces
        hashes = np.concatenate([p[0] for p in pieces])
        counts = np.concatenate([p[1] for p in pieces])
        ids = np.concatenate([p[2] for p in pieces]) if self._keep_first else None
        return [_compact(hashes, counts, ids)]

    def add_input(self, acc: list, value: tuple[np.ndarray, list | None]) -> list:
        hashes, ids = value
        acc.append(
            (hashes, np.ones(len(hashes), dtype=np.int64), np.asarray(ids, dtype=object) if ids else None)
        )
        if sum(len(p[0]) for p in acc) > _COMPACT_EVERY:
            acc = self._merge(acc)
        return acc

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        return self._merge([piece for acc in accumulators for piece in acc])

    def compact(self, acc: list) -> list:
        return self._merge(acc)

    def extract_output(self, acc: list) -> list:
        return self._merge(acc)


def _frequent(group_counts: tuple[int, list], max_docs: int) -> Iterator[tuple[int, str | None]]:
    """``(hash, smallest holder id or None)`` of the units held by more than ``max_docs`` documents."""
    _, pieces = group_counts
    if not pieces:
        return
    hashes, counts, ids = pieces[0]
    for index in np.nonzero(counts > max_docs)[0]:
        yield int(hashes[index]), (ids[index] if ids is not None else None)


class _Rewrite(beam.DoFn):
    def __init__(self, stage_name: str, settings: LineDedupSettings):
        self._stage_name = stage_name
        self._settings = settings

    def process(self, doc: dict[str, Any], frequent: dict[int, str | None]) -> Iterator[Any]:
        text = doc.get("text") or ""
        rewrite = remove_frequent_units(text, doc["id"], frequent, self._settings)
        out = {
            **doc,
            "dedup_lines_removed": rewrite.units_removed,
            "dedup_lines_char_frac": rewrite.char_fraction_removed,
        }
        if rewrite.units_removed:
            out["text"] = rewrite.text
            yield beam.pvalue.TaggedOutput("removed", (rewrite.units_removed, rewrite.chars_removed))
        if is_boilerplate_only(rewrite, self._settings):
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(out, self._stage_name, REASON_BOILERPLATE))
        else:
            yield out


class _SumPairs(beam.CombineFn):
    def create_accumulator(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def add_input(self, acc: tuple[int, int, int], pair: tuple[int, int]) -> tuple[int, int, int]:
        return acc[0] + 1, acc[1] + pair[0], acc[2] + pair[1]

    def merge_accumulators(self, accumulators: Iterable[tuple[int, int, int]]) -> tuple[int, int, int]:
        docs = lines = chars = 0
        for d, n, c in accumulators:
            docs, lines, chars = docs + d, lines + n, chars + c
        return docs, lines, chars

    def extract_output(self, acc: tuple[int, int, int]) -> tuple[int, int, int]:
        return acc


class LineDedup(StageTransform):
    """Remove units found in more than ``max_docs`` documents; reject pages left with too little text."""

    def __init__(self, stage_name: str, stage_config: DedupLinesConfig, versions: Versions | None = None):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._settings = settings_of(stage_config)

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        settings = self._settings
        frequent = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=512)
            | "UnitHashes" >> beam.ParDo(_HashBatch(settings))
            | "CountDocsPerUnit" >> beam.CombinePerKey(_CountDocs(settings.keep_first))
            | "Frequent" >> beam.FlatMap(_frequent, settings.max_docs)
        )
        outputs = docs | "Rewrite" >> beam.ParDo(
            _Rewrite(self.stage_name, settings), beam.pvalue.AsDict(frequent)
        ).with_outputs(REJECTED_TAG, "removed", main="kept")
        # Lines and characters removed, for stats.json (rows like accounting's: stage, key, count).
        totals = outputs.removed | "SumRemoved" >> beam.CombineGlobally(_SumPairs())
        name = self.stage_name
        self.extra_counts = [
            totals
            | "RemovedRows"
            >> beam.FlatMap(
                lambda t: [
                    (name, "documents_changed", t[0]),
                    (name, "lines_removed", t[1]),
                    (name, "chars_removed", t[2]),
                ]
            )
        ]
        return outputs.kept, outputs[REJECTED_TAG]


# Line dedup edits documents' text (a filter), unlike dedup_exact and dedup_minhash.
STAGE = TransformStageDef(
    name="dedup_lines",
    config=DedupLinesConfig,
    transform=LineDedup,
    annotations=Fixed({"dedup_lines_removed": "int64", "dedup_lines_char_frac": "float64"}),
)
