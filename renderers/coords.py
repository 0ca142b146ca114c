"""The one coordinate convention of infd (compatible with LIIF/INFD).

An image of H x W pixels spans [-1, 1] on both axes. Pixel ``i`` of an axis of length ``n`` has its
centre at ``-1 + (2 i + 1) / n``. Coordinates are ``(..., 2)`` tensors in ``(y, x)`` order (row,
column), like tensor indexing. ``cell`` is the pixel size in the same units: ``(2 / H, 2 / W)``.

A *region* ``(top, left, height, width)`` of a virtual H x W image uses the same formula for its
pixels, so rendering a window of a huge virtual image (zoom, tiling) is just a different coordinate
grid. A regular grid can travel as its two axes (``QueryGrid``) instead of a dense ``(B, H, W, 2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class Region:
    """A window of pixels ``[top, top + height) x [left, left + width)`` of a virtual image."""

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self):
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"region size must be positive, got {self.height}x{self.width}")
        if self.top < 0 or self.left < 0:
            raise ValueError(f"region origin must be non-negative, got ({self.top}, {self.left})")

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    def check_inside(self, size: tuple[int, int]) -> "Region":
        """Raise ``ValueError`` unless the region lies inside an image of ``size = (H, W)``."""
        H, W = size
        if self.bottom > H or self.right > W:
            raise ValueError(
                f"region rows {self.top}..{self.bottom}, cols {self.left}..{self.right} "
                f"lies outside the {H}x{W} image")
        return self

    def pad(self, radius: int, size: tuple[int, int]) -> "Region":
        """This region grown by ``radius`` pixels on each side, clipped to an ``H x W`` image."""
        H, W = size
        top, left = max(self.top - radius, 0), max(self.left - radius, 0)
        return Region(top, left, min(self.bottom + radius, H) - top, min(self.right + radius, W) - left)

    def relative_to(self, outer: "Region") -> "Region":
        """The same pixels, in the coordinates of the window ``outer`` that contains them."""
        return Region(self.top - outer.top, self.left - outer.left, self.height, self.width)

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices selecting this region from a full-size array."""
        return slice(self.top, self.bottom), slice(self.left, self.right)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate an image size ``(H, W)`` and return it as a tuple of ints."""
    H, W = (int(s) for s in size)
    if H <= 0 or W <= 0:
        raise ValueError(f"image size must be positive, got {H}x{W}")
    return H, W


def pixel_centres(n: int, start: int = 0, count: int | None = None, *, device=None,
                  dtype=torch.float32) -> torch.Tensor:
    """Centres ``-1 + (2 i + 1) / n`` of pixels ``i = start .. start + count - 1`` of an axis of length ``n``.

    Computed in float64 and then cast, so a window's values equal the same entries of the full axis.
    """
    count = n - start if count is None else count
    i = torch.arange(start, start + count, device=device, dtype=torch.float64)
    return (-1 + (2 * i + 1) / n).to(dtype)


def make_axes(size: tuple[int, int], region: Region | None = None, *, device=None,
              dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis pixel centres ``(ys (h,), xs (w,))`` of ``region`` (default: all) of an ``H x W`` image."""
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    ys = pixel_centres(H, region.top, region.height, device=device, dtype=dtype)
    xs = pixel_centres(W, region.left, region.width, device=device, dtype=dtype)
    return ys, xs


def make_coord(size: tuple[int, int], region: Region | None = None, *, device=None,
               dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre grid ``(h, w, 2)`` in ``(y, x)`` order of ``region`` of an ``H x W`` image."""
    ys, xs = make_axes(size, region, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def make_cell(size: tuple[int, int], *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel size ``(2 / H, 2 / W)`` of an ``H x W`` image, shape ``(2,)``."""
    H, W = check_size(size)
    return torch.tensor([2.0 / H, 2.0 / W], device=device, dtype=torch.float64).to(dtype)


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


def make_query_grid(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, device=None,
                    dtype=torch.float32) -> tuple[QueryGrid, torch.Tensor]:
    """``make_query`` as axes: the ``QueryGrid`` of ``region`` of an ``H x W`` image and ``cell (B, 2)``."""
    ys, xs = make_axes(size, region, device=device, dtype=dtype)
    cell = make_cell(size, device=device, dtype=dtype)
    return QueryGrid(ys.expand(batch, -1), xs.expand(batch, -1)), cell.expand(batch, 2)


def make_query(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, device=None,
               dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``coord (B, h, w, 2)`` and ``cell (B, 2)`` for rendering ``region`` of an ``H x W`` image."""
    coord = make_coord(size, region, device=device, dtype=dtype)
    cell = make_cell(size, device=device, dtype=dtype)
    return coord.expand(batch, *coord.shape), cell.expand(batch, 2)


def iter_tiles(size: tuple[int, int], tile: int | tuple[int, int]) -> Iterator[Region]:
    """Row-major tiles of at most ``tile`` pixels a side that cover an ``H x W`` image exactly once."""
    H, W = check_size(size)
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if th <= 0 or tw <= 0:
        raise ValueError(f"tile size must be positive, got {th}x{tw}")
    for top in range(0, H, th):
        for left in range(0, W, tw):
            yield Region(top, left, min(th, H - top), min(tw, W - left))


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
