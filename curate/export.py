"""Token shards in the layouts other trainers read: Megatron, MosaicML MDS, LitData, Hugging Face, datatrove.

Every writer takes the documents one at a time, in the shards' order (manifest order, row group, row), and
keeps no more than a Parquet row group of them in memory (chunked formats spill a chunk's items to a
temporary file), so memory does not grow with the dataset; `verify` reads in fixed windows. Each document
keeps its tokens exactly as the shards hold them: it ends with the tokenizer's EOS id, and no BOS is added
(the convention of Megatron's `--append-eod`, datatrove's and LitGPT's packed streams). The export writes
`curate-export.json` (format, counts, tokenizer ids, per-domain token shares, and the token-stream hash)
and `tokenizer.json` beside the data.

The token-stream hash is sha256 over each document, in order, as its token count (uint64 LE) followed by
its tokens (uint32 LE): the same for the source shards and for every export, whatever the dtype, so
`curate export --verify DEST` proves that a consumer's reader sees exactly the documents of the shards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.core.errors import CurateError
from curate.core.files import copy_from, copy_to, is_local, join, read_bytes
from curate.core.shard_format import TOKENIZER_FILE
from curate.train.data import ShardSet, parquet_file

METADATA = "curate-export.json"
FORMATS = ("megatron", "mds", "litdata", "hf", "datatrove")
HASH_NAME = "sha256 of (uint64 LE token count, uint32 LE tokens) per document, in order"
CHUNK_BYTES = 64 << 20  # MDS shards, LitData chunks, Parquet files: about this many token bytes each
BLOCK_QUANTUM = 1 << 16  # LitData chunks hold a multiple of this many tokens (block sizes that divide it)
ROW_GROUP_TOKENS = 1 << 20  # Parquet row groups (hf): about this many tokens each
COPY_BLOCK = 4 << 20
WINDOW_TOKENS = 1 << 20  # --verify reads datatrove exports in windows of this many tokens


class StreamHash:
    """The token-stream hash (module docstring), fed one document at a time."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.documents = 0
        self.tokens = 0

    def add(self, tokens: np.ndarray) -> None:
        self._sha.update(struct.pack("<Q", len(tokens)))
        self._sha.update(np.asarray(tokens, dtype="<u4").tobytes())
        self.documents += 1
        self.tokens += len(tokens)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (Megatron's own rule: below 65,500), else int32 (Megatron, MDS) ."""
    return np.dtype(np.uint16) if vocab_size < 65_500 else np.dtype(np.int32)


# ------------------------------------------------------------------------------------------- source


def source_documents(shards: ShardSet) -> Iterator[tuple[np.ndarray, str]]:
    """(tokens, domain) of every document, one row group in memory at a time.

    A row group is decoded on this thread and Arrow's allocator hands the freed memory back after each:
    with the default thread pool and mimalloc's retention, peak memory grew with the number of row
    groups read (bench/export.py: +50 MB from the bench crawl to 4x of it)."""
    pool = pa.default_memory_pool()
    for path in shards.shards:
        handle = parquet_file(path)
        for group in range(handle.num_row_groups):
            pool.release_unused()
            table = handle.read_row_group(group, columns=["tokens", "domain"], use_threads=False)
            tokens = table.column("tokens").combine_chunks()
            flat = tokens.flatten().to_numpy(zero_copy_only=False)
            offsets = tokens.offsets.to_numpy()
            offsets = offsets - offsets[0]
            domains = table.column("domain").to_pylist()
            for row, domain in enumerate(domains):
                yield flat[offsets[row] : offsets[row + 1]], domain


def source_hash(shards: ShardSet) -> StreamHash:
    digest = StreamHash()
    for tokens, _ in source_documents(shards):
        digest.add(tokens)
    return digest


# ------------------------------------------------------------------------------------------ writers


class Writer:
    """Writes one dataset of one format into a local folder; `add` per document, then `close`. Formats
    with chunks (MDS shards, LitData chunks, Parquet files) make them about `chunk_bytes` of tokens."""

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        self.folder, self.dtype, self.name, self.chunk_bytes = folder, dtype, name, chunk_bytes
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, tokens: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> list[str]:
        """The files written (relative to the folder): what a consumer is pointed at."""
        raise NotImplementedError


class MegatronWriter(Writer):
    """Megatron-LM / NeMo indexed dataset: NAME.bin (tokens) + NAME.idx (MMIDIDX v1 header, dtype code,
    sequence lengths int32, byte pointers int64, document indices int64). One sequence per document."""

    DTYPE_CODES = {"uint16": 8, "int32": 4}  # megatron.core.datasets.indexed_dataset.DType

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        super().__init__(folder, dtype, name, chunk_bytes)
        self._bin = open(folder / f"{name}.bin", "wb")  # noqa: SIM115 (closed in close())
        self._lengths = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._count = 0

    def add(self, tokens: np.ndarray) -> None:
        self._bin.write(np.asarray(tokens, dtype=self.dtype).tobytes())
        self._lengths.write(np.int32(len(tokens)).tobytes())
        self._count += 1

    def close(self) -> list[str]:
        self._bin.close()
        with open(self.folder / f"{self.name}.idx", "wb") as idx:
            idx.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1))
            idx.write(struct.pack("<B", self.DTYPE_CODES[self.dtype.name]))
            idx.write(struct.pack("<Q", self._count) + struct.pack("<Q", self._count + 1))
            for block in _blocks(self._lengths, np.int32):
                idx.write(block.tobytes())
            start = 0
            for block in _blocks(self._lengths, np.int32):
                ends = np.cumsum(block.astype(np.int64) * self.dtype.itemsize) + start
                idx.write(np.concatenate([[start], ends[:-1]]).astype(np.int64).tobytes())
                start = int(ends[-1])
            for first in range(0, self._count + 1, 1 << 20):
                idx.write(np.arange(first, min(first + (1 << 20), self._count + 1), dtype=np.int64).tobytes())
        self._lengths.close()
        return [f"{self.name}.bin", f"{self.name}.idx"]


def _blocks(spill: Any, dtype: Any, count: int = 1 << 20) -> Iterator[np.ndarray]:
    spill.seek(0)
    width = np.dtype(dtype).itemsize
    while data := spill.read(count * width):
        yield np.frombuffer(data, dtype=dtype)


class DatatroveWriter(Writer):
    """datatrove's tokenized files (nanotron): NAME.ds (tokens, 2 or 4 bytes) + NAME.ds.index (document
    ends in tokens, uint64) + NAME.ds.metadata (tokenizer|token size, token count)."""

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        dtype = np.dtype(np.uint16) if dtype.itemsize == 2 else np.dtype(np.uint32)
        super().__init__(folder, dtype, name, chunk_bytes)
        self._ds = open(folder / f"{name}.ds", "wb")  # noqa: SIM115 (closed in close())
        self._index = open(folder / f"{name}.ds.index", "wb")  # noqa: SIM115 (closed in close())
        self._end = 0

    def add(self, tokens: np.ndarray) -> None:
        self._ds.write(np.asarray(tokens, dtype=self.dtype).tobytes())
        self._end += len(tokens)
        self._index.write(struct.pack("<Q", self._end))

    def close(self) -> list[str]:
        self._ds.close()
        self._index.close()
        meta = f"{TOKENIZER_FILE}|{self.dtype.itemsize}\n{self._end}\n{self._end:,} tokens"
        (self.folder / f"{self.name}.ds.metadata").write_text(meta)
        return [f"{self.name}.ds", f"{self.name}.ds.index", f"{self.name}.ds.metadata"]


class _ChunkedWriter(Writer):
    """Files of a header (item count, item offsets) then the items, MDS's and LitData's chunk layout. The
    open chunk's items go to a temporary file as they arrive and only their sizes stay in memory; a chunk
    is written as its header followed by a copy of those bytes. So memory holds no tokens."""

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        super().__init__(folder, dtype, name, chunk_bytes)
        self.files: list[str] = []
        self._body = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (closed in close())
        self._sizes: list[int] = []  # byte size of each item of the open chunk

    def _add_item(self, *parts: bytes) -> None:
        for part in parts:
            self._body.write(part)
        self._sizes.append(sum(len(part) for part in parts))

    def _write_chunk(self, name: str, sizes: list[int], body_start: int) -> int:
        """NAME: uint32 item count, N+1 uint32 byte offsets from the file's start, then the items (the
        body's bytes from `body_start`). Returns the file's size."""
        start = 4 * (len(sizes) + 2)
        offsets = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]) + start
        if offsets[-1] >= 1 << 32:
            raise CurateError(f"{name}: a chunk over 4 GiB; lower the chunk size")
        with open(self.folder / name, "wb") as chunk:
            chunk.write(struct.pack("<I", len(sizes)) + offsets.astype("<u4").tobytes())
            self._body.seek(body_start)
            left = int(offsets[-1]) - start
            while left:
                block = self._body.read(min(COPY_BLOCK, left))
                chunk.write(block)
                left -= len(block)
            self.files.append(name)
            return chunk.tell()

    def _next_chunk(self) -> None:
        self._body.seek(0)
        self._body.truncate()
        self._sizes = []

    def close(self) -> list[str]:
        if self._sizes:
            self.flush(final=True)
        self._body.close()
        return self.finish()

    def flush(self, final: bool = False) -> None:
        raise NotImplementedError

    def finish(self) -> list[str]:
        raise NotImplementedError


class LitDataWriter(_ChunkedWriter):
    """LitData optimized chunks for LitGPT: chunk-0-N.bin (item count, offsets, items: the documents, one
    that crosses a chunk's end split in two) + index.json with `item_loader: TokensLoader`.

    TokensLoader cuts each chunk into blocks of `block_size` tokens and drops a chunk's tail shorter than a
    block. So every chunk holds a multiple of BLOCK_QUANTUM tokens (`chunk_tokens`, the last one fewer),
    except a last one of the rest (under BLOCK_QUANTUM tokens): a block size that divides BLOCK_QUANTUM
    reads every token but that small rest."""

    DTYPE_INDEX = {"uint16": 20, "int32": 15}  # litdata.constants._TORCH_DTYPES_MAPPING

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        super().__init__(folder, dtype, name, chunk_bytes)
        self.quantum = BLOCK_QUANTUM
        self.chunk_tokens = max(1, chunk_bytes // dtype.itemsize // self.quantum) * self.quantum
        self.chunks: list[dict[str, Any]] = []
        self._tokens = 0  # in the open chunk

    def add(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens, dtype=self.dtype)
        while len(tokens):
            room = self.chunk_tokens - self._tokens
            piece, tokens = tokens[:room], tokens[room:]
            self._add_item(piece.tobytes())
            self._tokens += len(piece)
            if self._tokens == self.chunk_tokens:
                self.flush()

    def flush(self, final: bool = False) -> None:
        """The open chunk; the last one is cut after its last whole multiple of the quantum."""
        cut = self._tokens // self.quantum * self.quantum * self.dtype.itemsize
        total = self._tokens * self.dtype.itemsize
        if not final or cut in (0, total):
            self._add_chunk(self._sizes, 0)
        else:
            ends = np.cumsum(self._sizes)
            split = int(np.searchsorted(ends, cut))  # the item that holds byte `cut` (or ends there)
            before = int(ends[split - 1]) if split else 0
            head = [*self._sizes[:split], cut - before]
            tail = [int(ends[split]) - cut, *self._sizes[split + 1 :]]
            self._add_chunk([size for size in head if size], 0)
            self._add_chunk([size for size in tail if size], cut)
        self._next_chunk()
        self._tokens = 0

    def _add_chunk(self, sizes: list[int], body_start: int) -> None:
        name = f"chunk-0-{len(self.chunks)}.bin"
        size = self._write_chunk(name, sizes, body_start)
        dim = sum(sizes) // self.dtype.itemsize
        self.chunks.append({"chunk_bytes": size, "chunk_size": len(sizes), "dim": dim, "filename": name})

    def finish(self) -> list[str]:
        config = {
            "chunk_bytes": self.chunk_tokens * self.dtype.itemsize,
            "chunk_size": None,
            "compression": None,
            "data_format": [f"no_header_tensor:{self.DTYPE_INDEX[self.dtype.name]}"],
            "data_spec": '[1, {"type": null, "context": null, "children_spec": []}]',
            "encryption": None,
            "item_loader": "TokensLoader",
        }
        (self.folder / "index.json").write_text(json.dumps({"chunks": self.chunks, "config": config}))
        return [*self.files, "index.json"]


class MDSWriter(_ChunkedWriter):
    """MosaicML Streaming's MDS (LLM Foundry): shard.NNNNN.mds (sample count, offsets, samples) + index.json
    (version 2). One column, `tokens`, encoded `ndarray:<dtype>` (a 1-D array of the document's tokens);
    LLM Foundry's StreamingTextDataset reads the `tokens` column of pre-tokenized MDS as is. A shard closes
    once it holds `chunk_bytes` (MDS's size_limit)."""

    SHAPE_DTYPES = ("<u1", "<u2", "<u4", "<u8")  # streaming.base.format.mds.encodings NDArray's shape codes

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        super().__init__(folder, dtype, name, chunk_bytes)
        self.shards: list[dict[str, Any]] = []
        self._bytes = 0

    def add(self, tokens: np.ndarray) -> None:
        # A sample: the byte size of its one variable-size column (uint32), then the value in NDArray's
        # dynamic-shape form: (ndim << 2 | shape dtype code), the shape in that dtype, the values.
        tokens = np.asarray(tokens, dtype=self.dtype)
        code = next(c for c in range(4) if len(tokens) < 1 << (8 << c))
        shape = bytes([1 << 2 | code]) + np.array([len(tokens)], self.SHAPE_DTYPES[code]).tobytes()
        self._add_item(struct.pack("<I", len(shape) + tokens.nbytes), shape, tokens.tobytes())
        self._bytes += self._sizes[-1]
        if self._bytes >= self.chunk_bytes:
            self.flush()

    def flush(self, final: bool = False) -> None:
        samples, name = len(self._sizes), f"shard.{len(self.shards):05d}.mds"
        size = self._write_chunk(name, self._sizes, 0)
        self._next_chunk()
        self.shards.append(
            {
                "column_encodings": [f"ndarray:{self.dtype.name}"],
                "column_names": ["tokens"],
                "column_sizes": [None],
                "compression": None,
                "format": "mds",
                "hashes": [],
                "raw_data": {"basename": name, "bytes": size, "hashes": {}},
                "samples": samples,
                "size_limit": self.chunk_bytes,
                "version": 2,
                "zip_data": None,
            }
        )
        self._bytes = 0

    def finish(self) -> list[str]:
        (self.folder / "index.json").write_text(json.dumps({"shards": self.shards, "version": 2}))
        return [*self.files, "index.json"]


class HFWriter(Writer):
    """Hugging Face `datasets` Parquet: data/train-NNNNN.parquet with an `input_ids` column (a sequence of
    int32, its features in the schema's `huggingface` metadata), for `load_dataset("parquet", ...)`. Rows
    go out a row group (ROW_GROUP_TOKENS) at a time; a file closes after `chunk_bytes` of tokens."""

    FEATURES = {"input_ids": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "List"}}
    SCHEMA = pa.schema(
        [pa.field("input_ids", pa.list_(pa.int32()))],
        metadata={b"huggingface": json.dumps({"info": {"features": FEATURES}}).encode()},
    )

    def __init__(self, folder: Path, dtype: np.dtype, name: str = "data", chunk_bytes: int = CHUNK_BYTES):
        super().__init__(folder, dtype, name, chunk_bytes)
        self.files: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[np.ndarray] = []
        self._row_tokens = self._file_tokens = 0

    def add(self, tokens: np.ndarray) -> None:
        self._rows.append(np.asarray(tokens, dtype=np.int32))
        self._row_tokens += len(tokens)
        if self._row_tokens >= ROW_GROUP_TOKENS:
            self._write_row_group()

    def _write_row_group(self) -> None:
        if self._writer is None:
            self.files.append(f"data/train-{len(self.files):05d}.parquet")
            (self.folder / "data").mkdir(exist_ok=True)
            self._writer = pq.ParquetWriter(self.folder / self.files[-1], self.SCHEMA, compression="zstd")
        lengths = np.fromiter((len(row) for row in self._rows), dtype=np.int64, count=len(self._rows))
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        column = pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(self._rows), pa.int32()))
        self._writer.write_table(pa.Table.from_arrays([column], schema=self.SCHEMA))
        self._file_tokens += self._row_tokens
        self._rows, self._row_tokens = [], 0
        if self._file_tokens * 4 >= self.chunk_bytes:
            self._writer.close()
            self._writer, self._file_tokens = None, 0

    def close(self) -> list[str]:
        if self._rows:
            self._write_row_group()
        if self._writer is not None:
            self._writer.close()
        return list(self.files)


WRITERS: dict[str, type[Writer]] = {
    "megatron": MegatronWriter,
    "mds": MDSWriter,
    "litdata": LitDataWriter,
    "hf": HFWriter,
    "datatrove": DatatroveWriter,
}


# ------------------------------------------------------------------------------------------- export


def export(
    spec: str,
    fmt: str,
    dest: str,
    *,
    by_domain: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the shards at `spec` (folder, gs://, s3://, NAME@REF) to `dest` in `fmt`; returns the metadata.

    `by_domain` writes one dataset per domain (DEST/<domain>/...) plus the blend weights (each domain's
    token share) in the consumer's form, so a trainer that mixes datasets reproduces the shards' mix."""
    if fmt not in WRITERS:
        raise CurateError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    shards = ShardSet.open(spec)
    dtype = token_dtype(shards.vocab_size)
    staging = Path(tempfile.mkdtemp(prefix="curate-export-", dir=_staging_parent(dest)))
    try:
        writers: dict[str, Writer] = {}
        parts: dict[str, StreamHash] = {}  # per dataset (one, or one per domain)
        digest = StreamHash()
        domain_tokens: dict[str, int] = {}
        started, last = time.monotonic(), 0.0
        for tokens, domain in source_documents(shards):
            key = _safe_name(domain or "unknown") if by_domain else ""
            if key not in writers:
                writers[key] = WRITERS[fmt](staging / key if key else staging, dtype, chunk_bytes=chunk_bytes)
                parts[key] = StreamHash()
            writers[key].add(tokens)
            parts[key].add(tokens)
            digest.add(tokens)
            domain_tokens[domain] = domain_tokens.get(domain, 0) + len(tokens)
            if progress and time.monotonic() - last > 1:
                last = time.monotonic()
                progress(digest.documents, digest.tokens, shards.total_tokens)
        if not digest.documents:
            raise CurateError(f"{spec}: the shards hold no documents; nothing to export")
        files = {key: writer.close() for key, writer in writers.items()}
        datasets = {
            key or ".": {
                "files": files[key],
                "documents": parts[key].documents,
                "tokens": parts[key].tokens,
                "token_stream_hash": parts[key].hexdigest(),
            }
            for key in sorted(files)
        }
        (staging / TOKENIZER_FILE).write_bytes(read_bytes(join(str(shards.root), TOKENIZER_FILE)))
        metadata = _metadata(spec, fmt, shards, digest, domain_tokens, datasets, dtype)
        metadata["seconds"] = round(time.monotonic() - started, 3)
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        if progress:
            progress(digest.documents, digest.tokens, shards.total_tokens)
        _publish(staging, dest)
        return metadata
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_name(domain: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in domain) or "unknown"


def _staging_parent(dest: str) -> str | None:
    """Stage beside a local DEST (same filesystem: the final rename is atomic), else in the temp dir."""
    if not is_local(dest):
        return None
    parent = Path(dest.removeprefix("file://")).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent)


def _publish(staging: Path, dest: str) -> None:
    """A local DEST appears whole (one rename); on an object store the metadata file goes up last, so a
    reader that finds curate-export.json finds every file it names."""
    if is_local(dest):
        target = Path(dest.removeprefix("file://"))
        if target.exists():
            if any(target.iterdir()):
                raise CurateError(f"{dest}: exists and is not empty; choose a new --output")
            target.rmdir()
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp made it private; the export is an ordinary folder
        os.replace(staging, target)
        return
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != METADATA)
    for path in [*files, staging / METADATA]:
        copy_to(str(path), join(dest, path.relative_to(staging).as_posix()))


def _metadata(
    spec: str,
    fmt: str,
    shards: ShardSet,
    digest: StreamHash,
    domain_tokens: dict[str, int],
    datasets: dict[str, dict[str, Any]],
    dtype: np.dtype,
) -> dict[str, Any]:
    total = sum(domain_tokens.values())
    shares = {domain: n / total for domain, n in sorted(domain_tokens.items())}
    return {
        "format": fmt,
        "source": spec,
        "documents": digest.documents,
        "tokens": digest.tokens,
        "token_stream_hash": digest.hexdigest(),
        "hash": HASH_NAME,
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "vocab_size": shards.vocab_size,
            "eos_id": shards.eos_id,
            "bos_id": None,
            "token_dtype": dtype.name,
        },
        "boundaries": f"every document ends with EOS ({shards.eos_id}); no BOS is added",
        "domains": {d: {"tokens": n, "share": round(shares[d], 6)} for d, n in sorted(domain_tokens.items())},
        "datasets": datasets,
        "blend": _blend(fmt, list(datasets), domain_tokens, total) if len(datasets) > 1 else None,
        "train_with": TRAIN_WITH[fmt],
    }


def _blend(fmt: str, keys: list[str], domain_tokens: dict[str, int], total: int) -> Any:
    """Per-domain datasets and their token shares in the form the consumer takes."""
    by_key: dict[str, int] = {}
    for domain, n in domain_tokens.items():
        key = _safe_name(domain or "unknown")
        by_key[key] = by_key.get(key, 0) + n
    weights = {key: round(by_key[key] / total, 6) for key in keys}
    if fmt == "megatron":  # --data-path w1 prefix1 w2 prefix2 ...
        return {"weights": weights, "data_path": " ".join(f"{w} {k}/data" for k, w in weights.items())}
    if fmt == "mds":  # Streams(remote/local, proportion=w)
        return {"weights": weights, "streams": [{"local": k, "proportion": w} for k, w in weights.items()]}
    if fmt == "litdata":  # CombinedStreamingDataset(datasets, weights)
        return {
            "weights": weights,
            "combined": {"datasets": list(weights), "weights": list(weights.values())},
        }
    if fmt == "hf":  # interleave_datasets(datasets, probabilities)
        return {"weights": weights, "probabilities": list(weights.values()), "datasets": list(weights)}
    return {"weights": weights}  # nanotron: dataset_folder list + dataset_weights


TRAIN_WITH = {
    "megatron": "pretrain_gpt.py --data-path DEST/data --tokenizer-type HuggingFaceTokenizer "
    "--tokenizer-model DEST --split 100,0,0 (Megatron-LM; NeMo: data_prefix)",
    "mds": "LLM Foundry train/train.py with train_loader.dataset.remote=DEST "
    "(type text, tokenizer DEST/tokenizer.json; the `tokens` column is read as is)",
    "litdata": "litgpt pretrain --data LitData --data.data_path DEST (TokensLoader(block_size=seq_len+1))",
    "hf": 'datasets.load_dataset("parquet", data_files="DEST/data/*.parquet")["train"]["input_ids"]',
    "datatrove": "nanotron: data_stages[].data.dataset.dataset_folder=[DEST] "
    "(token_size from curate-export.json)",
}


# ------------------------------------------------------------------------------------------- verify


def read_metadata(dest: str) -> dict[str, Any]:
    try:
        return json.loads(read_bytes(join(dest, METADATA)))
    except (OSError, ValueError) as error:
        raise CurateError(
            f"{join(dest, METADATA)}: cannot read ({error}); is {dest} a curate export?"
        ) from None


def verify(dest: str) -> dict[str, Any]:
    """Read DEST with its consumer's own reader and recompute the token-stream hash of each dataset
    (the whole export's equals the shards'; with --by-domain, each domain's equals the shards' documents
    of that domain, in order)."""
    metadata = read_metadata(dest)
    if is_local(dest):
        return _verify_folder(Path(dest.removeprefix("file://")), metadata)
    # On an object store: the files the metadata names are copied down, one stream each, into a
    # temporary folder (TMPDIR; it needs the export's size) and read there.
    with tempfile.TemporaryDirectory(prefix="curate-verify-") as local:
        for key, dataset in metadata["datasets"].items():
            for name in dataset["files"]:
                relative = name if key == "." else f"{key}/{name}"
                copy_from(join(dest, relative), str(Path(local, relative)))
        return {**_verify_folder(Path(local), metadata), "copied_from": dest}


def _verify_folder(root: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    reader = READERS[metadata["format"]]
    found: dict[str, Any] = {}
    for key, expected in metadata["datasets"].items():
        digest = StreamHash()
        for tokens in reader(root / key if key != "." else root, metadata):
            digest.add(tokens)
        found[key] = {
            "documents": digest.documents,
            "tokens": digest.tokens,
            "token_stream_hash": digest.hexdigest(),
            "ok": (digest.documents, digest.hexdigest())
            == (expected["documents"], expected["token_stream_hash"]),
        }
    whole = found.get(".", {})
    return {
        "format": metadata["format"],
        "reader": READER_NAMES[metadata["format"]],
        "documents": sum(part["documents"] for part in found.values()),
        "tokens": sum(part["tokens"] for part in found.values()),
        "token_stream_hash": whole.get("token_stream_hash"),
        "expected": metadata["token_stream_hash"] if whole else None,
        "datasets": found if not whole else None,
        "ok": all(part["ok"] for part in found.values()),
    }


def _documents(windows: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
    """Documents from consecutive windows of a token stream, each window with the positions in it where a
    document ends (exclusive); a document that crosses windows is joined, the last one ends the stream."""
    carry: list[np.ndarray] = []
    for tokens, ends in windows:
        start = 0
        for end in ends.tolist():
            yield np.concatenate([*carry, tokens[start:end]]) if carry else tokens[start:end]
            carry, start = [], end
        if start < len(tokens):
            carry.append(tokens[start:])
    if carry:
        yield np.concatenate(carry)


def _read_megatron(folder: Path, metadata: dict[str, Any]) -> Iterator[np.ndarray]:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    # mmap=False: each sequence is read from data.bin by a file read, so memory does not fill with
    # the pages of a mapping as the whole file is walked.
    dataset = IndexedDataset(str(folder / "data"), multimodal=False, mmap=False)
    bounds = dataset.document_indices
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        yield dataset[start] if end == start + 1 else np.concatenate([dataset[i] for i in range(start, end)])


def _read_datatrove(folder: Path, metadata: dict[str, Any]) -> Iterator[np.ndarray]:
    """Windows of WINDOW_TOKENS as nanotron reads them (seq_len + 1 tokens, positions from data.ds.index
    restarting at each document start), then the file's last, shorter window. A window starts at
    position 0 whatever it holds, so there a document boundary is the EOS that ends every document."""
    from datatrove.utils.dataset import DatatroveFolderDataset

    size = 2 if metadata["tokenizer"]["token_dtype"] == "uint16" else 4
    eos = metadata["tokenizer"]["eos_id"]
    dataset = DatatroveFolderDataset(
        str(folder), seq_len=WINDOW_TOKENS - 1, token_size=size, return_positions=True
    )

    def windows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for file in dataset.files:
            whole = len(file)
            last = whole + (file.fsize // size % WINDOW_TOKENS > 0)  # a shorter last window, read as is
            for item in range(last):
                sample = file[item]
                tokens = sample["input_ids"].numpy()
                positions = sample["positions"].numpy()[: len(tokens)]
                ends = np.flatnonzero(positions[1:] == 0) + 1
                if tokens[-1] == eos:
                    ends = np.append(ends, len(tokens))
                yield tokens, ends

    yield from _documents(windows())


def _read_litdata(folder: Path, metadata: dict[str, Any]) -> Iterator[np.ndarray]:
    """The packed stream as LitGPT reads it, `StreamingDataset(DEST, item_loader=TokensLoader(block))`,
    split after each EOS. The block divides every chunk but the last (LitDataWriter), so every token of
    those is read; the last chunk, when the block does not divide it, is read as one block of its size."""
    from litdata import StreamingDataset
    from litdata.streaming.item_loader import TokensLoader

    dims = [chunk["dim"] for chunk in json.loads((folder / "index.json").read_text())["chunks"]]
    block = _largest_divisor(math.gcd(*dims[:-1]), BLOCK_QUANTUM) if len(dims) > 1 else 0
    eos = metadata["tokenizer"]["eos_id"]

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if block:
            dataset = StreamingDataset(str(folder), item_loader=TokensLoader(block_size=block), shuffle=False)
            whole = dims[-1] % block == 0  # the last chunk too
            reads = len(dataset) if whole else sum(dims[:-1]) // block
            for _, tokens in zip(range(reads), dataset, strict=False):
                yield tokens.numpy(), np.flatnonzero(tokens.numpy() == eos) + 1
            if whole:
                return
        rest = StreamingDataset(str(folder), item_loader=TokensLoader(block_size=dims[-1]), shuffle=False)
        tokens = rest[len(rest) - 1].numpy()  # the last chunk, whole: its one block of this size
        yield tokens, np.flatnonzero(tokens == eos) + 1

    yield from _documents(blocks())


def _largest_divisor(number: int, at_most: int) -> int:
    return max(d for d in range(1, min(number, at_most) + 1) if number % d == 0)


def _read_hf(folder: Path, metadata: dict[str, Any]) -> Iterator[np.ndarray]:
    import datasets

    files = sorted(str(p) for p in (folder / "data").glob("*.parquet"))
    # streaming: rows come a record batch at a time from the Parquet files, with no Arrow cache to map.
    loaded = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    for row in loaded.with_format("numpy"):
        yield row["input_ids"]


def _read_mds(folder: Path, metadata: dict[str, Any]) -> Iterator[np.ndarray]:
    from streaming import StreamingDataset

    dataset = StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    for i in range(dataset.num_samples):
        yield np.asarray(dataset[i]["tokens"])


READERS: dict[str, Callable[[Path, dict[str, Any]], Iterator[np.ndarray]]] = {
    "megatron": _read_megatron,
    "mds": _read_mds,
    "litdata": _read_litdata,
    "hf": _read_hf,
    "datatrove": _read_datatrove,
}
READER_NAMES = {
    "megatron": "megatron.core.datasets.indexed_dataset.IndexedDataset",
    "mds": "streaming.StreamingDataset",
    "litdata": "litdata.StreamingDataset + TokensLoader",
    "hf": 'datasets.load_dataset("parquet")',
    "datatrove": "datatrove.utils.dataset.DatatroveFolderDataset",
}
