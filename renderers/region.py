"""Render any window of a virtual image exactly as in a full render.

A renderer is local: an output pixel depends only on the queries within ``renderer.radius`` pixels.
So the pixels of ``region`` come out exactly as in a full render if we render ``region`` grown by the
radius and crop the margin. At the edge of the virtual image the margin continues the image
(``border="reflect"``: queries mirrored about the edge, ``coords.reflect_index``), so a pixel near the
border sees image-like context as it does inside; ``border="zero"`` clips the margin at the edge, where
the CNN's zero padding takes over (the original behaviour, which leaves a dark frame). Whole images from
such padded tiles are ``infd.rendering.engine.render``'s job.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch

from .coords import Region, check_size, make_query_grid


BORDERS = ("reflect", "zero")
Border = Literal["reflect", "zero"]


def render_region(renderer: Callable[..., torch.Tensor], phi: torch.Tensor, size: tuple[int, int],
                  region: Region | None = None, border: Border = "reflect") -> torch.Tensor:
    """Pixels ``region`` (default: all) of the virtual ``size = (H, W)`` image rendered from ``phi``.

    Args:
        renderer: any renderer with ``.radius`` that takes a ``QueryGrid`` (CLIF, FastCLIF, LIIF, ConvHead).
        phi: field ``(B, C, h, w)``.
        size: the virtual image's ``(H, W)``; it sets the coordinates and the cell ``(2/H, 2/W)``.
        region: the window to render; must lie inside the image.
        border: what the margin holds beyond the image edge: mirrored queries (``reflect``) or nothing
            (``zero``: the margin is clipped and the CNN's zero padding shows).

    Returns:
        ``(B, 3, region.height, region.width)``, equal to the same pixels of a full render (for CLIF,
        up to float rounding). It may be a view of a slightly larger render.
    """
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r} (choose from {', '.join(BORDERS)})")
    radius = int(renderer.radius)
    dtype = torch.float64 if phi.dtype == torch.float64 else torch.float32  # coordinates never in half
    if border == "reflect":
        grid, cell = make_query_grid((H, W), region, batch=phi.shape[0], margin=radius, device=phi.device,
                                     dtype=dtype)
        rgb = renderer(phi, grid, cell)  # (B, 3, height + 2 radius, width + 2 radius); axes, not a dense grid
        return rgb[:, :, radius:radius + region.height, radius:radius + region.width]
    padded = region.pad(radius, (H, W))
    grid, cell = make_query_grid((H, W), padded, batch=phi.shape[0], device=phi.device, dtype=dtype)
    rgb = renderer(phi, grid, cell)  # (B, 3, padded.height, padded.width)
    rows, cols = region.relative_to(padded).slices()
    return rgb[:, :, rows, cols]

