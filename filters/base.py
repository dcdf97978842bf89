"""The contract every document filter follows: annotate first, decide later (as in Dolma).

A filter sees documents as plain mappings (at least ``text`` and ``url``; earlier stages' annotations such
as ``lang`` are there too) and returns one annotation dict per document. ``decide`` turns one document's
annotations into ``None`` (keep) or a rejection reason. Keeping the two apart lets users re-tune thresholds
on the written annotations without re-running models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol

from curate.core.config import StageConfigT, StageDef

Doc = Mapping[str, Any]
Annotations = dict[str, Any]

# Arrow type names an annotation may declare; pipelines map them to pyarrow types for the output schema.
ANNOTATION_TYPES = ("string", "float32", "float64", "int32", "int64", "bool")


class DocumentFilter(Protocol):
    """What a pipeline stage needs from a filter."""

    #: annotation name -> one of ANNOTATION_TYPES; every document gets every key (None when not computed)
    annotation_types: Mapping[str, str]

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        """Score a batch of documents; one dict per document, same order."""
        ...

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        """Return None to keep the document, else the rejection reason (a short snake_case name)."""
        ...


class FilterSpec:
    """What a filter module hands the pipeline: a zero-argument factory, run once per worker, so models
    load where they are used, never in the driver (the columns it writes are the stage's declaration)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


@dataclass(frozen=True, kw_only=True)
class FilterStageDef(StageDef[StageConfigT], Generic[StageConfigT]):
    """A filter stage, declared in its filter module: ``spec(config)`` runs in the driver (and may refuse
    a config, e.g. a missing model), its factory once per worker."""

    spec: Callable[[StageConfigT], FilterSpec]
