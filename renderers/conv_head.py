"""The fixed-resolution RGB head of the LDM decoder, as a baseline renderer.

It ignores ``cell``: a 3x3 conv turns the field into an RGB image at the field's own resolution
(what LDM outputs), which is then resampled at the query coordinates (bilinear or nearest), the way
a fixed-resolution decoder's output is resized to another size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .coords import dense_coord


@dataclass
class ConvHeadConfig:
    field_channels: int = 128
    out_channels: int = 3
    resample: Literal["bilinear", "nearest"] = "bilinear"


class ConvHead(nn.Module):
    """Renderer ``(phi (B, C, h, w), coord (B, H, W, 2) | QueryGrid, cell) -> (B, 3, H, W)``; ``cell`` is unused."""

    radius = 0  # each output pixel reads the field only, never neighbouring queries

    def __init__(self, config: ConvHeadConfig):
        super().__init__()
        self.config = config
        self.conv_out = nn.Conv2d(config.field_channels, config.out_channels, 3, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        return self.conv_out.weight

    def forward(self, phi, coord, cell=None):
        rgb = self.conv_out(phi)  # (B, 3, h, w) at the field's resolution
        grid = dense_coord(coord).flip(-1).to(rgb.dtype)  # grid_sample wants (x, y) per point
        return F.grid_sample(rgb, grid, mode=self.config.resample, padding_mode="border", align_corners=False)
