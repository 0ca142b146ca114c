"""Field lookups by index, the shared first step of the local renderers: nearest and bilinear.

A field ``phi (B, C, h, w)`` covers [-1, 1]^2 like an h x w image: field cell ``k`` of an axis of
length ``n`` spans ``[-1 + 2k/n, -1 + 2(k+1)/n)`` with centre ``-1 + (2k + 1)/n``. A query at ``c``
takes cell ``floor((c + 1) n / 2)`` (clamped to the field). On a regular query grid, given as a
``QueryGrid``, the lookup is done per axis (``H + W`` index computations, one gather of the
features), which is exact and much cheaper than ``grid_sample`` per point.

``bilinear_lookup`` blends the four field vectors around a query by its continuous position between
their centres (clamped to the edge vectors outside them, like ``grid_sample``'s border padding), so the
features vary continuously with the query: no step where the nearest cell changes.
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


def bilinear_axis(c: torch.Tensor, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps of coordinates ``c`` on an axis of ``n`` cells: indices ``i0, i1`` and the weight of ``i1``.

    The continuous index ``t = (c + 1) n / 2 - 1/2`` is 0 at the first centre and ``n - 1`` at the last;
    ``i0 = floor(t)``, ``i1 = i0 + 1``, both clamped (outside the centres both taps are the edge cell).
    Computed in float64, so a window's taps equal the same entries of the full axis.
    """
    t = (c.double() + 1) * (n / 2) - 0.5
    i0 = torch.floor(t)
    frac = (t - i0).to(dtype)
    i0 = i0.long()
    return i0.clamp(0, n - 1), (i0 + 1).clamp_(0, n - 1), frac


def bilinear_lookup(phi: torch.Tensor, coord: torch.Tensor | QueryGrid) -> torch.Tensor:
    """Bilinearly interpolated field vectors ``(B, H, W, C)`` at every query.

    Blended along y, then along x, with the taps of ``bilinear_axis``: a ``QueryGrid`` per axis (each
    row of the field blended once for all columns), dense ``coord (B, H, W, 2)`` per point; both do the
    same arithmetic, so they agree to the bit.
    """
    B, C, h, w = phi.shape
    if isinstance(coord, QueryGrid):
        y0, y1, fy = bilinear_axis(coord.ys, h, phi.dtype)  # (B, H)
        x0, x1, fx = bilinear_axis(coord.xs, w, phi.dtype)  # (B, W)
        b = torch.arange(B, device=phi.device)[:, None]
        field = phi.permute(0, 2, 3, 1)  # (B, h, w, C), a view
        rows = torch.lerp(field[b, y0], field[b, y1], fy[:, :, None, None]).transpose(1, 2)  # (B, w, H, C)
        out = torch.lerp(rows[b, x0], rows[b, x1], fx[:, :, None, None])  # (B, W, H, C)
        return out.transpose(1, 2)
    y0, y1, fy = bilinear_axis(coord[..., 0], h, phi.dtype)  # (B, H, W)
    x0, x1, fx = bilinear_axis(coord[..., 1], w, phi.dtype)
    fy = fy[..., None]
    left = torch.lerp(gather_features(phi, y0, x0), gather_features(phi, y1, x0), fy)
    right = torch.lerp(gather_features(phi, y0, x1), gather_features(phi, y1, x1), fy)
    return torch.lerp(left, right, fx[..., None])
