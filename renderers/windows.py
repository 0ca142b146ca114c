"""The rectangles of the coordinate convention, in plain Python (no torch): importable by command-line
checks before any model loads. ``renderers.coords`` turns them into coordinate tensors and re-exports them.

``Region``: whole pixels ``[top, top + height) x [left, left + width)`` of a virtual image;
``FractionalWindow``: a window in fractions of the image, rendered at a resolution of its own
(``Region.from_fractions``); ``iter_tiles``: the row-major tiles that cover an image once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

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


def iter_tiles(size: tuple[int, int], tile: int | tuple[int, int]) -> Iterator[Region]:
    """Row-major tiles of at most ``tile`` pixels a side that cover an ``H x W`` image exactly once."""
    H, W = check_size(size)
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if th <= 0 or tw <= 0:
        raise ValueError(f"tile size must be positive, got {th}x{tw}")
    for top in range(0, H, th):
        for left in range(0, W, tw):
            yield Region(top, left, min(th, H - top), min(tw, W - left))
