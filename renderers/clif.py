"""CLIF: the Convolutional Local Image Function, INFD's renderer.

For every query pixel (INFD, Sec. 3.1): take the nearest field vector ``phi[k]``, its relative
coordinate ``(coord - centre_k) * (h, w)`` and the relative cell ``cell * (h, w)``, lay the
concatenation ``C + 4`` channels out on the query grid, and run a small CNN over that grid:

    conv3x3(C+4 -> D); num_blocks x [x + conv(act(norm(conv(act(norm(x))))))]; conv3x3(act(norm(x)) -> 3)

With ``lookup: bilinear`` the query takes the bilinear blend of the four field vectors around it
instead and no relative coordinate (``C + 2`` channels): the CNN's input then varies continuously with
the query, so no magnification shows the field's cells as flat blocks (the relative coordinate jumps
from +1/2 to -1/2 where the nearest cell changes, and the nearest vector jumps with it).

Every layer is a 3x3 conv with zero padding, so an output pixel sees ``radius = 2 * num_blocks + 2``
query pixels on each side and nothing else. The original used GroupNorm over the whole query grid,
which makes a tile's output depend on the tile; here ``norm`` is either ``none`` or ``layer``
(LayerNorm over channels, per pixel), both strictly local, so a tiled render equals a full render.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .coords import as_grid
from .gather import bilinear_lookup, nearest_lookup, relative_cell

LOOKUPS = ("nearest", "bilinear")


@dataclass
class CLIFConfig:
    field_channels: int = 128
    hidden: int = 256
    num_blocks: int = 2
    norm: Literal["none", "layer"] = "none"
    out_channels: int = 3
    lookup: Literal["nearest", "bilinear"] = "nearest"  # nearest + relative coordinate (the paper), or bilinear

    def __post_init__(self):
        if self.lookup not in LOOKUPS:
            raise ValueError(f"lookup must be one of {', '.join(LOOKUPS)}, got {self.lookup!r}")

    @property
    def in_channels(self) -> int:
        """Channels of the CNN input: the field vector, the relative coordinate (nearest only), the cell."""
        return self.field_channels + (4 if self.lookup == "nearest" else 2)


class PixelNorm(nn.Module):
    """LayerNorm over channels at each pixel of a ``(B, C, H, W)`` map (local: no spatial statistics)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        # On a channels_last tensor this permute is a free view with contiguous channels.
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(kind: str, channels: int) -> nn.Module:
    return PixelNorm(channels) if kind == "layer" else nn.Identity()


class ResBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.norm1, self.conv1 = _norm(norm, channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = _norm(norm, channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class CLIF(nn.Module):
    """Renderer ``(phi (B, C, h, w), coord (B, H, W, 2) | QueryGrid, cell (B, 2) | (B, H, W, 2)) -> (B, 3, H, W)``."""

    def __init__(self, config: CLIFConfig):
        super().__init__()
        self.config = config
        D = config.hidden
        self.conv_in = nn.Conv2d(config.in_channels, D, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(D, config.norm) for _ in range(config.num_blocks))
        self.norm_out = _norm(config.norm, D)
        self.conv_out = nn.Conv2d(D, config.out_channels, 3, padding=1)
        self.radius = 2 * config.num_blocks + 2  # one pixel per 3x3 conv

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the final layer (used by the adaptive GAN weight)."""
        return self.conv_out.weight

    def query_features(self, phi, coord, cell) -> torch.Tensor:
        """The CNN input ``(B, in_channels, H, W)``, channels_last in memory: ``[phi[k], rel coord, rel cell]``
        per query (nearest), or ``[bilinear phi, rel cell]``."""
        B, _, h, w = phi.shape
        coord = as_grid(coord)
        if self.config.lookup == "bilinear":
            feat = bilinear_lookup(phi, coord)  # (B, H, W, C)
            parts = [feat]
        else:
            feat, rel = nearest_lookup(phi, coord)  # (B, H, W, C), (B, H, W, 2)
            parts = [feat, rel.to(feat.dtype)]
        rel_cell = relative_cell(cell.to(feat.dtype), feat.shape[:3], h, w)
        x = torch.cat(parts + [rel_cell.to(feat.dtype)], dim=-1)  # (B, H, W, in_channels)
        return x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last

    def forward(self, phi, coord, cell):
        """``rgb (B, 3, H, W)``: the CNN over the query features (Sec. 3.1), differentiable.

        ``renderers.fast.FastCLIF`` computes the same function with less work, for inference.
        """
        x = self.conv_in(self.query_features(phi, coord, cell))  # (B, D, H, W)
        for block in self.blocks:
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
