"""The shard loader: every token once per epoch across ranks, exact resume, a disjoint held-out split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.core.errors import CurateError
from curate.train import data as D
from curate.train.sample import write_sample_shards

SEQ_LEN = 64


def all_documents(shards: D.ShardSet) -> Counter:
    return Counter(
        tuple(tokens) for path in shards.shards for tokens in pq.read_table(path).column("tokens").to_pylist()
    )


def split_documents(stream: np.ndarray, eos_id: int) -> Counter:
    ends = np.flatnonzero(stream == eos_id)
    starts = np.concatenate([[0], ends[:-1] + 1])
    assert ends[-1] == len(stream) - 1, "a rank's stream must end with a whole document"
    return Counter(tuple(stream[s : e + 1].tolist()) for s, e in zip(starts, ends, strict=True))


def epoch_stream(shards: D.ShardSet, **kwargs) -> np.ndarray:
    """The input tokens one rank sees in one epoch, in order (padding removed)."""
    stream = D.TokenStream(shards, SEQ_LEN, **kwargs)
    return np.concatenate([s.inputs[: s.n_real] for s in stream.sequences(epochs=1)])


def test_every_token_is_seen_exactly_once_per_epoch_across_two_ranks(shard_dir: Path):
    shards = D.ShardSet.open(shard_dir)
    expected = all_documents(shards)
    ranks = [epoch_stream(shards, rank=rank, world=2, seed=7) for rank in range(2)]
    assert all(len(stream) > 0 for stream in ranks)
    assert sum(len(stream) for stream in ranks) == sum(len(d) * n for d, n in expected.items())
    assert split_documents(ranks[0], shards.eos_id) + split_documents(ranks[1], shards.eos_id) == expected
    assert sum(len(s) for s in ranks) == shards.total_tokens


def test_targets_are_the_next_input_token(shard_dir: Path):
    stream = D.TokenStream(D.ShardSet.open(shard_dir), SEQ_LEN, seed=1)
    sequences = list(stream.sequences(epochs=1))
    flat_inputs = np.concatenate([s.inputs[: s.n_real] for s in sequences])
    flat_targets = np.concatenate([s.targets[: s.n_real] for s in sequences])
    assert np.array_equal(flat_targets[:-1], flat_inputs[1:])
    assert flat_targets[-1] == D.IGNORE_INDEX  # the epoch's last token has no successor
    last = sequences[-1]
    assert (last.targets[last.n_real :] == D.IGNORE_INDEX).all() and last.position == D.Position(1, 0, 0)


def test_shuffle_is_seeded_and_differs_between_epochs(shard_dir: Path):
    shards = D.ShardSet.open(shard_dir)
    first = epoch_stream(shards, seed=3)
    assert np.array_equal(first, epoch_stream(shards, seed=3))
    assert not np.array_equal(first, epoch_stream(shards, seed=4))
    stream = D.TokenStream(shards, SEQ_LEN, seed=3)
    second_epoch = [s for s in stream.sequences(D.Position(1, 0, 0), epochs=1)]
    second = np.concatenate([s.inputs[: s.n_real] for s in second_epoch])
    assert len(second) == len(first) and not np.array_equal(first, second)


@pytest.mark.parametrize("resume_after", [1, 7, 40])  # early, mid-unit, and across the epoch boundary
def test_resuming_from_a_saved_position_gives_the_same_batches(shard_dir: Path, resume_after: int):
    stream = D.TokenStream(D.ShardSet.open(shard_dir), SEQ_LEN, rank=1, world=2, seed=5)
    straight = list(D.batches(stream, 4, epochs=2))
    assert len(straight) > resume_after + 5
    resumed = list(D.batches(stream, 4, straight[resume_after - 1].position, epochs=2))
    tail = straight[resume_after:]
    assert len(resumed) >= len(tail)
    for a, b in zip(tail, resumed, strict=False):
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
        assert a.position == b.position


def test_held_out_split_is_disjoint_and_completes_the_training_split(shard_dir: Path):
    shards = D.ShardSet.open(shard_dir)
    train = split_documents(epoch_stream(shards, eval_fraction=0.2), shards.eos_id)
    held_out = split_documents(epoch_stream(shards, split="eval", eval_fraction=0.2), shards.eos_id)
    assert train and held_out and not set(train) & set(held_out)
    assert train + held_out == all_documents(shards)


def test_document_ids_put_each_eos_with_its_document():
    inputs = np.array([[5, 6, 0, 7, 0, 0, 8]])
    assert D.document_ids(inputs, eos_id=0).tolist() == [[0, 0, 0, 1, 1, 2, 3]]


def test_prefetcher_yields_everything_in_order_and_reraises_errors():
    assert list(D.Prefetcher(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("broken shard")

    prefetcher = D.Prefetcher(failing())
    assert next(prefetcher) == 1
    with pytest.raises(ValueError, match="broken shard"):
        next(prefetcher)


def test_a_folder_without_a_manifest_is_refused_with_its_path(tmp_path: Path):
    with pytest.raises(CurateError, match=str(tmp_path)):
        D.ShardSet.open(tmp_path)


def test_an_unknown_dataset_version_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    with pytest.raises(CurateError, match="nosuch@main"):
        D.ShardSet.open("nosuch@main")


def test_more_ranks_than_row_groups_share_the_groups_documents_exactly_once(
    tmp_path: Path, jsonl_files: tuple[Path, ...]
):
    shards = D.ShardSet.open(
        write_sample_shards(list(jsonl_files), tmp_path, n_shards=1, row_group_bytes=1 << 30)
    )
    assert len(shards.units) == 1  # like a small demo run: one shard of one row group
    world = 3
    ranks = [epoch_stream(shards, rank=rank, world=world, seed=2) for rank in range(world)]
    assert all(len(stream) > 0 for stream in ranks)
    seen = sum((split_documents(stream, shards.eos_id) for stream in ranks), Counter())
    assert seen == all_documents(shards)


def test_an_endless_stream_with_no_tokens_is_refused(shard_dir: Path):
    stream = D.TokenStream(D.ShardSet.open(shard_dir), SEQ_LEN, split="eval", eval_fraction=1e-9)
    assert list(stream.sequences(epochs=1)) == []  # a finite pass may be empty (no eval documents)
    with pytest.raises(CurateError, match="no eval tokens"):
        next(stream.sequences())
