"""Small real shard sets for the trainer's tests: the shared CC sample, tokenized, in the real format.

torch is the optional `train` extra: without it the test modules here skip (each asks for torch with
`pytest.importorskip`), except in CI, which installs `.[train]`; there a missing torch fails the run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if os.environ.get("CI") and importlib.util.find_spec("torch") is None:
    raise pytest.UsageError(
        "tests/train: CI installs the train extra (pip install -e '.[train]'); torch is missing"
    )


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory: pytest.TempPathFactory, jsonl_files: tuple[Path, ...]) -> Path:
    """20 real web documents (~75k tokens) under a 512-token BPE trained on them; ~20 row groups."""
    from curate.train.sample import write_sample_shards

    out = tmp_path_factory.mktemp("shards")
    return write_sample_shards(list(jsonl_files), out, n_shards=3, row_group_bytes=4096, vocab_size=512)


@pytest.fixture
def one_thread():
    """The CI box's cores are shared: one torch thread is faster there and keeps results bit-stable."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(previous)
