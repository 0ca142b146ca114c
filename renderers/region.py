"""Render any window of a virtual image exactly as in a full render.

A renderer is local: an output pixel depends only on the queries within ``renderer.radius`` pixels.
So the pixels of ``region`` come out exactly as in a full render if we render ``region`` grown by the
radius (clipped at the image border, where a full render also sees zero padding) and crop the margin.
Whole images from such padded tiles are ``infd.rendering.engine.render``'s job.
"""
from __future__ import annotations

from typing import Callable

import torch

from .coords import Region, check_size, make_query_grid


def render_region(renderer: Callable[..., torch.Tensor], phi: torch.Tensor, size: tuple[int, int],
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

