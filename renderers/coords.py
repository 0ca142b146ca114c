"""The one coordinate convention of infd (compatible with LIIF/INFD).

An image of H x W pixels spans [-1, 1] on both axes. Pixel ``i`` of an axis of length ``n`` has its
centre at ``-1 + (2 i + 1) / n``. Coordinates are ``(..., 2)`` tensors in ``(y, x)`` order (row,
column), like tensor indexing. ``cell`` is the pixel size in the same units: ``(2 / H, 2 / W)``.

A *region* ``(top, left, height, width)`` of a virtual H x W image uses the same formula for its
pixels, so rendering a window of a huge virtual image (zoom, tiling) is just a different coordinate
grid. A regular grid can travel as its two axes (``QueryGrid``) instead of a dense ``(B, H, W, 2)``.

A *fractional window* ``(y0, x0, y1, x1)`` (fractions of the image's height and width) rendered at
``(h, w)`` has its own pixel grid, with cells ``(y1 - y0) / h`` of the image, which need not be whole
pixels of any virtual image. Both are one formula: pixel ``i`` of the grid that cuts ``[lo, hi)``
(fractions of an axis) into ``n`` pixels is centred at

    c_i = (2 lo - 1) + (hi - lo) (2 i + 1) / n         (lo, hi = 0, 1: the image's own pixels)

``Region.from_fractions`` makes such a window a region (with its ``WindowGrid``) of a virtual image, so
``renderers.region.render_region`` renders it like any other region.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# The rectangles live in windows.py (plain Python, for command-line checks); this module re-exports them.
from .windows import (EDGE_TOLERANCE, FractionalWindow, Region, WindowGrid, check_resolution,  # noqa: F401
                      check_size, iter_tiles)


def pixel_centres(n: int, start: int = 0, count: int | None = None, *, window: tuple[float, float] = (0.0, 1.0),
                  device=None, dtype=torch.float32) -> torch.Tensor:
    """Centres of pixels ``i = start .. start + count - 1`` of the grid cutting ``window = (lo, hi)`` into ``n``.

        c_i = (2 lo - 1) + (hi - lo) (2 i + 1) / n       (default window (0, 1): -1 + (2 i + 1) / n)

    ``window`` is in fractions of the image axis; ``i`` may lie outside ``0 .. n - 1`` (cells of the
    same size beyond the window). Computed in float64 and then cast, so a window's values equal the
    same entries of the full axis.
    """
    count = n - start if count is None else count
    i = torch.arange(start, start + count, device=device, dtype=torch.float64)
    return _centres(i, n, window).to(dtype)


def _centres(i: torch.Tensor, n: int, window: tuple[float, float]) -> torch.Tensor:
    """``c_i`` (float64) of float64 pixel indices ``i`` of the grid cutting ``window`` into ``n``."""
    lo, hi = window
    return (2 * lo - 1) + (hi - lo) * ((2 * i + 1) / n)


def reflect_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """Pixel indices mirrored into ``0 .. n - 1`` about the image edges: ``.., 1, 0 | 0, 1, .., n - 1 | n - 1, ..``.

    Symmetric (the edge pixel repeats once), period ``2 n``, so any margin works, even wider than the image.
    """
    j = torch.remainder(i, 2 * n)
    return torch.where(j < n, j, 2 * n - 1 - j)


def _grid(size: tuple[int, int], region: Region | None) -> WindowGrid:
    """The pixel grid ``region`` indexes: its own, or the ``H x W`` image's."""
    if region is not None and region.grid is not None:
        return region.grid
    return WindowGrid(FractionalWindow.full(), check_size(size))


def make_axes(size: tuple[int, int], region: Region | None = None, *, margin: int = 0, device=None,
              dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis pixel centres ``(ys (h,), xs (w,))`` of ``region`` (default: all) of an ``H x W`` image.

    ``margin``: also that many pixels on every side (``(h + 2 margin,)``, ``(w + 2 margin,)``); those
    beyond the image are its pixels mirrored about the edge (``reflect_index``), so context past the
    border continues the image instead of being padding.
    """
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    grid = _grid((H, W), region)
    (rows, cols), (top, left), window = grid.resolution, grid.origin, grid.window

    def axis(start: int, count: int, n_image: int, origin: int, n_grid: int, lo_hi) -> torch.Tensor:
        virtual = torch.arange(start - margin, start + count + margin, device=device, dtype=torch.int64)
        i = reflect_index(virtual, n_image) - origin  # pixel of the (window) grid, beyond it in the image
        return _centres(i.to(torch.float64), n_grid, lo_hi).to(dtype)

    return (axis(region.top, region.height, H, top, rows, (window.y0, window.y1)),
            axis(region.left, region.width, W, left, cols, (window.x0, window.x1)))


def make_coord(size: tuple[int, int], region: Region | None = None, *, margin: int = 0, device=None,
               dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre grid ``(h + 2 margin, w + 2 margin, 2)`` in ``(y, x)`` order of ``region`` of an
    ``H x W`` image with ``margin`` pixels of context (mirrored past the image: ``make_axes``)."""
    ys, xs = make_axes(size, region, margin=margin, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def make_cell(size: tuple[int, int], region: Region | None = None, *, device=None,
              dtype=torch.float32) -> torch.Tensor:
    """Pixel size ``(2 / H, 2 / W)`` of an ``H x W`` image (or of ``region``'s window grid), shape ``(2,)``."""
    grid = _grid(size, region)
    (rows, cols), window = grid.resolution, grid.window
    cell = [2 * (window.y1 - window.y0) / rows, 2 * (window.x1 - window.x0) / cols]
    return torch.tensor(cell, device=device, dtype=torch.float64).to(dtype)


@dataclass(frozen=True)
class QueryGrid:
    """A regular query grid kept as its axes: query ``[b, i, j]`` lies at ``(ys[b, i], xs[b, j])``.

    ``ys (B, H)``, ``xs (B, W)``. Renderers take it wherever they take a dense ``coord (B, H, W, 2)``:
    ``H + W`` values per image instead of ``2 H W``, and no check that the grid is regular.
    """

    ys: torch.Tensor
    xs: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, H, W)``."""
        return self.ys.shape[0], self.ys.shape[1], self.xs.shape[1]

    def dense(self) -> torch.Tensor:
        """The same queries as a dense ``coord (B, H, W, 2)``."""
        B, H, W = self.shape
        return torch.stack([self.ys[:, :, None].expand(B, H, W), self.xs[:, None, :].expand(B, H, W)], dim=-1)


def make_query_grid(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, margin: int = 0,
                    device=None, dtype=torch.float32) -> tuple[QueryGrid, torch.Tensor]:
    """``make_query`` as axes: the ``QueryGrid`` of ``region`` of an ``H x W`` image (grown by ``margin``
    pixels of context on every side, mirrored beyond the image: ``make_axes``) and ``cell (B, 2)``."""
    ys, xs = make_axes(size, region, margin=margin, device=device, dtype=dtype)
    cell = make_cell(size, region, device=device, dtype=dtype)
    return QueryGrid(ys.expand(batch, -1), xs.expand(batch, -1)), cell.expand(batch, 2)


def make_query(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, device=None,
               dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``coord (B, h, w, 2)`` and ``cell (B, 2)`` for rendering ``region`` of an ``H x W`` image."""
    coord = make_coord(size, region, device=device, dtype=dtype)
    cell = make_cell(size, region, device=device, dtype=dtype)
    return coord.expand(batch, *coord.shape), cell.expand(batch, 2)


def is_regular_grid(coord: torch.Tensor) -> bool:
    """True when ``coord (B, H, W, 2)`` is separable: y depends only on the row, x only on the column."""
    y, x = coord[..., 0], coord[..., 1]
    return bool(torch.equal(y, y[:, :, :1].expand_as(y)) and torch.equal(x, x[:, :1, :].expand_as(x)))


def as_grid(coord: torch.Tensor | QueryGrid) -> torch.Tensor | QueryGrid:
    """A dense regular ``coord (B, H, W, 2)`` as its ``QueryGrid``; irregular ones and grids unchanged.

    The one place a dense grid is checked and split (two ``torch.equal`` over it): a renderer calls it
    once per forward; queries made as axes (``make_query_grid``) pass straight through.
    """
    if isinstance(coord, QueryGrid) or not is_regular_grid(coord):
        return coord
    return QueryGrid(coord[:, :, 0, 0], coord[:, 0, :, 1])


def dense_coord(coord: torch.Tensor | QueryGrid) -> torch.Tensor:
    """``coord`` as a dense ``(B, H, W, 2)`` tensor, for renderers that sample per point (``grid_sample``)."""
    return coord.dense() if isinstance(coord, QueryGrid) else coord
