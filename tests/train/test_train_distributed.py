"""Two CPU processes under torchrun (gloo): DDP and FSDP2 agree, and FSDP2 resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")


def torchrun(shard_dir: Path, output: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "curate", "train", "--data", str(shard_dir), "--device", "cpu", "--output", str(output)]
    command += ["--steps", "6", "--batch-size", "2", "--seq-len", "32", "--log-every", "1", "--quiet"]
    command += ["--eval-fraction", "0.1", "--eval-every", "6", "--eval-batches", "2", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow  # three torchrun launches of two processes each
def test_ddp_and_fsdp_with_a_resume_give_the_same_training(shard_dir: Path, tmp_path: Path):
    torchrun(shard_dir, tmp_path / "ddp", "--parallel", "ddp")
    torchrun(shard_dir, tmp_path / "fsdp", "--parallel", "fsdp", "--stop-at", "3")
    torchrun(shard_dir, tmp_path / "fsdp", "--parallel", "fsdp", "--resume")
    ddp, fsdp = (
        [json.loads(line) for line in (tmp_path / name / "train.jsonl").open()] for name in ("ddp", "fsdp")
    )
    assert [r["step"] for r in fsdp] == list(range(1, 7))
    assert [r["position"] for r in ddp] == [r["position"] for r in fsdp]
    assert [r["loss"] for r in fsdp] == pytest.approx([r["loss"] for r in ddp], rel=1e-4)
    assert fsdp[-1]["eval_loss"] == pytest.approx(ddp[-1]["eval_loss"], rel=1e-4)
    assert ddp[-1]["tokens"] == 6 * 2 * 2 * 32  # steps x ranks x batch x sequence length
