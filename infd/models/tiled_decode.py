"""Decoding a latent larger than the decoder was trained on, in overlapping windows of the trained size.

The field decoder normalises (GroupNorm) and attends (its middle block) over the whole latent, so a
latent larger than the trained size would be decoded out of distribution. ``decode_canvas`` decodes
windows of the trained size every ``stride`` latent positions (half a window by default) and blends
their fields with separable tent weights: each window's weight falls linearly from its centre to its
edges, so every field position is a convex combination of the windows that hold it and no window
edge leaves a step. A latent of the trained size is decoded as is.
"""
from __future__ import annotations

from typing import Callable

import torch

from infd.diffusion.windows import window_starts


def _tent(n: int, device) -> torch.Tensor:
    """``(n,)`` weights rising linearly from the ends to the centre (all > 0)."""
    i = torch.arange(n, device=device, dtype=torch.float32)
    return torch.minimum(i + 1, n - i) / ((n + 1) // 2)


def decode_canvas(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, window: int,
                  stride: int | None = None) -> torch.Tensor:
    """Field of latents ``z (B, C, h, w)`` with ``h, w >= window``: ``decode`` on windows of ``window``
    latent positions every ``stride`` (default ``window // 2``), blended with tent weights (module doc).
    ``decode(z)`` of the trained size when ``z`` is that size."""
    h, w = z.shape[-2:]
    if (h, w) == (window, window):
        return decode(z)
    stride = stride or max(window // 2, 1)
    tops, lefts = window_starts(h, window, stride), window_starts(w, window, stride)
    total = weight = None
    for top in tops:
        for left in lefts:
            phi = decode(z[..., top:top + window, left:left + window])
            f = phi.shape[-1] // window
            if total is None:
                total = phi.new_zeros(*phi.shape[:2], h * f, w * f)
                weight = phi.new_zeros(1, 1, h * f, w * f)
                tent = _tent(window * f, phi.device).to(phi.dtype)
                tent2 = tent[:, None] * tent[None, :]
            rows, cols = slice(top * f, (top + window) * f), slice(left * f, (left + window) * f)
            total[..., rows, cols] += phi * tent2
            weight[..., rows, cols] += tent2
    return total / weight
