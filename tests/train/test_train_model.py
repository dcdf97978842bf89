"""The GPT: causal, document masking isolates packed documents, and the FLOPs formula counts its weights."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from curate.train.flops import flops_per_token, matmul_params, mfu, peak_flops
from curate.train.presets import PRESETS, ModelConfig, padded_vocab
from tests.train.conftest import require_torch

torch = require_torch()
from curate.train.model import GPT  # noqa: E402 (needs torch)

CONFIG = ModelConfig(n_layer=2, n_head=4, d_model=64, seq_len=32, vocab_size=128)


@pytest.fixture
def model(one_thread) -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


def test_later_tokens_do_not_change_earlier_logits(model: GPT):
    idx = torch.randint(0, 128, (1, 32))
    changed = idx.clone()
    changed[0, 20:] = (changed[0, 20:] + 1) % 128
    with torch.no_grad():
        assert torch.allclose(model(idx)[0, :20], model(changed)[0, :20], atol=1e-5)
        assert not torch.allclose(model(idx)[0, 20:], model(changed)[0, 20:], atol=1e-3)


def test_document_mask_makes_a_packed_document_behave_as_if_alone(model: GPT):
    """RoPE is relative, so with the mask a second document's logits equal those of it on its own."""
    first, second = torch.randint(1, 128, (1, 12)), torch.randint(1, 128, (1, 20))
    packed = torch.cat([first, second], dim=1)
    doc_ids = torch.tensor([[0] * 12 + [1] * 20])
    with torch.no_grad():
        alone = model(second)[0]
        masked = model(packed, doc_ids=doc_ids)[0, 12:]
        unmasked = model(packed)[0, 12:]
    assert torch.allclose(masked, alone, atol=1e-4)
    assert not torch.allclose(unmasked, alone, atol=1e-3)


def test_initial_loss_is_that_of_a_uniform_guess(model: GPT):
    idx, targets = torch.randint(0, 128, (2, 4, 32))
    with torch.no_grad():
        loss = model(idx, targets=targets)
    assert abs(loss.item() - math.log(128)) < 0.1


def test_tied_embeddings_share_one_matrix_and_untied_do_not():
    tied, untied = GPT(CONFIG), GPT(replace(CONFIG, tie_embeddings=False))
    assert tied.head.weight is tied.embed.weight
    assert untied.num_params() - tied.num_params() == CONFIG.vocab_size * CONFIG.d_model


@pytest.mark.parametrize("name", ["tiny", "gpt2-small"])
def test_the_flops_formula_counts_exactly_the_models_matmul_weights(name: str):
    config = replace(PRESETS[name].model, vocab_size=padded_vocab(50257))
    with torch.device("meta"):
        model = GPT(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert matmul_params(config) == linear
    attention = 12 * config.n_layer * config.n_head * config.head_dim * config.seq_len
    assert flops_per_token(config) == 6 * linear + attention


def test_gpt2_small_size_and_mfu_against_the_dense_h100_peak():
    config = replace(PRESETS["gpt2-small"].model, vocab_size=padded_vocab(50257))
    with torch.device("meta"):
        assert 120e6 < GPT(config).num_params() < 130e6  # GPT-2 small is 124M
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12  # dense bf16, never the 1979 sparse figure
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("cpu") is None and mfu(1e6, config, None) is None
    tokens_per_s = 0.45 * 989e12 / flops_per_token(config)
    assert mfu(tokens_per_s, config, 989e12) == pytest.approx(0.45)
