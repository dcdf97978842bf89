"""One id per document within a run: ids that collide are derived again, or fail the run.

Inputs often number their rows per file (``id: 0, 1, 2`` in every file); near-dedup and the shards need
ids that name exactly one document. Only ids and record positions are grouped (about 100 bytes per
document, never the raw HTML); the renames of colliding documents come back as a side input, which holds
one entry per document whose id another document already had.

The side input goes to the reader itself (``Renames`` over a first, ids-only pass over the files), not
to the documents read: a step that needs a side input computed from its own main input makes Beam's
local runner hold that whole input (every raw record, HTML included) in its memory until the side input
is ready. Reading the files twice costs far less than that.
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


Record = tuple[str, str]  # (source, position): where a document was read


def _record_order(record: Record) -> tuple[str, str, int]:
    return _position_key({"source": record[0], POSITION: record[1]})


def renames_of(
    doc_id: str, records: Iterable[Record], on_duplicate: Literal["derive", "fail"]
) -> Iterator[tuple[Record, str]]:
    """The records that share ``doc_id``: the first in reading order keeps it; each other one gets a
    derived id (or the run fails, naming both)."""
    first, *others = sorted(records, key=_record_order)
    for record in others:
        if on_duplicate == "fail":
            raise CurateError(
                f"duplicate document id '{doc_id}': {first[0]} {first[1]} and {record[0]} {record[1]}; "
                "give unique ids or set input.on_duplicate_id: derive"
            )
        yield record, derived_id({"source": record[0], POSITION: record[1]})


def unique(doc: Document, renames: dict[Record, str]) -> Document:
    """A read document with its run-unique id (a copy; see Renames)."""
    new_id = renames.get((doc.get("source") or "", str(doc.get(POSITION, ""))))
    copy = _without_position(doc)
    if new_id is not None:
        copy["id"] = new_id
        copy["metadata"] = {**(doc.get("metadata") or {}), "original_id": doc["id"]}
    return copy


def id_and_record(doc: Document) -> tuple[str, Record]:
    return doc["id"], (doc.get("source") or "", str(doc.get(POSITION, "")))


class Renames(beam.PTransform):
    """``(id, (source, position))`` of every document read -> ``((source, position), new id)`` for each
    document whose id an earlier one (in reading order) has; use as a side input (AsDict)."""

    def __init__(self, on_duplicate: Literal["derive", "fail"]):
        super().__init__()
        self._on_duplicate = on_duplicate

    def expand(self, ids: beam.PCollection) -> beam.PCollection:
        on_duplicate = self._on_duplicate
        return (
            ids
            | "GroupById" >> beam.GroupByKey()
            | "Renames" >> beam.FlatMap(lambda group: renames_of(group[0], group[1], on_duplicate))
        )
