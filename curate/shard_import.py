"""An existing tokenized corpus (Megatron's indexed dataset, a Hugging Face dataset) into curate's token
shards, so it can be versioned (`curate versions commit`), inspected, mixed and trained on like a run's.

Read by their published layouts with numpy and pyarrow (no Megatron or `datasets` needed), streamed: a
shard's worth of documents in memory at a time. A document that does not end with the tokenizer's EOS
gets one appended (the shards' contract), and is counted. The result is hash-checked: the written shards
are read back and their token-stream hash (curate.export) must equal the input's, EOS included.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.core import shard_format
from curate.core import tokenizer as tokenizers
from curate.core.errors import CurateError
from curate.export import METADATA, StreamHash, source_hash
from curate.shards import write_manifest
from curate.train.data import ShardSet

IMPORT_FORMATS = ("megatron", "hf")
MEGATRON_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
                   7: np.float32, 8: np.uint16}  # fmt: skip  # megatron.core.datasets.indexed_dataset.DType


def megatron_documents(prefix: Path) -> Iterator[np.ndarray]:
    """Documents of PREFIX.bin/.idx (MMIDIDX v1): each the concatenation of its sequences."""
    idx_path, bin_path = prefix.with_name(prefix.name + ".idx"), prefix.with_name(prefix.name + ".bin")
    with open(idx_path, "rb") as handle:
        head = handle.read(34)
    if head[:9] != b"MMIDIDX\x00\x00" or struct.unpack("<Q", head[9:17])[0] != 1:
        raise CurateError(f"{idx_path}: not a Megatron indexed dataset (MMIDIDX version 1)")
    dtype = np.dtype(MEGATRON_DTYPES[head[17]])
    sequences, documents = struct.unpack("<QQ", head[18:34])
    lengths = np.memmap(idx_path, np.int32, "r", offset=34, shape=(sequences,))
    pointers = np.memmap(idx_path, np.int64, "r", offset=34 + 4 * sequences, shape=(sequences,))
    bounds = np.memmap(idx_path, np.int64, "r", offset=34 + 12 * sequences, shape=(documents,))
    tokens = np.memmap(bin_path, dtype, "r")
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        parts = [
            tokens[pointers[i] // dtype.itemsize : pointers[i] // dtype.itemsize + lengths[i]]
            for i in range(int(start), int(end))
        ]
        yield np.concatenate(parts) if parts else np.zeros(0, dtype)


def hf_documents(folder: Path, column: str) -> Iterator[np.ndarray]:
    """Documents of a `datasets` folder: Parquet files (data/*.parquet or *.parquet) or `save_to_disk`'s
    Arrow files (data-*.arrow), one record batch at a time."""
    parquet = sorted(folder.glob("data/*.parquet")) or sorted(folder.glob("*.parquet"))
    arrow = sorted(folder.glob("*.arrow"))
    if not parquet and not arrow:
        raise CurateError(f"{folder}: no Parquet or Arrow files (a `datasets` folder or Parquet export)")
    for path in parquet:
        handle = pq.ParquetFile(path)
        for group in range(handle.num_row_groups):
            yield from _rows(handle.read_row_group(group, columns=[column]).column(column), path)
    for path in arrow:
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                yield from _rows(batch.column(column), path)


def _rows(column: Any, path: Path) -> Iterator[np.ndarray]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_list(array.type) and not pa.types.is_large_list(array.type):
        raise CurateError(f"{path}: column is {array.type}, not a list of token ids")
    flat = array.flatten().to_numpy(zero_copy_only=False)
    offsets = array.offsets.to_numpy()
    offsets = offsets - offsets[0]
    for row in range(len(array)):
        yield flat[offsets[row] : offsets[row + 1]]


def import_tokens(
    source: str,
    fmt: str,
    out: str,
    *,
    tokenizer_file: str | None = None,
    domain: str = "imported",
    column: str = "input_ids",
    shard_tokens: int = 50_000_000,
    row_group_bytes: int = 1 << 20,
) -> dict[str, Any]:
    """Write curate shards at OUT from SOURCE (a Megatron prefix or folder, or a `datasets` folder)."""
    path = Path(source)
    documents, beside = _open_source(path, fmt, column)
    tokenizer_path = Path(tokenizer_file) if tokenizer_file else beside / shard_format.TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise CurateError(f"{tokenizer_path}: no tokenizer.json; pass --tokenizer (the ids' tokenizer)")
    info = tokenizers.info_of(tokenizers.load(tokenizer_path.read_text()), str(tokenizer_path))
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise CurateError(f"{out}: exists and is not empty; choose a new --output")
    (target / shard_format.SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    (target / shard_format.TOKENIZER_FILE).write_text(info.json)
    expected, appended, pending = StreamHash(), 0, 0
    infos: list[dict[str, Any]] = []
    rows: list[tuple[str, np.ndarray, str, str | None]] = []
    for index, tokens in enumerate(documents):
        tokens = np.asarray(tokens, dtype=np.int64)
        if len(tokens) and int(tokens.max()) >= info.vocab_size:
            raise CurateError(
                f"{source}: document {index} has id {int(tokens.max())} >= vocab {info.vocab_size}"
            )
        if not len(tokens) or tokens[-1] != info.eos_id:
            tokens, appended = np.append(tokens, info.eos_id), appended + 1
        expected.add(tokens)
        rows.append((f"{path.name}/{index}", tokens, domain, None))
        pending += len(tokens)
        if pending >= shard_tokens:
            infos.append(_write_shard(target, len(infos), rows, info, row_group_bytes))
            rows, pending = [], 0
    if rows:
        infos.append(_write_shard(target, len(infos), rows, info, row_group_bytes))
    if not infos:
        raise CurateError(f"{source}: no documents to import")
    provenance = {"imported_from": str(source), "format": fmt, "tokenizer": str(tokenizer_path)}
    write_manifest(str(target), infos, provenance, {})
    found = source_hash(ShardSet.open(str(target)))
    result = {
        "source": source,
        "format": fmt,
        "output": out,
        "documents": expected.documents,
        "tokens": expected.tokens,
        "eos_appended": appended,
        "token_stream_hash": found.hexdigest(),
        "ok": found.hexdigest() == expected.hexdigest(),
    }
    export_metadata = beside / METADATA
    if export_metadata.is_file() and not appended:  # a curate export: its hash must come back as well
        result["export_hash_matches"] = (
            json.loads(export_metadata.read_text()).get("token_stream_hash") == found.hexdigest()
        )
    if not result["ok"]:
        raise CurateError(f"{out}: the written shards do not read back as the input's tokens")
    return result


def _open_source(path: Path, fmt: str, column: str) -> tuple[Iterator[np.ndarray], Path]:
    """The documents, and the folder where the source's own tokenizer.json would be."""
    if fmt == "megatron":
        prefix = path / "data" if path.is_dir() else path
        return megatron_documents(prefix), prefix.parent
    if fmt == "hf":
        return hf_documents(path, column), path
    raise CurateError(f"--format {fmt!r}: expected one of {', '.join(IMPORT_FORMATS)}")


def _write_shard(
    target: Path,
    index: int,
    rows: list[tuple[str, np.ndarray, str, str | None]],
    info: tokenizers.TokenizerInfo,
    row_group_bytes: int,
) -> dict[str, Any]:
    data = shard_format.write_shard_bytes(rows, info.token_dtype, row_group_bytes)
    (target / shard_format.shard_name(index)).write_bytes(data)
    return {
        "path": shard_format.shard_name(index),
        "n_docs": len(rows),
        "n_tokens": sum(len(row[1]) for row in rows),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "domains": {rows[0][2]: sum(len(row[1]) for row in rows)},
        "eos_id": info.eos_id,
        "vocab_size": info.vocab_size,
        "token_dtype": info.token_dtype,
        "tokenizer_source": info.source,
    }
