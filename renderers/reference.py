"""The original CLIF formulation, kept only as a baseline for benchmarks and equivalence tests.

Differences from ``renderers.clif.CLIF`` (same parameters, same layer order):
- the nearest field vector is found per query point with ``grid_sample(mode="nearest")`` and the
  relative coordinates with a second lookup of a coordinate map, as the original code does;
- tensors stay in contiguous NCHW;
- ``norm="group"`` normalises with GroupNorm(32) over the whole query grid, as the original did
  (this is what makes its tiles differ from a full render).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .clif import CLIF, CLIFConfig
from .coords import dense_coord


class ReferenceCLIF(CLIF):
    def __init__(self, config: CLIFConfig, group_norm: bool = True):
        if config.lookup != "nearest":
            raise ValueError(f"the reference CLIF is the paper's nearest lookup, not {config.lookup!r}")
        super().__init__(config)
        if group_norm:
            D = config.hidden
            for block in self.blocks:
                block.norm1, block.norm2 = nn.GroupNorm(32, D), nn.GroupNorm(32, D)
            self.norm_out = nn.GroupNorm(32, D)

    def query_features(self, phi, coord, cell):
        B, C, h, w = phi.shape
        coord = dense_coord(coord)  # the original looks up every point
        grid = coord.flip(-1)  # grid_sample wants (x, y)
        feat = F.grid_sample(phi, grid, mode="nearest", align_corners=False)  # (B, C, H, W)
        centres = _field_centres(h, w, phi)  # (B, 2, h, w)
        q = F.grid_sample(centres, grid, mode="nearest", align_corners=False)  # (B, 2, H, W)
        scale = torch.tensor([h, w], device=phi.device, dtype=phi.dtype).view(1, 2, 1, 1)
        rel = (coord.permute(0, 3, 1, 2) - q) * scale
        cell = cell if cell.dim() == 4 else cell[:, None, None, :].expand(*coord.shape)
        rel_cell = cell.permute(0, 3, 1, 2) * scale
        return torch.cat([feat, rel, rel_cell], dim=1)


def _field_centres(h, w, like):
    ys = -1 + (2 * torch.arange(h, device=like.device, dtype=like.dtype) + 1) / h
    xs = -1 + (2 * torch.arange(w, device=like.device, dtype=like.dtype) + 1) / w
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), 0)
    return grid.expand(like.shape[0], 2, h, w)
