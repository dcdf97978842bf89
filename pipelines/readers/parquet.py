"""Parquet files: one document per row; a row group that cannot be decoded is one rejection per row.

The footer says how many rows a group holds, so the count of what was lost is exact; a footer that
claims more rows than ``MAX_LOST_ROWS`` for a group that cannot be read is damage, not data, and is one
rejection that quotes the claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import pyarrow.parquet as pq

from curate.pipelines.readers.records import (
    Document,
    InputConfig,
    describe,
    row_to_document,
    too_large,
    unreadable,
)

MAX_LOST_ROWS = 1_000_000  # rejections written one by one for an unreadable row group


def read_parquet(raw: BinaryIO, path: str, cfg: InputConfig) -> Iterator[Document]:
    """Every row as a document or a rejection; never an exception for what the file holds."""
    try:
        parquet = pq.ParquetFile(raw)
        groups = parquet.num_row_groups
    except Exception as error:  # pyarrow raises several unrelated types for a broken footer
        yield unreadable(path, "footer", f"not a readable Parquet file ({describe(error)})")
        return
    row_number = 0
    for group in range(groups):
        try:
            rows = parquet.read_row_group(group).to_pylist()
        except Exception as error:
            problem = f"row group {group} cannot be decoded ({describe(error)})"
            claimed = _rows_claimed(parquet, group)
            if claimed is None or claimed > MAX_LOST_ROWS:
                yield unreadable(path, f"row group {group}", f"{problem}; the footer claims {claimed} rows")
                continue
            for _ in range(claimed):
                yield unreadable(path, f"row {row_number}", problem)
                row_number += 1
            continue
        for row in rows:
            yield _row_doc(row, path, f"row {row_number}", cfg)
            row_number += 1


def _rows_claimed(parquet: pq.ParquetFile, group: int) -> int | None:
    try:
        return max(0, int(parquet.metadata.row_group(group).num_rows))
    except Exception:  # the footer itself is damaged
        return None


def _row_doc(row: dict, path: str, where: str, cfg: InputConfig) -> Document:
    text = row.get(cfg.text_field)
    if (
        isinstance(text, str)
        and len(text) > cfg.max_document_bytes // 4
        and (size := len(text.encode("utf-8", errors="surrogatepass"))) > cfg.max_document_bytes
    ):
        return too_large(path, where, size, cfg)
    try:
        return row_to_document(row, path, where, cfg)
    except Exception as error:  # whatever one row provokes costs that row only
        return unreadable(path, where, describe(error) if not isinstance(error, ValueError) else str(error))
