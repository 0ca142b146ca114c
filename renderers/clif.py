"""CLIF: the Convolutional Local Image Function, INFD's renderer.

For every query pixel (INFD, Sec. 3.1): take the nearest field vector ``phi[k]``, its relative
coordinate ``(coord - centre_k) * (h, w)`` and the relative cell ``cell * (h, w)``, lay the
concatenation ``C + 4`` channels out on the query grid, and run a small CNN over that grid:

    conv3x3(C+4 -> D); num_blocks x [x + conv(act(norm(conv(act(norm(x))))))]; conv3x3(act(norm(x)) -> 3)

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
from .gather import nearest_lookup, relative_cell


@dataclass
class CLIFConfig:
    field_channels: int = 128
    hidden: int = 256
    num_blocks: int = 2
    norm: Literal["none", "layer"] = "none"
    out_channels: int = 3


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
        self.conv_in = nn.Conv2d(config.field_channels + 4, D, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(D, config.norm) for _ in range(config.num_blocks))
        self.norm_out = _norm(config.norm, D)
        self.conv_out = nn.Conv2d(D, config.out_channels, 3, padding=1)
        self.radius = 2 * config.num_blocks + 2  # one pixel per 3x3 conv

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the final layer (used by the adaptive GAN weight)."""
        return self.conv_out.weight

    def query_features(self, phi, coord, cell) -> torch.Tensor:
        """The CNN input ``(B, C + 4, H, W)``: ``[phi[k], rel coord, rel cell]`` per query, channels_last in memory."""
        B, _, h, w = phi.shape
        feat, rel = nearest_lookup(phi, as_grid(coord))  # (B, H, W, C), (B, H, W, 2)
        rel_cell = relative_cell(cell.to(rel.dtype), rel.shape[:3], h, w)
        x = torch.cat([feat, rel.to(feat.dtype), rel_cell.to(feat.dtype)], dim=-1)  # (B, H, W, C + 4)
        return x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last

    def forward(self, phi, coord, cell):
        """``rgb (B, 3, H, W)``: the CNN over the query features (Sec. 3.1), differentiable.

        ``renderers.fast.FastCLIF`` computes the same function with less work, for inference.
        """
        x = self.conv_in(self.query_features(phi, coord, cell))  # (B, D, H, W)
        for block in self.blocks:
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
