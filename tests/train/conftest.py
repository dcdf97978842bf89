"""Small real shard sets for the trainer's tests: the shared CC sample, tokenized, in the real format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import shared_path


def require_torch():
    """torch is the optional `train` extra: skip without it, except in CI, which installs `.[train]`."""
    if os.environ.get("CI"):
        import torch

        return torch
    return pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 real web documents (~75k tokens) under a 512-token BPE trained on them; ~20 row groups."""
    from curate.train.sample import write_sample_shards

    jsonl = sorted(shared_path("jsonl").glob("*.jsonl.gz"))
    out = tmp_path_factory.mktemp("shards")
    return write_sample_shards(jsonl, out, n_shards=3, row_group_bytes=4096, vocab_size=512)


@pytest.fixture
def one_thread():
    """The CI box's cores are shared: one torch thread is faster there and keeps results bit-stable."""
    torch = require_torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(previous)
