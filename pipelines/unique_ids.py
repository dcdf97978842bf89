"""One id per document within a run: ids that collide are derived again, or fail the run.

Inputs often number their rows per file (``id: 0, 1, 2`` in every file); near-dedup and the shards need
ids that name exactly one document. The reader already spreads documents over workers with a shuffle;
grouping by id *is* that shuffle (same data moved, keyed by id instead of at random), so finding
collisions costs no extra pass over the documents. A group holds more than one document only where ids
collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import apache_beam as beam

from curate.core.errors import CurateError
from curate.core.ids import document_id

Document = dict[str, Any]
POSITION = "position"  # set by the readers: "line 12", "row 3", "byte 5120"


def _position_key(doc: Document) -> tuple[str, str, int]:
    """Reading order: file, then position within it (numbers compared as numbers)."""
    kind, _, number = str(doc.get(POSITION, "")).partition(" ")
    return (doc.get("source") or "", kind, int(number) if number.isdigit() else -1)


def _without_position(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key != POSITION}


def derived_id(doc: Document) -> str:
    """A stable id for a document whose given id another document already has: from file and position."""
    return document_id(None, f"{doc.get('source')}@{doc.get(POSITION)}", "duplicate id")


def assign_unique_ids(
    doc_id: str, docs: Iterable[Document], on_duplicate: Literal["derive", "fail"]
) -> Iterator[Document]:
    """The documents that share ``doc_id``: the first in reading order keeps it; each other one gets a
    derived id and keeps the given one as ``metadata.original_id`` (or the run fails, naming both)."""
    group = sorted(docs, key=_position_key)
    first, *others = group
    yield _without_position(first)
    for doc in others:
        if on_duplicate == "fail":
            raise CurateError(
                f"duplicate document id '{doc_id}': {first.get('source')} {first.get(POSITION)} and "
                f"{doc.get('source')} {doc.get(POSITION)}; give unique ids or set "
                "input.on_duplicate_id: derive"
            )
        renamed = _without_position(doc)
        renamed["id"] = derived_id(doc)
        renamed["metadata"] = {**(doc.get("metadata") or {}), "original_id": doc_id}
        yield renamed


class UniqueIds(beam.PTransform):
    """Documents -> the same documents with ids unique in the run, spread over workers by id."""

    def __init__(self, on_duplicate: Literal["derive", "fail"]):
        super().__init__()
        self._on_duplicate = on_duplicate

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        on_duplicate = self._on_duplicate
        return (
            docs
            | "KeyById" >> beam.Map(lambda doc: (doc["id"], doc))
            | "GroupById" >> beam.GroupByKey()
            | "AssignUniqueIds"
            >> beam.FlatMap(lambda group: assign_unique_ids(group[0], group[1], on_duplicate))
        )
