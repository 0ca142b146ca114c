"""The LDM/ADM diffusion UNet on latents: ``model(x (B, C, H, W), t (B,), cond=None) -> (B, C_out, H, W)``.

Levels ``channels * channel_mult[i]``, each with ``num_res_blocks`` residual blocks (FiLM from the time
embedding), self-attention at the downsampling factors in ``attention_ds``, a stride-2 conv between
levels, a middle block (res, attention, res), and a mirrored decoder fed by skip connections. Any
``H, W`` divisible by ``2 ** (len(channel_mult) - 1)`` works.

Conditioning (``cond``, see ``infd.models.conditioning``): class labels with a learned null label
``num_classes`` (added to the time embedding), and/or a context sequence for cross-attention when
``context_dim`` is set (the attention layers become LDM spatial transformers).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..registry import register_model
from .conditioning import LabelEmbedding, broadcast_timesteps, null_label_cond, split_cond, timestep_embedding
from .unet_blocks import Downsample, ResBlock, SpatialSelfAttention, SpatialTransformer, Stage, Upsample, zero_init


@dataclass
class UNetConfig:
    """UNet backbone; defaults are the paper's FFHQ LDM-4 (64x64x3 latents, attention at 32, 16, 8)."""

    in_channels: int = 3  # latent channels in (the autoencoder's z_channels)
    out_channels: int = 3  # predicted channels (= in_channels)
    channels: int = 224  # width of the first level
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)  # width multipliers per level (len - 1 halvings)
    num_res_blocks: int = 2  # residual blocks per level
    attention_ds: tuple[int, ...] = (2, 4, 8)  # downsampling factors with self-attention (64 -> 32, 16, 8)
    mid_attention: bool = True  # self-attention in the middle block
    head_channels: int | None = 32  # channels per head; or set num_heads instead
    num_heads: int | None = None  # attention heads (instead of head_channels)
    dropout: float = 0.0  # in the residual blocks
    scale_shift_norm: bool = False  # FiLM (ADM); LDM FFHQ does not use it
    norm_groups: int = 32  # GroupNorm groups
    num_classes: int | None = None  # class-conditional; label ``num_classes`` is the null label
    context_dim: int | None = None  # cross-attention to a context (B, M, context_dim), e.g. text
    transformer_depth: int = 1  # transformer blocks per attention layer when context_dim is set

    def __post_init__(self):
        if (self.head_channels is None) == (self.num_heads is None):
            raise ValueError("set exactly one of head_channels and num_heads")
        if not self.channel_mult or self.num_res_blocks < 1 or self.channels < 1:
            raise ValueError("need channels >= 1, a non-empty channel_mult and num_res_blocks >= 1")
        widths = [self.channels] + [self.channels * m for m in self.channel_mult]
        bad = [w for w in widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"channel widths {bad} are not divisible by norm_groups={self.norm_groups}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or null, got {self.num_classes}")

    @property
    def stride(self) -> int:
        """Total downsampling factor: input sizes must be multiples of it."""
        return 2 ** (len(self.channel_mult) - 1)

    def heads(self, width: int) -> int:
        if self.num_heads is not None:
            return self.num_heads
        if width % self.head_channels:
            raise ValueError(f"width {width} is not divisible by head_channels={self.head_channels}")
        return width // self.head_channels


@register_model("unet", UNetConfig)
class UNet(nn.Module):
    """LDM/ADM UNet diffusion backbone (see the module docstring for the contract)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.channels
        self.time_embed = nn.Sequential(nn.Linear(c.channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embed = LabelEmbedding(c.num_classes, emb_dim) if c.num_classes else None

        def res(cin, cout):
            return ResBlock(cin, cout, emb_dim, c.dropout, c.scale_shift_norm, c.norm_groups)

        def attn(width):
            if c.context_dim is None:
                return SpatialSelfAttention(width, c.heads(width), c.norm_groups)
            return SpatialTransformer(width, c.heads(width), c.context_dim, c.transformer_depth, c.dropout,
                                      c.norm_groups)

        width, ds = c.channels, 1
        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(c.in_channels, width, 3, padding=1)])])
        skip_widths = [width]
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers = [res(width, c.channels * mult)]
                width = c.channels * mult
                if ds in c.attention_ds:
                    layers.append(attn(width))
                self.input_blocks.append(Stage(layers))
                skip_widths.append(width)
            if level < len(c.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(width)]))
                skip_widths.append(width)
                ds *= 2
        self.middle = Stage([res(width, width), *([attn(width)] if c.mid_attention else []), res(width, width)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [res(width + skip_widths.pop(), c.channels * mult)]
                width = c.channels * mult
                if ds in c.attention_ds:
                    layers.append(attn(width))
                if level > 0 and i == c.num_res_blocks:
                    layers.append(Upsample(width))
                    ds //= 2
                self.output_blocks.append(Stage(layers))
        self.out = nn.Sequential(nn.GroupNorm(c.norm_groups, width), nn.SiLU(),
                                 zero_init(nn.Conv2d(width, c.out_channels, 3, padding=1)))

    def null_cond(self, cond):
        """``cond`` with its labels replaced by the null label (for classifier-free guidance)."""
        return null_label_cond(cond, self.config.num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """``x`` (B, C_in, H, W), ``t`` (B,) int or float timesteps, ``cond`` -> (B, C_out, H, W)."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"UNet expects (B, {c.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % c.stride or x.shape[-1] % c.stride:
            raise ValueError(f"UNet input size {tuple(x.shape[-2:])} must be divisible by {c.stride}")
        B = x.shape[0]
        t = broadcast_timesteps(t, B, x.device)
        parts = split_cond(cond, B)
        if parts.labels is not None and self.label_embed is None:
            raise ValueError("got class labels but this UNet has num_classes=None")
        if (parts.context is None) != (c.context_dim is None):
            raise ValueError("a context (B, M, D) is required exactly when context_dim is set "
                             f"(context_dim={c.context_dim})")
        emb = self.time_embed(timestep_embedding(t, c.channels).to(self.time_embed[0].weight.dtype))  # (B, E)
        if self.label_embed is not None:
            emb = emb + self.label_embed(parts.labels, B, x.device)
        h, skips = x, []
        for stage in self.input_blocks:
            h = stage(h, emb, parts)
            skips.append(h)
        h = self.middle(h, emb, parts)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, parts)
        return self.out(h)
