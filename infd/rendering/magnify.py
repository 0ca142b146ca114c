"""Rendering beyond the magnification a renderer was trained for: render there, then resample smoothly.

Magnification is output side / field side (a 128 x 128 field rendered at 1024 is 8x). CLIF takes the
*nearest* field vector and its CNN sees only ``radius`` query pixels, so once a field cell spans more
output pixels than training ever showed, the cells show as a mosaic of flat squares. A renderer records
the largest magnification it renders natively (``renderer.max_magnification``; ``None``: no limit).
Past it, an axis of ``n`` output pixels is rendered at the *native size* ``round(m_max * field side)``
and resampled to ``n`` with Keys' bicubic kernel (C1-continuous, ``infd.data.resize.axis_weights``),
separably, rows then columns.

Every output pixel is a fixed combination of fixed native pixels, and a native pixel renders the same in
any window (``render_region``), so a tile, a window of a huge image and a full render agree exactly (up
to float rounding) at every magnification, and a window costs its own pixels plus a few native ones:
a 1024 x 1024 window of a 65536 x 65536 image from a 128 field renders about 20 x 20 native pixels.
"""
from __future__ import annotations

from typing import Callable

import torch

from infd.data.resize import axis_weights
from infd.renderers.coords import Region, check_size
from infd.renderers.region import Border, render_region

KERNEL = "bicubic"


def native_size(size: tuple[int, int], field_size: tuple[int, int],
                max_magnification: float | None) -> tuple[int, int]:
    """The ``(H, W)`` to render natively for an ``H x W`` output of an ``h x w`` field (each axis at most
    ``max_magnification`` times its field side; ``None``: the output size itself)."""
    if max_magnification is None:
        return check_size(size)
    return tuple(n if n <= max_magnification * f else max(1, round(max_magnification * f))
                 for n, f in zip(check_size(size), field_size))


def _filter(x: torch.Tensor, dim: int, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[.., o, ..] = sum_k weight[o, k] x[.., index[o, k], ..]`` along ``dim``, taps summed in order."""
    shape = [1] * x.dim()
    shape[dim] = -1
    out = None
    for k in range(index.shape[1]):
        term = x.index_select(dim, index[:, k]) * weight[:, k].view(shape)
        out = term if out is None else out.add_(term)
    return out


def render_window(renderer: Callable[..., torch.Tensor], phi: torch.Tensor, size: tuple[int, int],
                  region: Region | None = None, border: Border = "reflect") -> torch.Tensor:
    """Pixels ``region`` of the virtual ``size`` image from ``phi (B, C, h, w)``: ``(B, 3, rh, rw)``.

    Natively (``render_region``) up to ``renderer.max_magnification``; beyond it, the native-size render
    of the pixels this window needs, bicubically resampled. Regions with their own window grid (fractional
    windows) always render natively.
    """
    H, W = check_size(size)
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    base = native_size((H, W), tuple(phi.shape[-2:]), getattr(renderer, "max_magnification", None))
    if base == (H, W) or region.grid is not None:
        return render_region(renderer, phi, (H, W), region, border)
    device = phi.device
    iy, wy = (t.to(device) for t in axis_weights(base[0], H, KERNEL, outputs=(region.top, region.height)))
    ix, wx = (t.to(device) for t in axis_weights(base[1], W, KERNEL, outputs=(region.left, region.width)))
    top, left = int(iy.min()), int(ix.min())
    needed = Region(top, left, int(iy.max()) + 1 - top, int(ix.max()) + 1 - left)
    pixels = render_region(renderer, phi, base, needed, border)  # (B, 3, nh, nw) native pixels
    rows = _filter(pixels, 2, iy - top, wy)  # (B, 3, rh, nw)
    return _filter(rows, 3, ix - left, wx)  # (B, 3, rh, rw)
