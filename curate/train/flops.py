"""Training FLOPs per token and model FLOPs utilisation (MFU).

FLOPs per token, PaLM's formula (Chowdhery et al., 2022, appendix B):

    6 * N  +  12 * L * H * Q * T

- N: parameters that take part in a matmul (every linear layer and the output head; the input embedding
  is a lookup, so it counts only when tied to the head, and then once). Each such weight costs 2 FLOPs
  per token forward (multiply + add) and 4 backward (input and weight gradients): 6N.
- 12 * L * H * Q * T: attention's QK^T and AV, L layers, H heads, head size Q, sequence length T, forward
  and backward, with no discount for the causal mask (as in PaLM).

MFU = achieved FLOP/s / peak dense bf16 FLOP/s. Activation recompute is not counted (that would be HFU).
"""

from __future__ import annotations

from curate.train.presets import ModelConfig

# Dense (not 2:4 sparse) bf16 tensor-core peaks, from the vendor data sheets.
PEAK_BF16_FLOPS: dict[str, float] = {
    "H100 PCIe": 756e12,  # NVIDIA H100 data sheet, PCIe form factor
    "H100 NVL": 835e12,  # NVIDIA H100 data sheet, NVL
    "H100": 989e12,  # NVIDIA H100 data sheet, SXM5 (1979 TFLOP/s is the sparse figure)
    "H200": 989e12,  # NVIDIA H200 data sheet, SXM (same compute as H100 SXM)
    "H800": 989e12,
    "A100": 312e12,  # NVIDIA A100 data sheet
    "L40S": 362e12,  # NVIDIA L40S data sheet
}


def matmul_params(config: ModelConfig) -> int:
    """N of the formula, computed from the shape (equals counting the model's linear weights)."""
    d, hidden = config.d_model, config.hidden
    per_layer = 4 * d * d + 3 * d * hidden  # qkv + output projection; SwiGLU gate, up and down
    return config.n_layer * per_layer + config.vocab_size * d  # + output head


def flops_per_token(config: ModelConfig) -> float:
    attention = 12 * config.n_layer * config.n_head * config.head_dim * config.seq_len
    return 6 * matmul_params(config) + attention


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a CUDA device by its name, or None when unknown (MFU is then not reported)."""
    for key, value in PEAK_BF16_FLOPS.items():  # most specific names first
        if key in device_name:
            return value
    return None


def mfu(tokens_per_s: float, config: ModelConfig, peak: float | None) -> float | None:
    return tokens_per_s * flops_per_token(config) / peak if peak else None
