"""The token shard format: names, the Parquet schema, and writing one shard (base layer: no Beam).

Contract (`curate.shards/1`, relied on by `curate.train`): OUT/manifest.json lists every shard with its
sha256 and token counts; a shard has one row per document (`id`, `tokens`, `n_tokens`, `domain`,
`lang`), every document's tokens end with the tokenizer's EOS id, and rows are grouped into row groups
of about `tokenize.row_group_bytes` so a reader can stream one group at a time.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "curate.shards/1"
MANIFEST = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
SHARDS_DIR = "shards"
COMPRESSION = "zstd"
# Parquet/Arrow bookkeeping per row beyond the token bytes (offsets, id, domain): a rough estimate,
# only used to cut row groups near the configured size.
ROW_OVERHEAD_BYTES = 64


def shard_name(index: int) -> str:
    return f"{SHARDS_DIR}/shard-{index:05d}.parquet"


def shard_schema(dtype: str) -> pa.Schema:
    token_type = {"uint16": pa.uint16(), "uint32": pa.uint32()}[dtype]
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("tokens", pa.list_(token_type), nullable=False),
            pa.field("n_tokens", pa.int64(), nullable=False),
            pa.field("domain", pa.string(), nullable=False),
            pa.field("lang", pa.string(), nullable=True),
        ]
    )


def _table(rows: Sequence[tuple[str, np.ndarray, str, str | None]], schema: pa.Schema) -> pa.Table:
    token_type = schema.field("tokens").type.value_type
    np_type = np.uint16 if token_type == pa.uint16() else np.uint32
    lengths = np.fromiter((len(r[1]) for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([r[1] for r in rows]).astype(np_type, copy=False) if rows else np.zeros(0, np_type)
    tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=token_type))
    return pa.Table.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.string()),
            tokens,
            pa.array(lengths, pa.int64()),
            pa.array([r[2] for r in rows], pa.string()),
            pa.array([r[3] for r in rows], pa.string()),
        ],
        schema=schema,
    )


def write_shard_bytes(
    rows: Sequence[tuple[str, np.ndarray, str, str | None]], dtype: str, row_group_bytes: int
) -> bytes:
    """One shard as Parquet bytes; ``rows`` are (id, tokens, domain, lang) in their final order.

    Row groups are cut when their estimated size reaches ``row_group_bytes``; the bytes depend only on
    the rows and pyarrow's version, so a rerun gives an identical file.
    """
    schema = shard_schema(dtype)
    width = np.dtype(dtype).itemsize
    sink = io.BytesIO()
    # Dictionary-encoding token ids only costs: measured on web text, plain + zstd is ~20% smaller and
    # faster to write than dictionary + zstd. Domain and language repeat, so they keep it.
    with pq.ParquetWriter(
        sink,
        schema,
        compression=COMPRESSION,
        use_dictionary=["domain", "lang"],
        write_statistics=["id", "n_tokens", "domain"],
    ) as writer:
        group: list[tuple[str, np.ndarray, str, str | None]] = []
        size = 0
        for row in rows:
            group.append(row)
            size += len(row[1]) * width + ROW_OVERHEAD_BYTES
            if size >= row_group_bytes:
                writer.write_table(_table(group, schema), row_group_size=len(group))
                group, size = [], 0
        if group:
            writer.write_table(_table(group, schema), row_group_size=len(group))
    return sink.getvalue()


def table_from_bytes(data: bytes) -> pa.Table:
    """A whole Parquet file held in memory, as one table.

    Through `ParquetFile`, not `pq.read_table`: pyarrow 25's `read_table` on an in-memory source leaves a
    reader thread behind that aborts the interpreter at exit about one run in three ("terminate called
    without an active exception") after the command itself has finished and printed its result."""
    return pq.ParquetFile(io.BytesIO(data)).read()
