"""A GPT-style decoder in the spirit of nanoGPT, with the LLaMA-era parts.

Token embedding -> L x [RMSNorm -> causal self-attention with RoPE -> residual, RMSNorm -> SwiGLU -> residual]
-> RMSNorm -> output head (optionally tied to the embedding). Attention goes through
`scaled_dot_product_attention`, which picks FlashAttention kernels on GPU when no explicit mask is given;
masking attention across packed documents passes a block-diagonal mask instead (memory-efficient kernel).

Shapes in comments: B batch, T sequence length, C model width (d_model), H heads, D head size (C = H * D),
F the MLP's hidden width, V vocabulary.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from curate.train.presets import ModelConfig

IGNORE_INDEX = -100  # targets with this id (padding) add nothing to the loss


def rope_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE's rotation angles, (seq_len, head_dim // 2), in float32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (D/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + D/2]) of each head (the GPT-NeoX/LLaMA half-split layout).

    x: (B, H, T, D); cos, sin: (T, D/2), broadcast over batch and heads.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (B, H, T, D/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, T, D)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)  # (..., C), normalised over C


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        batch, length, width = x.shape  # (B, T, C)
        qkv = self.qkv(x).view(batch, length, 3, self.n_head, self.head_dim)  # (B, T, 3C) -> (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, D): q, k, v are (B, H, T, D) each
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # mask (B, 1, T, T)
        y = y.transpose(1, 2).reshape(batch, length, width)  # (B, T, H, D) -> (B, T, C): heads side by side
        return self.proj(y)  # (B, T, C)


class SwiGLU(nn.Module):
    """Shazeer (2020): silu(x W_gate) * (x W_up), then W_down; gate and up share one matmul."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.hidden, bias=False)
        self.down = nn.Linear(config.hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, C) -> (B, T, 2F) -> (B, T, F) each
        return self.down(F.silu(gate) * up)  # (B, T, F) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)  # (B, T, C)
        return x + self.mlp(self.mlp_norm(x))  # (B, T, C)


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) boolean: a token attends to earlier tokens of its own document only."""
    length = doc_ids.shape[1]  # doc_ids: (B, T)
    causal = torch.ones(length, length, dtype=torch.bool, device=doc_ids.device).tril()  # (T, T)
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, 1) == (B, 1, T) -> (B, T, T)
    return (same_doc & causal)[:, None]  # (B, 1, T, T): one mask for every head


class GPT(nn.Module):
    rope_cos: torch.Tensor  # (seq_len, D/2), buffers registered in __init__
    rope_sin: torch.Tensor

    def __init__(self, config: ModelConfig, activation_checkpointing: bool = False):
        super().__init__()
        self.config = config
        self.activation_checkpointing = activation_checkpointing
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        cos, sin = rope_tables(config.seq_len, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's init: N(0, 0.02), residual output projections scaled by 1/sqrt(2L)."""
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(param)
            elif name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(param, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, doc_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V), or the mean cross-entropy over non-ignored targets when targets are given."""
        length = idx.shape[1]  # idx, targets, doc_ids: (B, T)
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]  # (T, D/2)
        mask = document_mask(doc_ids) if doc_ids is not None else None  # (B, 1, T, T)
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask)  # (B, T, C)
        x = self.norm(x)  # (B, T, C)
        if targets is None:
            return self.head(x)  # logits (B, T, V)
        # The mean cross-entropy over all B * T positions, without (B*T, V) logits in fp32 (see below).
        return LinearCrossEntropy.apply(x.reshape(-1, x.shape[-1]), self.head.weight, targets.reshape(-1))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are one Parameter, counted once


class LinearCrossEntropy(torch.autograd.Function):
    """mean(cross_entropy(h @ W.T, targets)) and its gradients, a chunk of rows at a time.

    The plain form materialises the logits (B*T, V) in the compute dtype, again in fp32 for a stable
    softmax, and their fp32 gradient in backward: for GPT-2 small at 16 x 1024 tokens per micro-batch
    that is 3.3 GB per fp32 copy of a 50k vocabulary, written and read several times, the largest
    activation of the model and pure memory traffic. Here each chunk's logits exist only while its loss
    and its gradients (dh = dlogits @ W, dW += dlogits.T @ h) are computed, in the forward pass: the same
    three matmuls as autograd would run, no recomputation, and fp32 only for one chunk (Liger-Kernel's
    fused linear cross-entropy does the same). Backward only scales the stored gradients. The result equals
    F.cross_entropy(h @ W.T, targets, ignore_index=IGNORE_INDEX) up to summation order (tested).
    """

    CHUNK_ROWS = 4096  # 4096 x 50,304 fp32 logits: 0.8 GB at most, whatever the micro-batch

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        device = hidden.device.type
        autocast = device in ("cuda", "cpu") and torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device) if autocast else hidden.dtype
        # the matmuls below run in `dtype` as autocast would, their fp32 parts stay fp32
        with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
            h, w = hidden.to(dtype), weight.to(dtype)  # (N, C), (V, C)
            valid = targets != IGNORE_INDEX  # (N,)
            count = valid.sum().clamp(min=1).float()
            loss = torch.zeros((), dtype=torch.float32, device=h.device)
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
            for start in range(0, h.shape[0], LinearCrossEntropy.CHUNK_ROWS):
                rows = slice(start, start + LinearCrossEntropy.CHUNK_ROWS)
                logits = (h[rows] @ w.T).float()  # (n, V), fp32 for this chunk only
                keep = valid[rows]
                target = targets[rows].clamp(min=0)
                lse = torch.logsumexp(logits, dim=-1)  # (n,)
                picked = logits.gather(1, target[:, None]).squeeze(1)
                loss += ((lse - picked) * keep).sum()
                grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                grad[torch.arange(len(target), device=h.device), target] -= 1
                grad = (grad * (keep[:, None] / count)).to(dtype)  # d(mean loss)/d(logits)
                grad_h[rows] = grad @ w
                grad_w += (grad.T @ h[rows]).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss / count

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        grad_h, grad_w = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.dtypes
        return (grad_h * grad_loss).to(hidden_dtype), (grad_w * grad_loss).to(weight_dtype), None
