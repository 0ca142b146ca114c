"""Token attention layers shared by the diffusion backbones (UNet attention blocks and U-ViT).

All work on token sequences ``(B, N, D)`` and use ``F.scaled_dot_product_attention`` (fused kernels
on GPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of ``x`` over itself, or over ``context`` (cross-attention).

    ``x`` (B, N, dim), ``context`` (B, M, context_dim), ``context_mask`` (B, M) bool (True = attend)
    -> (B, N, dim).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, qkv_bias: bool = False):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible into {num_heads} heads")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(self.to_kv(source), "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        mask = None if context_mask is None else context_mask.bool()[:, None, None, :]  # (B, 1, 1, M)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, N, d)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Sequential):
    """``Linear(dim, ratio * dim) -> GELU -> Dropout -> Linear(ratio * dim, dim)`` on ``(B, N, dim)``."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        hidden = int(dim * mlp_ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: self-attention, optional cross-attention, MLP; all residual.

    ``x`` (B, N, dim) [, ``context`` (B, M, context_dim), ``context_mask`` (B, M)] -> (B, N, dim).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, context_dim: int | None = None,
                 qkv_bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm_cross = nn.LayerNorm(dim) if context_dim else None
        self.cross_attn = Attention(dim, num_heads, context_dim, qkv_bias) if context_dim else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("this block uses cross-attention: a context (B, M, D) is required")
            x = x + self.cross_attn(self.norm_cross(x), context, context_mask)
        return x + self.mlp(self.norm2(x))
