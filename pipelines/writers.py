"""Kept and rejected documents as Parquet, with one typed column per annotation.

The schema is the union of what the enabled stages declare, so the same run always writes the same
columns whatever its data, and annotations of rejected documents can be queried next to kept ones to
re-tune thresholds without re-running models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa

ARROW_TYPES = {
    "string": pa.string(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}
BASE_FIELDS = [
    ("id", pa.string()),
    ("url", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
]
REJECTION_FIELDS = [("stage", pa.string()), ("reason", pa.string())]
# Reader-internal keys that never reach an output file (raw bytes, HTTP details consumed by extraction).
TRANSIENT_KEYS = frozenset({"html", "content_type", "charset"})


def document_schema(annotation_types: Mapping[str, str], rejected: bool) -> pa.Schema:
    fields = list(BASE_FIELDS)
    if rejected:
        fields += REJECTION_FIELDS
    fields += [(name, ARROW_TYPES[kind]) for name, kind in annotation_types.items()]
    fields += [("metadata", pa.string()), ("other_annotations", pa.string())]
    return pa.schema(fields)


def _json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str) if value else None


def to_table(docs: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Documents as rows of ``schema``: declared annotations as columns, the rest as JSON (built column
    by column, a few times faster than a table from row dicts)."""
    names = set(schema.names)
    columns = {
        "metadata": [_json(doc.get("metadata")) for doc in docs],
        "other_annotations": [
            _json({k: v for k, v in doc.items() if k not in names and k not in TRANSIENT_KEYS})
            for doc in docs
        ],
    }
    arrays = [
        pa.array(
            columns[field.name] if field.name in columns else [doc.get(field.name) for doc in docs],
            field.type,
        )
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


class _RowsToTable(beam.DoFn):
    """Batch rows into Arrow tables (what WriteToParquetBatched wants) with the declared schema."""

    def __init__(self, schema: pa.Schema):
        self._schema = schema

    def process(self, batch: list[dict[str, Any]]) -> Iterable[pa.Table]:
        yield to_table(batch, self._schema)


class WriteDocuments(beam.PTransform):
    """Write documents to ``prefix-SSSSS-of-NNNNN.parquet`` (zstd) atomically through Beam's file sinks."""

    def __init__(self, path_prefix: str, schema: pa.Schema):
        super().__init__()
        self._prefix = path_prefix
        self._schema = schema

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        return (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=2048)
            | "ToArrow" >> beam.ParDo(_RowsToTable(self._schema))
            | "Write"
            >> beam.io.WriteToParquetBatched(
                self._prefix, schema=self._schema, codec="zstd", file_name_suffix=".parquet"
            )
        )
