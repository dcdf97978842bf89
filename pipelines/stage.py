"""How a filter from `filters/` becomes a Beam stage: batch, annotate, decide, split kept from rejected.

Every stage transform in curate has the same shape: ``docs | Stage`` returns ``(kept, rejected)``. A
rejected document is the input dict plus ``stage`` and ``reason``; nothing is dropped silently, which is
what lets `stats.json` prove ``in == out + sum(rejected)`` for every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import apache_beam as beam
import pyarrow as pa

from curate.core.config import StageConfigT, StageDef
from curate.filters.base import DocumentFilter, FilterStageDef
from curate.pipelines.dedup_index import Versions

Document = dict[str, Any]
REJECTED_TAG = "rejected"


def reject(doc: Mapping[str, Any], stage: str, reason: str, **annotations: Any) -> Document:
    """A rejected copy of ``doc`` (with any last annotations); the input is never changed, since Beam may
    hand the same element to several consumers. Reasons are not namespaced: stats group by stage."""
    return {**doc, **annotations, "stage": stage, "reason": reason}


def batches_of(size: int) -> beam.PTransform:
    """Batches of ``size`` elements (a bundle's last one shorter). Beam's adaptive sizing would start
    every bundle at one element and double from there: fastText got 14 documents per call on average."""
    return beam.BatchElements(min_batch_size=size, max_batch_size=size)


class StageTransform(beam.PTransform):
    """Base for curate stages: `expand` returns ``(kept, rejected)``; the columns it writes are its
    StageDef's ``annotations``."""

    stage_name: str = ""
    #: set by ``expand`` in a stage that declares an ``index``: the rows to keep beside the output
    index_rows: beam.PCollection | None = None
    #: set by ``expand`` in a stage that counts more than documents: stats rows (stage, key, count)
    extra_counts: Sequence[beam.PCollection] = ()


class _AnnotateAndDecide(beam.DoFn):
    def __init__(self, stage_name: str, make_filter: Callable[[], DocumentFilter]):
        self._stage_name = stage_name
        self._make_filter = make_filter
        self._filter: DocumentFilter | None = None

    def setup(self) -> None:
        # Models (fastText, KenLM, classifiers) load once per worker, never per element.
        self._filter = self._make_filter()

    def process(self, batch: list[Document]) -> Iterable[Any]:
        assert self._filter is not None
        for doc, scores in zip(batch, self._filter.annotate(batch), strict=True):
            annotated = {**doc, **scores}
            reason = self._filter.decide(scores, annotated)
            if reason is None:
                yield annotated
            else:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(annotated, self._stage_name, reason))


class FilterStage(StageTransform):
    """Run a `filters.base.DocumentFilter` over documents in batches (models are vectorised)."""

    def __init__(
        self,
        stage_name: str,
        make_filter: Callable[[], DocumentFilter],
        batch_size: int = 256,
    ):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._make_filter = make_filter
        self._batch_size = batch_size

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = (
            docs
            | "Batch" >> batches_of(self._batch_size)
            | "AnnotateAndDecide"
            >> beam.ParDo(_AnnotateAndDecide(self.stage_name, self._make_filter)).with_outputs(
                REJECTED_TAG, main="kept"
            )
        )
        return outputs.kept, outputs[REJECTED_TAG]


@dataclass(frozen=True)
class IndexSpec:
    """Rows a stage keeps beside the output (``OUT/index/<kind>/``), so that later runs and segments can
    join them (the dedup stages' keys and signatures), and what those rows depend on (``index.json``)."""

    kind: str
    schema: pa.Schema
    settings: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class TransformStageDef(StageDef[StageConfigT], Generic[StageConfigT]):
    """A stage implemented in Beam, declared in its pipelines module: ``transform(name, config, versions)``
    (``versions``: where the versions it is asked to compare against live; most stages ignore it)."""

    transform: Callable[[str, StageConfigT, Versions], StageTransform]
    index: IndexSpec | None = None

    def build(self, config: StageConfigT, versions: Versions | None = None) -> StageTransform:
        return self.transform(self.name, config, versions or Versions())


def build_filter_stage(stage: FilterStageDef[Any], config: Any) -> FilterStage:
    """The Beam stage for a filter: its spec is checked here, in the driver, before any worker starts."""
    return FilterStage(stage.name, stage.spec(config).make, getattr(config, "batch_size", 256))
