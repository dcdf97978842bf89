"""How a filter from `filters/` becomes a Beam stage: batch, annotate, decide, split kept from rejected.

Every stage transform in curate has the same shape: ``docs | Stage`` returns ``(kept, rejected)``. A
rejected document is the input dict plus ``stage`` and ``reason``; nothing is dropped silently, which is
what lets `stats.json` prove ``in == out + sum(rejected)`` for every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic

import apache_beam as beam

from curate.core.config import StageConfigT, StageDef
from curate.filters.base import DocumentFilter, FilterStageDef

Document = dict[str, Any]
REJECTED_TAG = "rejected"


def reject(doc: Mapping[str, Any], stage: str, reason: str, **annotations: Any) -> Document:
    """A rejected copy of ``doc`` (with any last annotations); the input is never changed, since Beam may
    hand the same element to several consumers. Reasons are not namespaced: stats group by stage."""
    return {**doc, **annotations, "stage": stage, "reason": reason}


class StageTransform(beam.PTransform):
    """Base for curate stages: `expand` returns ``(kept, rejected)``; subclasses declare annotations."""

    stage_name: str = ""
    #: annotation name -> arrow type name (see filters.base.ANNOTATION_TYPES)
    annotation_types: Mapping[str, str] = {}


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
        annotation_types: Mapping[str, str],
        batch_size: int = 256,
    ):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self.annotation_types = dict(annotation_types)
        self._make_filter = make_filter
        self._batch_size = batch_size

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self._batch_size)
            | "AnnotateAndDecide"
            >> beam.ParDo(_AnnotateAndDecide(self.stage_name, self._make_filter)).with_outputs(
                REJECTED_TAG, main="kept"
            )
        )
        return outputs.kept, outputs[REJECTED_TAG]


@dataclass(frozen=True)
class TransformStageDef(StageDef[StageConfigT], Generic[StageConfigT]):
    """A stage implemented in Beam, declared in its pipelines module: ``transform(name, config)``."""

    transform: Callable[[str, StageConfigT], StageTransform]

    def build(self, config: StageConfigT) -> StageTransform:
        return self.transform(self.name, config)


def build_filter_stage(stage: FilterStageDef[Any], config: Any) -> FilterStage:
    """The Beam stage for a filter: its spec is checked here, in the driver, before any worker starts."""
    spec = stage.spec(config)
    return FilterStage(stage.name, spec.make, spec.annotation_types, getattr(config, "batch_size", 256))
