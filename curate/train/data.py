"""Stream token shards into packed, fixed-length training sequences, exactly resumably.

The unit of work is one Parquet row group (or, with more ranks than row groups, an equal share of one
group's documents, so a small dataset still feeds every rank). Each epoch the units are shuffled with a
seeded generator (seed, epoch), dealt to data-parallel ranks round-robin, and each unit's documents are
shuffled again (seed, epoch, unit). A rank's documents, in that order, form one token stream (every
document already ends with EOS, so packing needs no separator of its own). Sequences take T tokens from
the stream plus one token of look-ahead for the last target, so every token is an input exactly once per
epoch; the stream's tail is padded and its missing targets ignored.

The position (epoch, unit, offset into the unit's tokens) after every sequence is carried with it, so a
checkpoint records exactly where the next batch starts, however far a background prefetcher has read.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from curate.core.errors import CurateError
from curate.core.files import exists, is_local, join, open_binary
from curate.shards import read_manifest
from curate.versions import RemotePath, resolve_data

IGNORE_INDEX = -100  # same as curate.train.model.IGNORE_INDEX; kept here so the loader needs no torch


@dataclass(frozen=True)
class ShardSet:
    """A dataset folder's manifest, checked: where the shards are and what the tokens mean."""

    root: str | Path | RemotePath  # str: a gs:// or s3:// prefix, read through Beam's filesystems
    shards: tuple[str | Path | RemotePath, ...]
    units: tuple[tuple[int, int], ...]  # (shard index, row group)
    vocab_size: int
    eos_id: int
    total_tokens: int

    @classmethod
    def open(cls, spec: str | Path) -> ShardSet:
        """A `curate run` output folder (local, gs:// or s3://), `name@ref` from the dataset store, or
        `lakefs://REPO/REF[/PATH]` (read in place: Parquet fetches only the byte ranges it needs)."""
        spec = str(spec)
        on_object_store = not is_local(spec) and not spec.startswith("lakefs://")
        root: str | Path | RemotePath = spec if on_object_store else resolve_data(spec)
        manifest = read_manifest(root)
        try:
            tokenizer = manifest["tokenizer"]
            shards = tuple(_child(root, entry["path"]) for entry in manifest["shards"])
            vocab_size, eos_id = int(tokenizer["vocab_size"]), int(tokenizer["eos_id"])
            total = int(manifest.get("total_tokens", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise CurateError(
                f"{root}/manifest.json: missing or malformed key {error}; re-run `curate run`"
            ) from None
        missing = [
            str(path) for path in shards if not (exists(path) if isinstance(path, str) else path.is_file())
        ]
        if missing:
            raise CurateError(
                f"{root}: shard {missing[0]} is missing ({len(missing)} in all); re-run or re-checkout"
            )
        if not shards:
            raise CurateError(f"{root}/manifest.json: lists no shards; the run kept no documents")
        units = tuple(
            (index, group)
            for index, path in enumerate(shards)
            for group in range(parquet_file(path).num_row_groups)
        )
        if not units:
            raise CurateError(
                f"{root}: the shards hold no documents (the run kept none); nothing to train on"
            )
        return cls(root, shards, units, vocab_size, eos_id, total)


def _child(root: str | Path | RemotePath, name: str) -> str | Path | RemotePath:
    return join(root, name) if isinstance(root, str) else root / name


def parquet_file(path: Any) -> pq.ParquetFile:
    """A local shard by path, one on gs:// or s3:// through Beam's filesystems (seekable), a shard inside
    a version (curate.versions.RemotePath) by a ranged reader."""
    if isinstance(path, str):
        return pq.ParquetFile(open_binary(path))
    return pq.ParquetFile(path if isinstance(path, Path) else path.open())


def in_eval_split(ids: list[str], fraction: float) -> np.ndarray:
    """Held-out documents by a hash of their id: stable across runs, shard layouts and world sizes."""
    if fraction <= 0:
        return np.zeros(len(ids), dtype=bool)
    buckets = np.fromiter(
        (xxhash.xxh64_intdigest(i.encode()) % 1_000_000 for i in ids), dtype=np.int64, count=len(ids)
    )
    return buckets < int(fraction * 1_000_000)


@dataclass(frozen=True)
class Position:
    """Where a rank's stream continues: the unit (index into this epoch's list for this rank) and offset."""

    epoch: int = 0
    unit: int = 0
    offset: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Position:
        return cls(int(data["epoch"]), int(data["unit"]), int(data["offset"]))


class Sequence(NamedTuple):
    inputs: np.ndarray  # (T,) int64, padded with EOS after n_real
    targets: np.ndarray  # (T,) int64, IGNORE_INDEX where there is no next token
    n_real: int  # tokens of the stream in `inputs`
    position: Position  # where the stream continues after this sequence


class TokenStream:
    """One rank's view of one split: packed sequences, epoch after epoch."""

    def __init__(
        self,
        shards: ShardSet,
        seq_len: int,
        *,
        split: str = "train",
        eval_fraction: float = 0.0,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', not {split!r}")
        self.shards, self.seq_len, self.split = shards, seq_len, split
        self.eval_fraction, self.rank, self.world = eval_fraction, rank, world
        self.seed, self.shuffle = seed, shuffle
        parts = -(-world // len(shards.units))  # 1 unless there are fewer row groups than ranks
        self.units = [(shard, group, part, parts) for shard, group in shards.units for part in range(parts)]
        self._files: dict[int, pq.ParquetFile] = {}

    def rank_units(self, epoch: int) -> list[tuple[int, int, int, int]]:
        order = np.arange(len(self.units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        return [self.units[i] for i in order[self.rank :: self.world]]

    def load_unit(self, epoch: int, unit: tuple[int, int, int, int]) -> np.ndarray:
        """This split's documents of one unit (row group, or every parts-th of its rows), shuffled, flat."""
        shard, group, part, parts = unit
        if shard not in self._files:
            self._files[shard] = parquet_file(self.shards.shards[shard])
        try:
            table = self._files[shard].read_row_group(group, columns=["id", "tokens"])
        except (KeyError, pa.ArrowInvalid) as error:
            raise CurateError(f"{self.shards.shards[shard]}: row group {group} unreadable: {error}") from None
        held_out = in_eval_split(table.column("id").to_pylist(), self.eval_fraction)
        mine = np.arange(len(held_out)) % parts == part
        keep = np.flatnonzero(mine & (held_out if self.split == "eval" else ~held_out))
        if self.shuffle:
            keep = np.random.default_rng([self.seed, epoch, shard, group, part]).permutation(keep)
        tokens = table.column("tokens").combine_chunks().take(pa.array(keep, type=pa.int64()))
        return tokens.flatten().to_numpy(zero_copy_only=False)

    def sequences(self, start: Position = Position(), epochs: int | None = None) -> Iterator[Sequence]:
        """Packed sequences from `start` on, through `epochs` epochs (forever when None)."""
        span = self.seq_len
        epoch, first_unit, first_offset = start.epoch, start.unit, start.offset
        while epochs is None or epoch < start.epoch + epochs:
            units = self.rank_units(epoch)
            produced = False
            segments: list[list[Any]] = []  # [unit index, offset, tokens]; segments[0] is the stream's head
            next_unit = first_unit
            while True:
                available = sum(len(segment[2]) for segment in segments)
                while available <= span and next_unit < len(units):
                    tokens = self.load_unit(epoch, units[next_unit])
                    offset = first_offset if next_unit == first_unit else 0
                    if len(tokens) > offset:
                        segments.append([next_unit, offset, tokens[offset:]])
                        available += len(tokens) - offset
                    next_unit += 1
                if available == 0:
                    break
                window = np.concatenate([segment[2][: span + 1] for segment in segments])[: span + 1]
                n_real = min(span, available)
                inputs = np.full(span, self.shards.eos_id, dtype=np.int64)
                targets = np.full(span, IGNORE_INDEX, dtype=np.int64)
                inputs[:n_real] = window[:n_real]
                targets[: len(window) - 1] = window[1:]
                consumed = n_real
                while segments and consumed >= len(segments[0][2]):
                    consumed -= len(segments.pop(0)[2])
                if segments:
                    segments[0][1] += consumed
                    segments[0][2] = segments[0][2][consumed:]
                    position = Position(epoch, segments[0][0], segments[0][1])
                elif next_unit < len(units):
                    position = Position(epoch, next_unit, 0)
                else:
                    position = Position(epoch + 1, 0, 0)
                produced = True
                yield Sequence(inputs, targets, n_real, position)
            if not produced and epochs is None and first_unit == 0 and first_offset == 0:
                raise CurateError(  # an endless stream with nothing in a whole epoch would never yield
                    f"{self.shards.root}: rank {self.rank}/{self.world} has no {self.split} tokens in its "
                    f"{len(units)} work units (eval_fraction {self.eval_fraction}); add data or fewer ranks"
                )
            epoch, first_unit, first_offset = epoch + 1, 0, 0


class Batch(NamedTuple):
    inputs: np.ndarray  # (B, T) int64
    targets: np.ndarray  # (B, T) int64
    n_tokens: int  # real (unpadded) input tokens
    position: Position  # where the stream continues after this batch


def batches(
    stream: TokenStream, batch_size: int, start: Position = Position(), epochs: int | None = None
) -> Iterator[Batch]:
    """Group sequences into batches; a last short batch of a finite stream is yielded as is."""
    group: list[Sequence] = []
    for sequence in stream.sequences(start, epochs):
        group.append(sequence)
        if len(group) == batch_size:
            yield _stack(group)
            group = []
    if group:
        yield _stack(group)


def _stack(group: list[Sequence]) -> Batch:
    inputs = np.stack([s.inputs for s in group])
    targets = np.stack([s.targets for s in group])
    return Batch(inputs, targets, sum(s.n_real for s in group), group[-1].position)


def document_ids(inputs: np.ndarray, eos_id: int) -> np.ndarray:
    """Per token, the index of its document within the row (a document's EOS belongs to it)."""
    is_eos = inputs == eos_id
    return np.cumsum(is_eos, axis=-1) - is_eos


class Prefetcher:
    """Runs an iterator in a background thread, `depth` items ahead, so the accelerator never waits.

    Parquet decoding and numpy release the GIL, so one thread keeps up with a GPU; `transform` (e.g.
    making pinned tensors) runs in the thread too. Errors surface in the consumer at the next item.
    """

    _DONE = object()

    def __init__(self, source: Iterator[Any], depth: int = 4, transform: Any = None):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source, transform), daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[Any], transform: Any) -> None:
        try:
            for item in source:
                item = transform(item) if transform else item
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._queue.put(error)
            return
        self._queue.put(self._DONE)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is self._DONE:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
