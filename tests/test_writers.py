"""Documents as Parquet rows (pipelines/writers.py): declared annotations typed, the rest as JSON."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.pipelines.writers import document_schema, to_table


def test_documents_become_typed_columns_with_the_rest_as_json():
    schema = document_schema(
        {"lang": "string", "lang_score": "float32", "gopher_words": "int64"}, rejected=True
    )
    docs = [
        {
            "id": "a",
            "url": "https://example.org/a",
            "text": "Hello",
            "source": "x.warc.gz",
            "stage": "quality",
            "reason": "gopher_short_doc",
            "lang": "en",
            "lang_score": 0.5,
            "gopher_words": 1,
            "metadata": {"warc_date": "2024"},
            "html": b"<p>Hello</p>",  # transient: never written
            "extra": [1, 2],
        },
        {"id": "b", "url": None, "text": "", "source": "x.warc.gz"},  # a later stage's columns missing
    ]
    table = to_table(docs, schema)

    assert table.schema == schema and table.num_rows == 2
    a, b = table.to_pylist()
    assert a["lang"] == "en" and a["gopher_words"] == 1 and abs(a["lang_score"] - 0.5) < 1e-7
    assert json.loads(a["metadata"]) == {"warc_date": "2024"}
    assert json.loads(a["other_annotations"]) == {"extra": [1, 2]}
    assert (
        b["lang"] is None and b["stage"] is None and b["metadata"] is None and b["other_annotations"] is None
    )
    assert table.schema.field("gopher_words").type == pa.int64()
