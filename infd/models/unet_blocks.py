"""Layers of the diffusion UNet (ADM / LDM family): residual blocks with FiLM from the time embedding,
spatial self-attention, a spatial transformer with cross-attention, resampling, and a stage container.

Residual branches end in a zero-initialised layer (ADM), so every block starts as the identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import Attention, TransformerBlock
from .conditioning import Conditions


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``x + conv(drop(silu(FiLM(norm(conv(silu(norm(x))))))))``; ``x`` (B, C_in, H, W), ``emb`` (B, E).

    With ``scale_shift_norm`` the time embedding gives ``(scale, shift)``, applied as
    ``norm(h) * (1 + scale) + shift`` (ADM Sec. 3, "adaptive group normalisation"); otherwise it is
    added before the norm (DDPM).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float,
                 scale_shift_norm: bool, groups: int):
        super().__init__()
        self.scale_shift_norm = scale_shift_norm
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels if scale_shift_norm else out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        e = rearrange(self.emb_proj(F.silu(emb)), "b c -> b c 1 1").to(h.dtype)
        if self.scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


class SpatialSelfAttention(nn.Module):
    """ADM attention block: ``x + proj(MHA(norm(x)))`` over all ``H W`` positions of ``(B, C, H, W)``."""

    def __init__(self, channels: int, num_heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = Attention(channels, num_heads, qkv_bias=True)
        zero_init(self.attention.proj)

    def forward(self, x: torch.Tensor, cond: Conditions) -> torch.Tensor:
        H, W = x.shape[-2:]
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")
        return x + rearrange(self.attention(tokens), "b (h w) c -> b c h w", h=H, w=W)


class SpatialTransformer(nn.Module):
    """LDM spatial transformer: norm, 1x1 in, transformer blocks with cross-attention to the context,
    zero-initialised 1x1 out, residual. ``x`` (B, C, H, W), context (B, M, context_dim)."""

    def __init__(self, channels: int, num_heads: int, context_dim: int, depth: int, dropout: float, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.blocks = nn.ModuleList(TransformerBlock(channels, num_heads, 4.0, context_dim, dropout=dropout)
                                    for _ in range(depth))
        self.proj_out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, cond: Conditions) -> torch.Tensor:
        H, W = x.shape[-2:]
        h = rearrange(self.proj_in(self.norm(x)), "b c h w -> b (h w) c")
        for block in self.blocks:
            h = block(h, cond.context, cond.context_mask)
        return x + self.proj_out(rearrange(h, "b (h w) c -> b c h w", h=H, w=W))


class Downsample(nn.Module):
    """Stride-2 3x3 conv: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2x then 3x3 conv: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.ModuleList):
    """A sequence of UNet layers; each gets what it needs (time embedding, conditions, or nothing)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: Conditions) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, (SpatialSelfAttention, SpatialTransformer)):
                x = layer(x, cond)
            else:
                x = layer(x)
        return x
