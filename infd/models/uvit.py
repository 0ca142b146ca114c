"""U-ViT (Bao et al. 2023): a ViT diffusion backbone where everything is a token.

    patches (p x p) + time token + label token -> depth blocks with long skips -> LayerNorm -> Linear
    -> unpatchify -> 3x3 conv

Blocks come as ``depth // 2`` "in" blocks, one middle block and ``depth // 2`` "out" blocks; the input
of out block ``i`` is ``Linear(concat(x, skip))`` with ``skip`` the output of the mirrored in block
(U-ViT Sec. 3, "long skip connections"). Same contract as the UNet:
``model(x (B, C, H, W), t (B,), cond=None) -> (B, C_out, H, W)``, ``cond`` class labels (B,) with the null
label ``num_classes`` (see ``infd.models.conditioning``); any ``H, W`` divisible by ``patch_size``.

Position embeddings: "learned" is a 1D table for the ``input_size`` grid (row-major patches), bilinearly
resized as a 2D grid for other sizes; "sinusoidal" is a fixed 2D sin-cos embedding of any grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..registry import register_model
from .attention import TransformerBlock
from .conditioning import LabelEmbedding, broadcast_timesteps, null_label_cond, split_cond, timestep_embedding


@dataclass
class UViTConfig:
    """U-ViT backbone; defaults are the paper's small setting (depth 13, width 512) on 32x32 latents."""

    in_channels: int = 3  # latent channels in (the autoencoder's z_channels)
    out_channels: int = 3  # predicted channels (= in_channels)
    input_size: int = 32  # latent size the learned position table is laid out for
    patch_size: int = 2  # latent pixels a side per token
    dim: int = 512  # token width
    depth: int = 13  # transformer blocks (odd: in-blocks, a mid-block, out-blocks with long skips)
    num_heads: int = 8  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / dim
    qkv_bias: bool = False  # bias in the attention projections
    dropout: float = 0.0  # in attention and MLP
    num_classes: int | None = None  # class-conditional; label ``num_classes`` is the null label
    pos_embed: Literal["learned", "sinusoidal"] = "learned"
    final_conv: bool = True  # a 3x3 conv after un-patchifying (U-ViT's, smooths patch seams)

    def __post_init__(self):
        if self.depth < 1 or self.depth % 2 == 0:
            raise ValueError(f"U-ViT depth must be odd (in blocks, a middle block, out blocks), got {self.depth}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size={self.input_size} is not divisible by patch_size={self.patch_size}")
        if self.pos_embed == "sinusoidal" and self.dim % 4:
            raise ValueError(f"sinusoidal 2D position embedding needs dim divisible by 4, got {self.dim}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or null, got {self.num_classes}")

    @property
    def stride(self) -> int:
        return self.patch_size


def sincos_2d(grid_h: int, grid_w: int, dim: int, device=None) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding ``(grid_h * grid_w, dim)``: half the channels encode the row,
    half the column, each as ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (dim/4))``."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    rows = torch.arange(grid_h, dtype=torch.float32, device=device)[:, None] * omega  # (h, dim/4)
    cols = torch.arange(grid_w, dtype=torch.float32, device=device)[:, None] * omega  # (w, dim/4)
    row_emb = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None].expand(grid_h, grid_w, dim // 2)
    col_emb = torch.cat([cols.sin(), cols.cos()], dim=1)[None].expand(grid_h, grid_w, dim // 2)
    return rearrange(torch.cat([row_emb, col_emb], dim=-1), "h w d -> (h w) d")


@register_model("uvit", UViTConfig)
class UViT(nn.Module):
    """U-ViT diffusion backbone (see the module docstring for the contract)."""

    # Another input size stretches the position table over it, so a crop of a larger canvas smaller than
    # the trained size would not see its own positions (infd.diffusion.windows: shifted windows need them).
    crops_need_trained_size = True

    def __init__(self, config: UViTConfig):
        super().__init__()
        self.config = c = config
        grid = c.input_size // c.patch_size
        self.patch_embed = nn.Conv2d(c.in_channels, c.dim, c.patch_size, stride=c.patch_size)
        self.time_embed = nn.Sequential(nn.Linear(c.dim, 4 * c.dim), nn.SiLU(), nn.Linear(4 * c.dim, c.dim))
        self.label_embed = LabelEmbedding(c.num_classes, c.dim) if c.num_classes else None
        self.num_extra_tokens = 1 + (self.label_embed is not None)
        self.extra_pos = nn.Parameter(torch.zeros(1, self.num_extra_tokens, c.dim))
        self.patch_pos = nn.Parameter(torch.zeros(1, grid * grid, c.dim)) if c.pos_embed == "learned" else None

        def block():
            return TransformerBlock(c.dim, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, dropout=c.dropout)

        self.in_blocks = nn.ModuleList(block() for _ in range(c.depth // 2))
        self.mid_block = block()
        self.out_blocks = nn.ModuleList(block() for _ in range(c.depth // 2))
        self.skip_linears = nn.ModuleList(nn.Linear(2 * c.dim, c.dim) for _ in range(c.depth // 2))
        self.norm = nn.LayerNorm(c.dim)
        self.to_patches = nn.Linear(c.dim, c.patch_size ** 2 * c.out_channels)
        self.final_conv = (nn.Conv2d(c.out_channels, c.out_channels, 3, padding=1) if c.final_conv
                           else nn.Identity())
        self.apply(self._init_weights)
        for p in (self.extra_pos, self.patch_pos):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def null_cond(self, cond):
        """``cond`` with its labels replaced by the null label (for classifier-free guidance)."""
        return null_label_cond(cond, self.config.num_classes)

    def position_embedding(self, grid_h: int, grid_w: int, device) -> torch.Tensor:
        """``(1, grid_h * grid_w, dim)`` position embedding of the patch tokens."""
        c = self.config
        if self.patch_pos is None:
            return sincos_2d(grid_h, grid_w, c.dim, device)[None]
        grid = c.input_size // c.patch_size
        if (grid_h, grid_w) == (grid, grid):
            return self.patch_pos
        table = rearrange(self.patch_pos, "1 (h w) d -> 1 d h w", h=grid)
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return rearrange(table, "1 d h w -> 1 (h w) d")

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """``x`` (B, C_in, H, W), ``t`` (B,) int or float timesteps, ``cond`` labels -> (B, C_out, H, W)."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"U-ViT expects (B, {c.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % c.patch_size or x.shape[-1] % c.patch_size:
            raise ValueError(f"U-ViT input size {tuple(x.shape[-2:])} must be divisible by {c.patch_size}")
        B, gh, gw = x.shape[0], x.shape[-2] // c.patch_size, x.shape[-1] // c.patch_size
        t = broadcast_timesteps(t, B, x.device)
        parts = split_cond(cond, B)
        if parts.context is not None:
            raise ValueError("U-ViT takes class labels only, not a context")
        if parts.labels is not None and self.label_embed is None:
            raise ValueError("got class labels but this U-ViT has num_classes=None")
        patches = rearrange(self.patch_embed(x), "b d h w -> b (h w) d")  # (B, L, D)
        patches = patches + self.position_embedding(gh, gw, x.device).to(patches.dtype)
        time_token = self.time_embed(timestep_embedding(t, c.dim).to(patches.dtype))  # (B, D)
        extras = [time_token] + ([self.label_embed(parts.labels, B, x.device)] if self.label_embed is not None else [])
        extras = torch.stack(extras, dim=1) + self.extra_pos  # (B, E, D)
        h = torch.cat([extras, patches], dim=1)  # (B, E + L, D)
        skips = []
        for block in self.in_blocks:
            h = block(h)
            skips.append(h)
        h = self.mid_block(h)
        for block, skip_linear in zip(self.out_blocks, self.skip_linears):
            h = block(skip_linear(torch.cat([h, skips.pop()], dim=-1)))
        h = self.to_patches(self.norm(h))[:, self.num_extra_tokens:]  # (B, L, p*p*C_out)
        out = rearrange(h, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=gh, p1=c.patch_size, p2=c.patch_size)
        return self.final_conv(out)
