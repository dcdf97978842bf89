"""Training end to end on CPU: loss falls, resume is exact, the CLI writes its log and refuses mistakes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from curate.cli import main

torch = pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
from curate.train import trainer as trainer_module  # noqa: E402 (needs torch)
from curate.train.trainer import Interval, TrainConfig, lr_factor, train  # noqa: E402

# The tiny preset at a CPU-test scale: 4 x 64 tokens a step on a 512-token vocabulary.
SMALL = {
    "preset": "tiny",
    "batch_size": 4,
    "seq_len": 64,
    "device": "cpu",
    "quiet": True,
    "eval_fraction": 0.1,
}


def records(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "train.jsonl").read_text().splitlines()]


def test_the_tiny_preset_learns_the_shards(shard_dir: Path, tmp_path: Path, one_thread):
    summary = train(
        TrainConfig(str(shard_dir), steps=150, output=str(tmp_path), log_every=1, eval_every=75, **SMALL)
    )
    log = records(tmp_path)
    first, last = log[0]["loss"], sum(r["loss"] for r in log[-20:]) / 20
    assert abs(first - math.log(512)) < 0.3  # starts at a uniform guess over the vocabulary
    assert last < first - 1.0
    evals = [r["eval_loss"] for r in log if "eval_loss" in r]
    assert len(evals) == 2 and evals[1] < evals[0] < math.log(512) - 0.5
    assert summary["eval_ppl"] == pytest.approx(math.exp(evals[1]))
    assert all({"step", "loss", "lr", "tokens_per_s", "grad_norm"} <= r.keys() for r in log)


def test_n_steps_then_resume_for_n_more_equals_2n_straight(shard_dir: Path, tmp_path: Path, one_thread):
    options = dict(SMALL, steps=24, log_every=1, eval_every=0, grad_accum=2, warmup_steps=4)
    straight = train(TrainConfig(str(shard_dir), output=str(tmp_path / "straight"), **options))
    # The same 24-step schedule, stopped after 12 (as if preempted) and continued from the checkpoint.
    train(TrainConfig(str(shard_dir), output=str(tmp_path / "resumed"), stop_at=12, **options))
    resumed = train(TrainConfig(str(shard_dir), output=str(tmp_path / "resumed"), resume=True, **options))
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5, abs=1e-6)
    a, b = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["step"] for r in b] == list(range(1, 25))
    assert [r["position"] for r in a] == [r["position"] for r in b]  # the very same batches
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5, abs=1e-6)


def test_lr_warms_up_then_decays_to_the_floor():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_cli_trains_writes_the_log_and_refuses_to_overwrite(shard_dir: Path, tmp_path: Path, one_thread):
    out = tmp_path / "run"
    args = ["train", "--data", str(shard_dir), "--preset", "tiny", "--steps", "3", "--device", "cpu"]
    args += ["--output", str(out), "--batch-size", "2", "--seq-len", "32", "--log-every", "1", "--quiet"]
    assert main(args) == 0
    assert [r["step"] for r in records(out)] == [1, 2, 3]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000003.pt"
    assert main(args) == 2  # checkpoints exist and --resume was not given
    assert main([*args[:6], "5", *args[7:], "--resume"]) == 0
    assert [r["step"] for r in records(out)] == [1, 2, 3, 4, 5]


def test_resume_refuses_a_checkpoint_of_another_model_shape(
    shard_dir: Path, tmp_path: Path, capsys, one_thread
):
    args = ["train", "--data", str(shard_dir), "--steps", "2", "--device", "cpu", "--batch-size", "2"]
    args += ["--output", str(tmp_path), "--quiet", "--eval-every", "0", "--seq-len"]
    assert main([*args, "32"]) == 0
    assert main([*args, "16", "--resume"]) == 2
    assert "model shape differs" in capsys.readouterr().err


def test_throughput_leaves_out_the_time_spent_saving_checkpoints(monkeypatch):
    clock = iter([0.0, 10.0, 25.0, 30.0])  # start; save begins; save ends; log
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: next(clock))
    interval = Interval()
    with interval.paused():
        pass
    assert interval.seconds() == 15.0


def test_cli_names_a_dataset_version_it_cannot_find(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CURATE_STORE", str(tmp_path / "store"))
    assert main(["train", "--data", "web@v9", "--output", str(tmp_path / "out")]) == 2
    assert "web@v9" in capsys.readouterr().err


def test_the_gpu_defaults_bf16_compile_and_checkpointing_train_on_cpu(
    shard_dir: Path, tmp_path: Path, one_thread
):
    """The CUDA path's settings (bf16 autocast over fp32 weights, torch.compile, activation checkpointing,
    the document mask) run through the same training loop on CPU: the first loss matches fp32 eager
    within bf16's precision and the loss falls. No GPU in CI, so this is how those code paths are held."""
    options = dict(SMALL, steps=40, log_every=1, eval_every=0, warmup_steps=4)
    eager = train(
        TrainConfig(str(shard_dir), output=str(tmp_path / "eager"), dtype="fp32", compile=False, **options)
    )
    gpu_like = train(
        TrainConfig(
            str(shard_dir),
            output=str(tmp_path / "gpu-like"),
            dtype="bf16",
            compile=True,
            activation_checkpointing=True,
            doc_mask=True,
            **options,
        )
    )
    a, b = records(tmp_path / "eager"), records(tmp_path / "gpu-like")
    assert [r["position"] for r in a] == [r["position"] for r in b]  # the same batches
    assert b[0]["loss"] == pytest.approx(a[0]["loss"], rel=0.02)
    assert math.isfinite(gpu_like["loss"]) and gpu_like["loss"] < b[0]["loss"] - 0.5
    assert gpu_like["loss"] == pytest.approx(eager["loss"], rel=0.1)
    state = torch.load(tmp_path / "gpu-like" / "checkpoints" / f"step-{40:08d}.pt", weights_only=False)
    assert all(t.dtype == torch.float32 for t in state["model"].values())  # fp32 master weights
