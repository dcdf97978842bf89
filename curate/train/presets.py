"""Model sizes and training defaults, by name: from a CPU-test model to GPT-2 small/medium/large."""

from __future__ import annotations

from dataclasses import dataclass, replace

from curate.core.errors import CurateError


@dataclass(frozen=True)
class ModelConfig:
    """A decoder-only transformer's shape. `vocab_size` comes from the dataset's tokenizer at train time."""

    n_layer: int
    n_head: int
    d_model: int
    seq_len: int
    vocab_size: int = 50304
    mlp_hidden: int = 0  # 0: SwiGLU's 2/3 * 4d, rounded up to a multiple of 64 (LLaMA's choice)
    tie_embeddings: bool = True
    rope_base: float = 10000.0  # RoFormer (Su et al., 2021)
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden(self) -> int:
        if self.mlp_hidden:
            return self.mlp_hidden
        return -(-(8 * self.d_model // 3) // 64) * 64


@dataclass(frozen=True)
class Preset:
    """A model plus the optimisation defaults that suit its size (all overridable on the command line)."""

    model: ModelConfig
    batch_size: int  # sequences per micro-batch per rank
    grad_accum: int
    lr: float
    warmup_steps: int
    weight_decay: float = 0.1  # GPT-3 / nanoGPT
    min_lr_ratio: float = 0.1  # cosine decays to 10% of peak (Chinchilla, Hoffmann et al., 2022)


PRESETS: dict[str, Preset] = {
    # ~6.6M parameters (mostly the 50k-token embedding): seconds per hundred steps on a laptop CPU.
    "tiny": Preset(ModelConfig(n_layer=2, n_head=4, d_model=128, seq_len=128), 8, 1, 3e-3, 20),
    # The CPU ablation proxy (`curate ablate --preset cpu`): with a 4k-token vocabulary (see
    # docs/evaluation.md) the embedding no longer dominates, so ~2M tokens train in minutes on 2 cores.
    "cpu-proxy": Preset(ModelConfig(n_layer=2, n_head=4, d_model=96, seq_len=128), 32, 1, 3e-3, 30),
    "small": Preset(ModelConfig(n_layer=6, n_head=6, d_model=384, seq_len=512), 16, 1, 1e-3, 100),
    # GPT-2 shapes (Radford et al., 2019) with this architecture (RoPE, RMSNorm, SwiGLU); GPT-3's learning
    # rates for those sizes (Brown et al., 2020, table 2.1).
    "gpt2-small": Preset(ModelConfig(n_layer=12, n_head=12, d_model=768, seq_len=1024), 16, 4, 6e-4, 700),
    "gpt2-medium": Preset(ModelConfig(n_layer=24, n_head=16, d_model=1024, seq_len=1024), 8, 8, 3e-4, 700),
    "gpt2-large": Preset(ModelConfig(n_layer=36, n_head=20, d_model=1280, seq_len=1024), 4, 16, 2.5e-4, 700),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise CurateError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """Round the embedding up so the output matmul tiles evenly on tensor cores (nanoGPT's 50257 -> 50304)."""
    return -(-vocab_size // multiple) * multiple


def with_vocab(config: ModelConfig, vocab_size: int) -> ModelConfig:
    return replace(config, vocab_size=padded_vocab(vocab_size))
