"""Render any window of a virtual image, and whole images from padded tiles.

A renderer is local: an output pixel depends only on the queries within ``renderer.radius`` pixels.
So the pixels of ``region`` come out exactly as in a full render if we render ``region`` grown by the
radius (clipped at the image border, where a full render also sees zero padding) and crop the margin.
"""
from __future__ import annotations

import torch
from torch import nn

from .coords import Region, check_size, iter_tiles, make_query_grid


def render_region(renderer: nn.Module, phi: torch.Tensor, size: tuple[int, int],
                  region: Region | None = None) -> torch.Tensor:
    """Pixels ``region`` (default: all) of the virtual ``size = (H, W)`` image rendered from ``phi``.

    Args:
        renderer: any renderer with ``.radius`` that takes a ``QueryGrid`` (CLIF, FastCLIF, LIIF, ConvHead).
        phi: field ``(B, C, h, w)``.
        size: the virtual image's ``(H, W)``; it sets the coordinates and the cell ``(2/H, 2/W)``.
        region: the window to render; must lie inside the image.

    Returns:
        ``(B, 3, region.height, region.width)``, equal to the same pixels of a full render (for CLIF,
        up to float rounding). It may be a view of a slightly larger render.
    """
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    padded = region.pad(int(renderer.radius), (H, W))
    dtype = torch.float64 if phi.dtype == torch.float64 else torch.float32  # coordinates never in half
    grid, cell = make_query_grid((H, W), padded, batch=phi.shape[0], device=phi.device, dtype=dtype)
    rgb = renderer(phi, grid, cell)  # (B, 3, padded.height, padded.width); the grid travels as its axes
    rows, cols = region.relative_to(padded).slices()
    return rgb[:, :, rows, cols]


def render_tiled(renderer: nn.Module, phi: torch.Tensor, size: tuple[int, int],
                 tile: int | tuple[int, int]) -> torch.Tensor:
    """The full ``(B, 3, H, W)`` image, rendered ``tile`` pixels at a time (each padded by the radius).

    Equal to ``render_region(renderer, phi, size)`` up to float rounding; peak memory is that of one
    padded tile plus the output.
    """
    H, W = check_size(size)
    out = None
    for region in iter_tiles((H, W), tile):
        part = render_region(renderer, phi, (H, W), region)
        if out is None:
            out = part.new_empty(part.shape[0], part.shape[1], H, W)
        rows, cols = region.slices()
        out[:, :, rows, cols] = part
    return out
