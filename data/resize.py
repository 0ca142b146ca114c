"""Exact antialiased resampling of any window of a resized image.

``resize_region(src, (R, R), Region(top, left, P, P), box=box)`` returns exactly the pixels
``[top, top + P) x [left, left + P)`` of ``box`` (a window of ``src``) resized to ``R x R``,
computing only those: the patch sampler's ground truth is *by construction* the crop of the full
resize. Both use the same filter taps (computed for the whole axis, then sliced) and the same
per-pixel arithmetic (separable filter, taps summed in a fixed order with separate multiply and
add), so they agree bit for bit.

The filter follows Pillow's convention for an antialiased resize: output pixel ``o`` of an axis
resizing the input interval ``[a, a + L)`` to ``n_out`` pixels is centred at
``a + (o + 0.5) L / n_out`` (continuous coordinates: input pixel ``i`` covers ``[i, i + 1)``);
when downscaling (``s = L / n_out > 1``) the kernel is stretched by ``s``; taps outside the box
are dropped and the weights renormalised. Boxes may be fractional (a square mapped into a JPEG
decoded at 1/8 scale) and may extend past the image: pixels outside it read as ``fill`` (padding).
Kernels: Lanczos-3 (default) and Keys bicubic (a = -0.5). Unlike Pillow there is no 8-bit rounding
between the passes and the output is float (within about 1/255 of Pillow's on smooth images).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from infd.renderers.coords import Region

KERNELS = ("lanczos", "bicubic")
# Pillow's box, not one of infd's rectangles: (left, top, right, bottom) of the *source* image in its pixels,
# fractional and free to reach outside it (read as ``fill``), passed as is to ``Image.resize(box=)`` and
# ``Image.reduce(box=)``. infd's rectangles are ``coords.Region`` (whole pixels (top, left, height, width) of a
# rendered image) and ``coords.FractionalWindow`` (y0, x0, y1, x1 in fractions of it); the conversions are
# Region -> (left, top, right, bottom) and FractionalWindow of an H x W source -> (x0 W, y0 H, x1 W, y1 H).
PilBox = tuple[float, float, float, float]
Fill = tuple[int, int, int]


def _lanczos3(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)  # sinc(x) sinc(x/3), |x| < 3


def _bicubic(x: np.ndarray) -> np.ndarray:
    # Keys cubic convolution with a = -0.5
    a, x = -0.5, np.abs(x)
    inner = ((a + 2) * x - (a + 3)) * x * x + 1
    outer = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, inner, np.where(x < 2, outer, 0.0))


_KERNEL_FNS = {"lanczos": (_lanczos3, 3.0), "bicubic": (_bicubic, 2.0)}


def axis_weights(length: float, n_out: int, kernel: str = "lanczos", start: float = 0.0,
                 outputs: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter taps of every output of an axis resizing the interval ``[start, start + length)``.

    Returns ``index (n, K)`` int64 input pixels (inside ``[floor(start), ceil(start + length))``)
    and ``weight (n, K)`` float32 summing to 1 per row (padding taps have weight 0), for all
    ``n = n_out`` outputs or the ``outputs = (first, count)`` of them. Each row depends only on its
    output's index, so a window uses exactly the numbers of the full resize.
    """
    if kernel not in _KERNEL_FNS:
        raise ValueError(f"unknown resize kernel {kernel!r} (choose from {', '.join(KERNELS)})")
    if length <= 0 or n_out <= 0:
        raise ValueError(f"axis sizes must be positive, got {length} -> {n_out}")
    fn, radius = _KERNEL_FNS[kernel]
    scale = length / n_out
    stretch = max(scale, 1.0)  # antialias: widen the kernel when downscaling
    support = radius * stretch
    taps = 2 * math.ceil(support) + 1
    lo, hi = math.floor(start), math.ceil(start + length)
    first_out, count = (0, n_out) if outputs is None else outputs
    centre = start + (np.arange(first_out, first_out + count, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.floor(centre - support + 0.5), lo)
    last = np.minimum(np.floor(centre + support + 0.5), hi)
    index = first[:, None] + np.arange(taps, dtype=np.float64)  # (n_out, K)
    weight = fn((index + 0.5 - centre[:, None]) / stretch) * (index < last[:, None])
    weight /= weight.sum(axis=1, keepdims=True)
    index = np.minimum(index, hi - 1).astype(np.int64)
    return torch.from_numpy(index), torch.from_numpy(weight.astype(np.float32))


def _filter_rows(band: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[o] = sum_k weight[o, k] * band[index[o, k]]`` for ``band (N, M, C)`` -> ``(O, M, C)``.

    Separate multiply and add (never fused), taps summed in order k = 0, 1, ...: every output is
    computed identically whatever other rows are in the batch. Buffers are reused (allocating per
    tap costs more than the arithmetic).
    """
    rows = band.reshape(band.shape[0], -1)  # (N, M*C)
    out = torch.index_select(rows, 0, index[:, 0]).mul_(weight[:, :1])
    term = torch.empty_like(out)
    for k in range(1, index.shape[1]):
        torch.index_select(rows, 0, index[:, k], out=term)
        out.add_(term.mul_(weight[:, k:k + 1]))
    return out.reshape(index.shape[0], *band.shape[1:])


def image_size(src) -> tuple[int, int]:
    """``(H, W)`` of a PIL image or an ``(H, W, C)`` array."""
    return (src.height, src.width) if isinstance(src, Image.Image) else tuple(src.shape[:2])


def _read_band(src, y0: int, y1: int, x0: int, x1: int, fill: Fill) -> torch.Tensor:
    """Pixels ``[y0, y1) x [x0, x1)`` of ``src`` as float ``(h, w, C)``, ``fill`` outside the image."""
    H, W = image_size(src)
    iy0, iy1, ix0, ix1 = max(y0, 0), min(y1, H), max(x0, 0), min(x1, W)
    if iy0 < iy1 and ix0 < ix1:
        if isinstance(src, Image.Image):
            # convert only the band: a PIL -> numpy copy of a whole photo costs more than the resize
            inside = np.array(src.crop((ix0, iy0, ix1, iy1)))
        else:
            inside = np.array(src[iy0:iy1, ix0:ix1])
        inside = torch.from_numpy(inside.reshape(iy1 - iy0, ix1 - ix0, -1)).float()
        if (iy0, iy1, ix0, ix1) == (y0, y1, x0, x1):
            return inside
    channels = len(src.getbands()) if isinstance(src, Image.Image) else src.shape[2]
    band = torch.tensor(fill, dtype=torch.float32)[:channels].expand(y1 - y0, x1 - x0, channels).clone()
    if iy0 < iy1 and ix0 < ix1:
        band[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = inside
    return band


def resize_region(src, size: tuple[int, int], region: Region | None = None, kernel: str = "lanczos",
                  box: PilBox | None = None, fill: Fill = (0, 0, 0)) -> torch.Tensor:
    """Pixels ``region`` of ``box`` (a window of ``src``) resized to ``size = (R_h, R_w)``.

    Args:
        src: a PIL image, or an ``(H, W, C)`` array (channels last), uint8 or float32 in 0..255.
        size: size of the virtual resized image.
        region: window of the resized image to produce (default: all of it).
        box: ``(left, top, right, bottom)`` of ``src`` that is resized, fractional or reaching
            outside the image (read as ``fill``) allowed; default: the whole image.
    Returns:
        ``(C, h, w)`` float32 in 0..255 (Lanczos overshoot clamped).
    """
    if not isinstance(src, Image.Image) and (src.ndim != 3 or src.dtype not in (np.uint8, np.float32)):
        raise ValueError(f"resize_region expects an (H, W, C) uint8 or float32 array, got {src.dtype} {src.shape}")
    H, W = image_size(src)
    left, top, right, bottom = (0, 0, W, H) if box is None else box
    R_h, R_w = size
    region = Region(0, 0, R_h, R_w) if region is None else region.check_inside((R_h, R_w))
    iy, wy = axis_weights(bottom - top, R_h, kernel, start=top)
    ix, wx = axis_weights(right - left, R_w, kernel, start=left)
    iy, wy = iy[region.top:region.bottom], wy[region.top:region.bottom]
    ix, wx = ix[region.left:region.right], wx[region.left:region.right]
    y0, y1 = int(iy.min()), int(iy.max()) + 1
    x0, x1 = int(ix.min()), int(ix.max()) + 1
    band = _read_band(src, y0, y1, x0, x1, fill)  # (By, Bx, C)
    rows = _filter_rows(band, iy - y0, wy)  # (h, Bx, C)
    cols = _filter_rows(rows.transpose(0, 1).contiguous(), ix - x0, wx)  # (w, h, C)
    return cols.permute(2, 1, 0).clamp_(0.0, 255.0)  # (C, h, w)


def crop_filled(img: Image.Image, box: tuple[int, int, int, int], fill: Fill = (0, 0, 0)) -> Image.Image:
    """``img.crop(box)`` with ``fill`` (not Pillow's black) where the box leaves the image."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= img.width and bottom <= img.height:
        return img.crop(box)
    out = Image.new(img.mode, (right - left, bottom - top), fill)
    inner = (max(left, 0), max(top, 0), min(right, img.width), min(bottom, img.height))
    if inner[0] < inner[2] and inner[1] < inner[3]:
        out.paste(img.crop(inner), (inner[0] - left, inner[1] - top))
    return out


def resize_pil(img: Image.Image, size: int, box: PilBox | None = None, kernel: str = "lanczos",
               reducing_gap: float | None = None, fill: Fill = (0, 0, 0)) -> torch.Tensor:
    """``box`` of ``img`` resized by Pillow to ``size x size``: ``(C, size, size)`` float 0..255.

    Only the pixels under the box are used (Pillow's own ``box=`` lets the filter reach the whole
    image; here it sees at most the partial pixels of a fractional box). ``reducing_gap`` first
    box-averages by ``int(scale / reducing_gap)`` like Pillow's option of that name (faster on
    large images, slightly softer; ``None`` = the exact filter).
    """
    resample = Image.Resampling.LANCZOS if kernel == "lanczos" else Image.Resampling.BICUBIC
    left, top, right, bottom = (0, 0, img.width, img.height) if box is None else box
    outer = (math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))
    inside = outer[0] >= 0 and outer[1] >= 0 and outer[2] <= img.width and outer[3] <= img.height
    factor = int((right - left) / size / reducing_gap) if reducing_gap else 1
    if factor >= 2 and inside:
        img = img.reduce(factor, box=outer)  # reads only the box; pixel j averages [j f, (j + 1) f)
    else:
        factor = 1
        if outer != (0, 0, img.width, img.height):
            img = crop_filled(img, outer, fill)
    x0, y0 = outer[0], outer[1]
    inner = ((left - x0) / factor, (top - y0) / factor, (right - x0) / factor, (bottom - y0) / factor)
    out = np.asarray(img.resize((size, size), resample, box=inner))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float()
