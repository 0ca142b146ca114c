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

import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch

EDGE_TOLERANCE = 1e-6  # a window cell whose edge overshoots the image by less than this still fits in it


@dataclass(frozen=True)
class FractionalWindow:
    """A window ``[y0, y1) x [x0, x1)`` of an image in fractions of its height and width (any pixel size)."""

    y0: float
    x0: float
    y1: float
    x1: float

    def __post_init__(self):
        values = (self.y0, self.x0, self.y1, self.x1)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"box {list(values)} must be four finite numbers")
        if min(values) < 0 or max(values) > 1:
            raise ValueError(f"box {list(values)} is outside [0, 1] (y0, x0, y1, x1 of the output)")
        if not (self.y0 < self.y1 and self.x0 < self.x1):
            raise ValueError(f"box {list(values)} is empty: it needs y0 < y1 and x0 < x1")

    @classmethod
    def full(cls) -> "FractionalWindow":
        return cls(0.0, 0.0, 1.0, 1.0)

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)``: the window in pixels of an ``H x W`` image, rounded to the nearest."""
        H, W = size
        return round(self.y0 * H), round(self.x0 * W), round(self.y1 * H), round(self.x1 * W)


@dataclass(frozen=True)
class WindowGrid:
    """The pixel grid of ``window`` cut into ``resolution = (h, w)`` pixels.

    Pixel ``(0, 0)`` of the window is pixel ``origin = (top, left)`` of the virtual image a ``Region``
    indexes; the image's pixels before and after the window are cells of the same size.
    """

    window: FractionalWindow
    resolution: tuple[int, int]
    origin: tuple[int, int] = (0, 0)


def check_resolution(resolution: int | tuple[int, int]) -> tuple[int, int]:
    """``N`` or ``(h, w)`` -> ``(h, w)``, both positive integers (``ValueError`` otherwise)."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ValueError(f"resolution must be positive integers (h, w), got {resolution!r}")
    return h, w


def _cells_outside(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Whole cells of ``[lo, hi)`` cut into ``n`` that fit in ``[0, 1]`` before ``lo`` and after ``hi``."""
    size = (hi - lo) / n
    return math.floor(lo / size + EDGE_TOLERANCE), math.floor((1 - hi) / size + EDGE_TOLERANCE)


@dataclass(frozen=True)
class Region:
    """A window of pixels ``[top, top + height) x [left, left + width)`` of a virtual image.

    ``grid`` is ``None`` for the image's own pixels (pixel ``i`` at ``-1 + (2 i + 1) / H``), or the
    ``WindowGrid`` of a fractional window (``Region.from_fractions``).
    """

    top: int
    left: int
    height: int
    width: int
    grid: WindowGrid | None = None

    def __post_init__(self):
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"region size must be positive, got {self.height}x{self.width}")
        if self.top < 0 or self.left < 0:
            raise ValueError(f"region origin must be non-negative, got ({self.top}, {self.left})")

    @classmethod
    def from_fractions(cls, window: FractionalWindow,
                       resolution: int | tuple[int, int]) -> tuple[tuple[int, int], "Region"]:
        """``(size, region)``: ``window`` rendered at ``resolution = (h, w)`` as a region of a virtual image.

        The window's pixel grid is continued over the image: the virtual image of ``size`` holds the whole
        cells that fit in ``[0, 1]`` and ``region`` is the window's ``h x w`` cells, so
        ``render_region(renderer, phi, size, region)`` pads the window with as many real neighbours as the
        renderer sees and the image holds. The whole window at ``(H, W)`` is exactly the ``H x W`` image.
        """
        h, w = check_resolution(resolution)
        top, bottom = _cells_outside(window.y0, window.y1, h)
        left, right = _cells_outside(window.x0, window.x1, w)
        region = cls(top, left, h, w, WindowGrid(window, (h, w), (top, left)))
        return (top + h + bottom, left + w + right), region

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
        return replace(self, top=top, left=left, height=min(self.bottom + radius, H) - top,
                       width=min(self.right + radius, W) - left)

    def relative_to(self, outer: "Region") -> "Region":
        """The same pixels as array indices into the window ``outer`` that contains them (for slicing)."""
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


def pixel_centres(n: int, start: int = 0, count: int | None = None, *, window: tuple[float, float] = (0.0, 1.0),
                  device=None, dtype=torch.float32) -> torch.Tensor:
    """Centres of pixels ``i = start .. start + count - 1`` of the grid cutting ``window = (lo, hi)`` into ``n``.

        c_i = (2 lo - 1) + (hi - lo) (2 i + 1) / n       (default window (0, 1): -1 + (2 i + 1) / n)

    ``window`` is in fractions of the image axis; ``i`` may lie outside ``0 .. n - 1`` (cells of the
    same size beyond the window). Computed in float64 and then cast, so a window's values equal the
    same entries of the full axis.
    """
    count = n - start if count is None else count
    lo, hi = window
    i = torch.arange(start, start + count, device=device, dtype=torch.float64)
    return ((2 * lo - 1) + (hi - lo) * ((2 * i + 1) / n)).to(dtype)


def _grid(size: tuple[int, int], region: Region | None) -> WindowGrid:
    """The pixel grid ``region`` indexes: its own, or the ``H x W`` image's."""
    if region is not None and region.grid is not None:
        return region.grid
    return WindowGrid(FractionalWindow.full(), check_size(size))


def make_axes(size: tuple[int, int], region: Region | None = None, *, device=None,
              dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis pixel centres ``(ys (h,), xs (w,))`` of ``region`` (default: all) of an ``H x W`` image."""
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    grid = _grid((H, W), region)
    (rows, cols), (top, left), window = grid.resolution, grid.origin, grid.window
    ys = pixel_centres(rows, region.top - top, region.height, window=(window.y0, window.y1), device=device,
                       dtype=dtype)
    xs = pixel_centres(cols, region.left - left, region.width, window=(window.x0, window.x1), device=device,
                       dtype=dtype)
    return ys, xs


def make_coord(size: tuple[int, int], region: Region | None = None, *, device=None,
               dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre grid ``(h, w, 2)`` in ``(y, x)`` order of ``region`` of an ``H x W`` image."""
    ys, xs = make_axes(size, region, device=device, dtype=dtype)
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


def make_query_grid(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, device=None,
                    dtype=torch.float32) -> tuple[QueryGrid, torch.Tensor]:
    """``make_query`` as axes: the ``QueryGrid`` of ``region`` of an ``H x W`` image and ``cell (B, 2)``."""
    ys, xs = make_axes(size, region, device=device, dtype=dtype)
    cell = make_cell(size, region, device=device, dtype=dtype)
    return QueryGrid(ys.expand(batch, -1), xs.expand(batch, -1)), cell.expand(batch, 2)


def make_query(size: tuple[int, int], region: Region | None = None, batch: int = 1, *, device=None,
               dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``coord (B, h, w, 2)`` and ``cell (B, 2)`` for rendering ``region`` of an ``H x W`` image."""
    coord = make_coord(size, region, device=device, dtype=dtype)
    cell = make_cell(size, region, device=device, dtype=dtype)
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
