"""LIIF (Chen et al., 2021): a per-point MLP with local ensemble, kept as a baseline renderer.

Each query decodes ``MLP([unfold3x3(phi)[k], (coord - centre_k) * (h, w), cell * (h, w)])`` for the
four field cells ``k`` around it and blends them, each weighted by the area of the rectangle between
the query and the *opposite* cell centre (Eq. 4 of the LIIF paper). The MLP sees one query at a time,
so ``radius = 0``: every pixel is independent of its neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .coords import as_grid
from .gather import nearest_lookup, relative_cell


@dataclass
class LIIFConfig:
    field_channels: int = 128
    hidden: tuple[int, ...] = (256, 256, 256, 256)
    feat_unfold: bool = True
    local_ensemble: bool = True
    cell_decode: bool = True
    out_channels: int = 3


class LIIF(nn.Module):
    """Renderer ``(phi (B, C, h, w), coord (B, H, W, 2) | QueryGrid, cell) -> (B, 3, H, W)``."""

    radius = 0

    def __init__(self, config: LIIFConfig):
        super().__init__()
        self.config = config
        dim = config.field_channels * (9 if config.feat_unfold else 1) + 2 + (2 if config.cell_decode else 0)
        layers = []
        for width in config.hidden:
            layers += [nn.Linear(dim, width), nn.ReLU(inplace=True)]
            dim = width
        layers.append(nn.Linear(dim, config.out_channels))
        self.mlp = nn.Sequential(*layers)

    @property
    def last_layer(self) -> torch.Tensor:
        return self.mlp[-1].weight

    def forward(self, phi, coord, cell):
        B, C, h, w = phi.shape
        coord = as_grid(coord)  # split a regular grid once, not in each of the four lookups
        if self.config.feat_unfold:  # each field vector carries its 3x3 neighbourhood
            phi = F.unfold(phi, 3, padding=1).view(B, C * 9, h, w)
        # Offsets of +-1/2 cell (plus a hair, as in LIIF) reach the 4 surrounding cells.
        shifts = [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)] if self.config.local_ensemble else [(0, 0)]
        preds, areas = [], []
        for dy, dx in shifts:
            offset = (dy + 1e-6 * (dy != 0), dx + 1e-6 * (dx != 0))
            feat, rel = nearest_lookup(phi, coord, offset)  # (B, H, W, C'), (B, H, W, 2)
            parts = [feat, rel.to(feat.dtype)]
            if self.config.cell_decode:
                parts.append(relative_cell(cell.to(rel.dtype), rel.shape[:3], h, w).to(feat.dtype))
            preds.append(self.mlp(torch.cat(parts, dim=-1)))  # (B, H, W, 3)
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        if len(preds) == 1:
            out = preds[0]
        else:  # each prediction is weighted by the area diagonally opposite to it
            total = sum(areas)
            out = sum(p * (a / total)[..., None] for p, a in zip(preds, reversed(areas)))
        return out.permute(0, 3, 1, 2).contiguous()
