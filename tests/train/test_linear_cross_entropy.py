"""The chunked linear + cross-entropy (curate.train.model.LinearCrossEntropy) is the plain loss: same value
and gradients, and the same loss curve when the trainer uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
import torch.nn.functional as F  # noqa: E402

from curate.train.model import IGNORE_INDEX, LinearCrossEntropy  # noqa: E402
from curate.train.trainer import TrainConfig, train  # noqa: E402


def plain(hidden, weight, targets):
    return F.cross_entropy((hidden @ weight.T).float(), targets, ignore_index=IGNORE_INDEX)


def test_value_and_gradients_equal_the_plain_loss_across_chunks(monkeypatch, one_thread):
    monkeypatch.setattr(LinearCrossEntropy, "CHUNK_ROWS", 37)  # chunks that do not divide the rows
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(200, 32, generator=generator, requires_grad=True)
    weight = torch.randn(509, 32, generator=generator, requires_grad=True)
    targets = torch.randint(0, 509, (200,), generator=generator)
    targets[::7] = IGNORE_INDEX
    expected = plain(hidden, weight, targets)
    expected_grads = torch.autograd.grad(expected * 3, (hidden, weight))
    found = LinearCrossEntropy.apply(hidden, weight, targets)
    found_grads = torch.autograd.grad(found * 3, (hidden, weight))
    assert found.item() == pytest.approx(expected.item(), rel=1e-6)
    for a, b in zip(found_grads, expected_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_under_bf16_autocast_the_loss_is_the_plain_one(one_thread):
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(64, 16, generator=generator)
    weight = torch.randn(100, 16, generator=generator)
    targets = torch.randint(0, 100, (64,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert LinearCrossEntropy.apply(hidden, weight, targets).item() == pytest.approx(
            plain(hidden, weight, targets).item(), rel=1e-6
        )


def test_the_loss_curve_is_the_plain_losss(shard_dir: Path, tmp_path: Path, monkeypatch, one_thread):
    def curve(out: Path) -> list[float]:
        config = TrainConfig(data=str(shard_dir), preset="tiny", steps=8, device="cpu", output=str(out),
                             batch_size=2, seq_len=64, log_every=1, eval_every=0, quiet=True)  # fmt: skip
        train(config)
        import json

        return [json.loads(line)["loss"] for line in (out / "train.jsonl").read_text().splitlines()]

    fused = curve(tmp_path / "fused")
    monkeypatch.setattr(LinearCrossEntropy, "apply", staticmethod(plain))
    reference = curve(tmp_path / "plain")
    assert len(fused) == len(reference) == 8
    assert fused == pytest.approx(reference, abs=2e-4)
