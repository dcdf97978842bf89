"""The `dedup_lines` stage: remove lines (or paragraphs) that occur in more than K documents of the run.

Counting is by key in Beam (CombinePerKey over ``(unit hash, id)``, lifted into per-worker partial
counts), so no worker holds more than its share of the distinct units; only the frequent hashes (the
boilerplate, a small set) come back as a side input for the rewrite. Documents never go through a
shuffle here. Each changed document is a copy with the rewritten text, which flows on to later stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import apache_beam as beam
from pydantic import Field

from curate.core.config import StageConfig
from curate.filters.dedup_text import Normalization
from curate.filters.line_dedup import (
    REASON_BOILERPLATE,
    LineDedupSettings,
    document_unit_hashes,
    is_boilerplate_only,
    remove_frequent_units,
)
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


class _CountDocs(beam.CombineFn):
    """Documents holding a unit, and (for keep_first) the smallest id among them: ``(count, first)``."""

    def create_accumulator(self) -> tuple[int, str | None]:
        return 0, None

    def add_input(self, acc: tuple[int, str | None], doc_id: str | None) -> tuple[int, str | None]:
        count, first = acc
        return count + 1, doc_id if first is None or (doc_id is not None and doc_id < first) else first

    def merge_accumulators(self, accumulators: Iterable[tuple[int, str | None]]) -> tuple[int, str | None]:
        count, first = 0, None
        for n, candidate in accumulators:
            count += n
            if candidate is not None and (first is None or candidate < first):
                first = candidate
        return count, first

    def extract_output(self, acc: tuple[int, str | None]) -> tuple[int, str | None]:
        return acc


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

    annotation_types = {"dedup_lines_removed": "int64", "dedup_lines_char_frac": "float64"}

    def __init__(self, stage_name: str, stage_config: DedupLinesConfig):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._settings = settings_of(stage_config)
        self.extra_counts: list[beam.PCollection] = []

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        settings = self._settings
        keep_first = settings.keep_first
        frequent = (
            docs
            | "UnitHashes"
            >> beam.FlatMap(
                lambda doc: (
                    (h, doc["id"] if keep_first else None)
                    for h in document_unit_hashes(doc.get("text") or "", settings)
                )
            )
            | "CountDocsPerUnit" >> beam.CombinePerKey(_CountDocs())
            | "Frequent" >> beam.Filter(lambda item: item[1][0] > settings.max_docs)
            | "FirstHolder" >> beam.MapTuple(lambda h, acc: (h, acc[1]))
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


STAGE = TransformStageDef(name="dedup_lines", config=DedupLinesConfig, transform=LineDedup)
