"""Placing shard rows into shards and writing each shard file (plus the tokenizer) atomically.

A row's shard is its seeded id-hash modulo the shard count, or its slice of the curriculum order; rows
inside a shard are sorted by that key, so the bytes do not depend on the runner or the worker count.
"""

from __future__ import annotations

import hashlib
import io
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq

from curate.core.files import write_atomic
from curate.core.shard_format import TOKENIZER_FILE, shard_name, write_shard_bytes
from curate.pipelines.encode import ShardRow


def write_tokenizer(root: str, tokenizer_json: str) -> None:
    write_atomic(f"{root}/{TOKENIZER_FILE}", tokenizer_json.encode("utf-8"))


def curriculum_bounds(keys_and_tokens: list[tuple[tuple, int]], n_shards: int) -> list[tuple]:
    """Sort keys at which shard i+1 starts, cutting the ordered stream into equal token slices."""
    ordered = sorted(keys_and_tokens)
    total = sum(n for _, n in ordered)
    bounds, running, shard = [], 0, 1
    for key, n in ordered:
        while shard < n_shards and running >= shard * total / n_shards:
            bounds.append(key)
            shard += 1
        running += n
    return bounds


def key_tokens(row: ShardRow, meta: dict[str, Any]) -> tuple[tuple, int]:
    return row[0], len(row[1][1]) // np.dtype(meta["token_dtype"]).itemsize


def assign_shard(row: tuple[tuple, Any], n_shards: int, bounds: list[tuple] | None) -> tuple[int, Any]:
    sort_key, payload = row
    shard = bisect_right(bounds, sort_key) if bounds is not None else sort_key[1] % n_shards
    return shard, (sort_key, payload)


class WriteShard(beam.DoFn):
    def __init__(self, root: str, row_group_bytes: int, first_shard: int = 0):
        self._root = root
        self._row_group_bytes = row_group_bytes
        self._first_shard = first_shard  # shards already in the folder (a segment, an appended run)

    def process(self, element: tuple[int, Iterable[Any]], meta: dict[str, Any]):
        index, rows = element
        dtype = np.dtype(meta["token_dtype"])
        ordered = sorted((r for r in rows if r is not None), key=lambda r: (r[0], r[1][0]))
        payload_rows = [
            (doc_id, np.frombuffer(tokens, dtype), domain, lang)
            for _, (doc_id, tokens, domain, lang) in ordered
        ]
        data = write_shard_bytes(payload_rows, meta["token_dtype"], self._row_group_bytes)
        path = shard_name(self._first_shard + index)
        write_atomic(f"{self._root}/{path}", data)
        domains: dict[str, int] = {}
        for _, tokens, domain, _ in payload_rows:
            domains[domain] = domains.get(domain, 0) + len(tokens)
        yield {
            "path": path,
            "n_docs": len(payload_rows),
            "n_tokens": sum(domains.values()),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "row_groups": row_groups(data),
            "domains": dict(sorted(domains.items())),
            **meta,
        }


def row_groups(data: bytes) -> int:
    return pq.ParquetFile(io.BytesIO(data)).num_row_groups
