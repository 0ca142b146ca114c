"""Nearest field-vector lookup by index, the shared first step of the local renderers.

A field ``phi (B, C, h, w)`` covers [-1, 1]^2 like an h x w image: field cell ``k`` of an axis of
length ``n`` spans ``[-1 + 2k/n, -1 + 2(k+1)/n)`` with centre ``-1 + (2k + 1)/n``. A query at ``c``
takes cell ``floor((c + 1) n / 2)`` (clamped to the field). On a regular query grid, given as a
``QueryGrid``, the lookup is done per axis (``H + W`` index computations, one gather of the
features), which is exact and much cheaper than ``grid_sample`` per point.
"""
from __future__ import annotations

import torch

from .coords import QueryGrid


def nearest_index(c: torch.Tensor, n: int) -> torch.Tensor:
    """Index of the field cell containing coordinate ``c`` on an axis of ``n`` cells (long, same shape)."""
    return torch.floor((c.double() + 1) * (n / 2)).long().clamp_(0, n - 1)


def cell_centre(index: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Centre ``-1 + (2k + 1)/n`` of field cell ``k``."""
    return (-1 + (2 * index.double() + 1) / n).to(dtype)


def gather_features(phi: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
    """Features ``phi[b, :, iy, ix]`` laid out channels-last, shape ``(B, H, W, C)``.

    ``iy, ix`` are either per-axis ``(B, H)`` and ``(B, W)`` indices (regular grid) or per-point
    ``(B, H, W)`` indices.
    """
    B = phi.shape[0]
    field = phi.permute(0, 2, 3, 1)  # (B, h, w, C), a view
    b = torch.arange(B, device=phi.device)
    if iy.dim() == 2:  # per axis: broadcast (B, H, 1) x (B, 1, W)
        return field[b[:, None, None], iy[:, :, None], ix[:, None, :]]
    return field[b[:, None, None], iy, ix]


def nearest_lookup(phi: torch.Tensor, coord: torch.Tensor | QueryGrid, offset: tuple[float, float] = (0.0, 0.0)):
    """Nearest field vectors and relative coordinates for every query.

    Args:
        phi: field ``(B, C, h, w)``.
        coord: a ``QueryGrid`` (looked up per axis) or queries ``(B, H, W, 2)`` in ``(y, x)`` order
            (looked up per point; ``coords.as_grid`` turns a regular one into a grid first).
        offset: shift added to the query before the lookup (LIIF's local ensemble), in field cells.

    Returns:
        ``feat (B, H, W, C)`` and ``rel (B, H, W, 2)``: ``(coord - centre of the chosen cell) * (h, w)``.
    """
    B, _, h, w = phi.shape
    dy, dx = offset[0] * 2 / h, offset[1] * 2 / w
    if isinstance(coord, QueryGrid):
        ys, xs = coord.ys, coord.xs
        iy, ix = nearest_index(ys + dy, h), nearest_index(xs + dx, w)  # (B, H), (B, W)
        rel_y = (ys - cell_centre(iy, h, ys.dtype)) * h
        rel_x = (xs - cell_centre(ix, w, xs.dtype)) * w
        H, W = ys.shape[1], xs.shape[1]
        rel = torch.stack([rel_y[:, :, None].expand(B, H, W), rel_x[:, None, :].expand(B, H, W)], -1)
    else:
        iy, ix = nearest_index(coord[..., 0] + dy, h), nearest_index(coord[..., 1] + dx, w)
        rel = torch.stack([(coord[..., 0] - cell_centre(iy, h, coord.dtype)) * h,
                           (coord[..., 1] - cell_centre(ix, w, coord.dtype)) * w], -1)
    return gather_features(phi, iy, ix), rel


def relative_cell(cell: torch.Tensor, shape: tuple[int, int, int], h: int, w: int) -> torch.Tensor:
    """The query pixel size in field cells, ``cell * (h, w)``, broadcast to ``(B, H, W, 2)``."""
    B, H, W = shape
    scale = torch.tensor([h, w], device=cell.device, dtype=cell.dtype)
    if cell.dim() == 2:  # (B, 2): one cell for the whole grid
        return (cell * scale)[:, None, None, :].expand(B, H, W, 2)
    return cell * scale
