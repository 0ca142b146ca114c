"""Boxes of the virtual output and their pixel grids: where a condition looks, and at what resolution.

A box ``(y0, x0, y1, x1)`` with ``0 <= y0 < y1 <= 1`` (same for x) is a window of the virtual output
image, whatever size that image is finally rendered at. Rendered at ``(h, w)``, its pixels are the
``h x w`` grid that tiles the box, in the [-1, 1] convention of ``renderers.coords``:

    y_i = (2 y0 - 1) + (y1 - y0) (2 i + 1) / h,      cell = (2 (y1 - y0) / h, 2 (x1 - x0) / w)

so the whole box ``(0, 0, 1, 1)`` at ``(H, W)`` gives exactly ``make_coord((H, W))`` and
``make_cell((H, W))``, and a box whose edges fall on pixel boundaries of an ``H x W`` image gives the
coordinates of that ``Region`` (up to float rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

EDGE_TOLERANCE = 1e-6  # a margin pixel whose edge overshoots the image by less than this still fits


@dataclass(frozen=True)
class Box:
    """A window ``[y0, y1) x [x0, x1)`` of the virtual output, in units of its height and width."""

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
    def full(cls) -> "Box":
        return cls(0.0, 0.0, 1.0, 1.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.y0, self.x0, self.y1, self.x1

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)``: the box in pixels of an ``H x W`` image, rounded to the nearest."""
        H, W = size
        return round(self.y0 * H), round(self.x0 * W), round(self.y1 * H), round(self.x1 * W)


def check_resolution(resolution: int | tuple[int, int]) -> tuple[int, int]:
    """``N`` or ``(h, w)`` -> ``(h, w)``, both positive integers (``ValueError`` otherwise)."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ValueError(f"resolution must be positive integers (h, w), got {resolution!r}")
    return h, w


def _margins(lo: float, hi: float, n: int, radius: int) -> tuple[int, int]:
    """Whole pixels of the box's spacing (at most ``radius``) that fit before ``lo`` and after ``hi`` in [0, 1]."""
    size = (hi - lo) / n
    before = math.floor(lo / size + EDGE_TOLERANCE)
    after = math.floor((1 - hi) / size + EDGE_TOLERANCE)
    return min(radius, before), min(radius, after)


def box_axis(lo: float, hi: float, n: int, before: int = 0, after: int = 0, *, device=None) -> torch.Tensor:
    """Float64 centres of pixels ``-before .. n + after - 1`` of a box edge pair ``[lo, hi)`` cut into ``n``."""
    i = torch.arange(-before, n + after, device=device, dtype=torch.float64)
    return (2 * lo - 1) + (hi - lo) * ((2 * i + 1) / n)  # lo = 0, hi = 1: exactly pixel_centres(n)


def box_query(box: Box, resolution: tuple[int, int], batch: int = 1, margin: tuple[int, int, int, int] = (0, 0, 0, 0),
              *, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``coord (B, h', w', 2)`` and ``cell (B, 2)`` of ``box`` rendered at ``resolution = (h, w)``.

    ``margin = (top, left, bottom, right)`` adds that many pixels of the same spacing around the box
    (``h' = h + top + bottom``).
    """
    h, w = check_resolution(resolution)
    top, left, bottom, right = margin
    ys = box_axis(box.y0, box.y1, h, top, bottom, device=device).to(dtype)
    xs = box_axis(box.x0, box.x1, w, left, right, device=device).to(dtype)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)  # (h', w', 2)
    cell = torch.tensor([2 * (box.y1 - box.y0) / h, 2 * (box.x1 - box.x0) / w], device=device,
                        dtype=torch.float64).to(dtype)
    return coord.expand(batch, *coord.shape), cell.expand(batch, 2)


def render_box(renderer: nn.Module, phi: torch.Tensor, box: Box, resolution: tuple[int, int]) -> torch.Tensor:
    """Pixels ``(B, 3, h, w)`` of ``box`` rendered at ``resolution`` from ``phi (B, C, h_phi, w_phi)``.

    The box is rendered with a margin of ``renderer.radius`` pixels (as many as fit inside the image),
    then cropped, so its pixels are those of a render of the whole image at the same pixel size (a
    renderer is local). Differentiable when ``renderer`` is a module (a ``FastCLIF`` computes no gradients).
    """
    h, w = check_resolution(resolution)
    radius = int(getattr(renderer, "radius", 0))
    top, bottom = _margins(box.y0, box.y1, h, radius)
    left, right = _margins(box.x0, box.x1, w, radius)
    dtype = torch.float64 if phi.dtype == torch.float64 else torch.float32  # coordinates never in half
    coord, cell = box_query(box, (h, w), phi.shape[0], (top, left, bottom, right), device=phi.device, dtype=dtype)
    rgb = renderer(phi, coord, cell)  # (B, 3, h + top + bottom, w + left + right)
    return rgb[:, :, top:top + h, left:left + w]
