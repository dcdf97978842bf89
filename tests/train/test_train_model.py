"""The GPT: causal, document masking isolates packed documents, and the FLOPs formula counts its weights."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from curate.train.flops import flops_per_token, matmul_params, mfu, peak_flops
from curate.train.presets import PRESETS, ModelConfig, padded_vocab

torch = pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
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


def counted_flops_per_token(config: ModelConfig, device: str = "meta") -> float:
    """Training FLOPs per token as torch counts them in one forward and backward of the real model.

    FlopCounterMode adds up the FLOPs of every matmul the model dispatches (its own per-op formulas,
    nothing from flops.py). SDPA's math backend expresses attention as the matmuls it counts; the fused
    CPU kernel has no formula. On the meta device nothing is computed, so GPT-2 small costs no time.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    with torch.device(device):
        model = GPT(config)
        idx = torch.randint(0, config.vocab_size, (batch, config.seq_len))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx, targets=idx).backward()
    return counter.get_total_flops() / (batch * config.seq_len)


@pytest.mark.parametrize("name", ["tiny", "gpt2-small"])
def test_the_flops_formula_counts_exactly_the_models_matmul_weights(name: str):
    config = replace(PRESETS[name].model, vocab_size=padded_vocab(50257))
    with torch.device("meta"):
        model = GPT(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert matmul_params(config) == linear


@pytest.mark.parametrize(
    "config",
    [
        replace(PRESETS["tiny"].model, vocab_size=padded_vocab(50257)),
        replace(PRESETS["gpt2-small"].model, vocab_size=padded_vocab(50257)),
        replace(CONFIG, tie_embeddings=False, mlp_hidden=96),
    ],
    ids=["tiny", "gpt2-small", "untied"],
)
def test_flops_per_token_equals_what_torch_counts_in_a_forward_and_backward(config: ModelConfig):
    assert flops_per_token(config) == counted_flops_per_token(config)


def test_the_count_is_the_same_computed_for_real_on_cpu(one_thread):
    """The meta device's count is not an artefact: the CPU run of the same model gives the same FLOPs."""
    assert counted_flops_per_token(CONFIG, "cpu") == counted_flops_per_token(CONFIG, "meta")


def test_gpt2_small_size_and_mfu_against_the_dense_h100_peak():
    config = replace(PRESETS["gpt2-small"].model, vocab_size=padded_vocab(50257))
    with torch.device("meta"):
        assert 120e6 < GPT(config).num_params() < 130e6  # GPT-2 small is 124M
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12  # dense bf16, never the 1979 sparse figure
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("cpu") is None and mfu(1e6, config, None) is None
    # GPT-2 small at 400k tokens/s on an H100 SXM: ~0.85 GFLOP per token (as counted), so ~34% MFU.
    counted = counted_flops_per_token(config)
    assert 0.8e9 < counted < 0.9e9
    assert mfu(400_000, config, 989e12) == pytest.approx(400_000 * counted / 989e12)
