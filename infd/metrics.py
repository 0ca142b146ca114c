"""Image-quality metrics, per image: PSNR, SSIM, LPIPS, colour cast, and scale consistency of a renderer.

Every metric takes ``pred`` and ``target`` of shape ``(B, C, H, W)`` and returns ``(B,)``. Images are
in ``value_range``, ``(-1, 1)`` by default (the model convention); pass ``(0, 1)`` for [0, 1] images.
Metrics run without autograd; for a training loss use ``infd.losses`` instead.

    PSNR = 10 log10(1 / MSE), MSE over C, H, W of the images mapped to [0, 1] (peak 1)
    SSIM: kornia's Gaussian-window SSIM (11x11, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 on [0, 1]), averaged
          over the valid (unpadded) windows and the channels
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

from .losses.lpips import LPIPS

ValueRange = tuple[float, float]


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"{name} needs two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


def to_unit_range(x: torch.Tensor, value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """Map ``x`` from ``value_range`` to [0, 1] (no clamping)."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return (x - lo) / (hi - lo)


@torch.no_grad()
def psnr(pred: torch.Tensor, target: torch.Tensor, value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``(B,)``; ``inf`` for identical images. Inputs are not clamped."""
    _check_pair(pred, target, "psnr")
    mse = (to_unit_range(pred.double(), value_range) - to_unit_range(target.double(), value_range)).pow(2)
    return (-10.0 * torch.log10(mse.mean(dim=(1, 2, 3)))).float()


@torch.no_grad()
def colour_error(pred: torch.Tensor, target: torch.Tensor, value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """Colour cast in 8-bit levels: ``|mean(pred_c) - mean(target_c)|`` over the pixels of each channel,
    averaged over the channels (0 when every channel's mean is right, whatever the detail)."""
    _check_pair(pred, target, "colour_error")
    diff = to_unit_range(pred, value_range).mean((-2, -1)) - to_unit_range(target, value_range).mean((-2, -1))
    return 255 * diff.abs().mean(1)


@torch.no_grad()
def edge_error_ratio(pred: torch.Tensor, target: torch.Tensor, ring: int, inner: int | None = None) -> torch.Tensor:
    """Per image: mean |pred - target| on the outermost ``ring`` pixels of every side, divided by the same
    more than ``inner`` (default ``4 ring``) pixels from every side. 1 = the edge is reconstructed as
    well as the inside; a frame (e.g. a field's outer ring of vectors, ``ring`` = one field cell) shows as
    more than 1."""
    _check_pair(pred, target, "edge_error_ratio")
    inner = 4 * ring if inner is None else inner
    H, W = pred.shape[-2:]
    if ring < 1 or min(H, W) <= 2 * inner:
        raise ValueError(f"{H}x{W} images have no inside beyond {inner} px of the edge")
    err = (pred - target).abs().mean(1)  # (B, H, W)
    edge = torch.ones(H, W, dtype=torch.bool, device=err.device)
    edge[ring:H - ring, ring:W - ring] = False
    centre = err[:, inner:H - inner, inner:W - inner].flatten(1).mean(1)
    return err[:, edge].mean(1) / centre.clamp_min(1e-12)


@torch.no_grad()
def ssim(pred: torch.Tensor, target: torch.Tensor, value_range: ValueRange = (-1.0, 1.0),
         window_size: int = 11) -> torch.Tensor:
    """Structural similarity, ``(B,)``, 1 for identical images. H and W must be >= ``window_size``."""
    import kornia.metrics

    _check_pair(pred, target, "ssim")
    if min(pred.shape[-2:]) < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size}, got {tuple(pred.shape[-2:])}")
    ssim_map = kornia.metrics.ssim(to_unit_range(pred.float(), value_range), to_unit_range(target.float(), value_range),
                                   window_size, max_val=1.0, padding="valid")  # (B, C, H - w + 1, W - w + 1)
    return ssim_map.mean(dim=(1, 2, 3))


@torch.no_grad()
def lpips(pred: torch.Tensor, target: torch.Tensor, net: LPIPS,
          value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """LPIPS-VGG distance, ``(B,)``, 0 for identical images; ``net`` from ``infd.losses.load_lpips()``."""
    _check_pair(pred, target, "lpips")
    to_model = lambda x: 2.0 * to_unit_range(x, value_range) - 1.0  # noqa: E731
    return net(to_model(pred), to_model(target))


def downsample(images: torch.Tensor, size: tuple[int, int],
               mode: Literal["bicubic", "bilinear", "area"] = "bicubic") -> torch.Tensor:
    """Resize ``(B, C, H, W)`` down to ``size`` with an anti-aliasing filter."""
    if mode == "area":
        return F.interpolate(images, size=size, mode="area")
    if mode not in ("bicubic", "bilinear"):
        raise ValueError(f"mode must be 'bicubic', 'bilinear' or 'area', got {mode!r}")
    return F.interpolate(images, size=size, mode=mode, antialias=True, align_corners=False)


@torch.no_grad()
def scale_consistency(render_fn: Callable[[tuple[int, int]], torch.Tensor], r: int | tuple[int, int],
                      mode: Literal["bicubic", "bilinear", "area"] = "bicubic",
                      value_range: ValueRange = (-1.0, 1.0)) -> torch.Tensor:
    """PSNR ``(B,)`` between the render at ``r`` and the render at ``2r`` downsampled to ``r``.

    ``render_fn(size)`` renders the same images at ``size = (H, W)`` and returns ``(B, C, H, W)``
    (e.g. ``lambda s: model.render(phi, *make_query(s, batch=B))``). A renderer that is consistent
    across scales gives a high value. Both renders are clamped to ``value_range`` (as when saved).
    """
    size = (r, r) if isinstance(r, int) else tuple(r)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"r must be a positive int or (H, W), got {r!r}")
    lo, hi = value_range
    low = render_fn(size)
    high = render_fn((2 * size[0], 2 * size[1]))
    if low.shape[-2:] != size or high.shape[-2:] != (2 * size[0], 2 * size[1]):
        raise ValueError(f"render_fn returned {tuple(low.shape)} and {tuple(high.shape)} for sizes {size} "
                         f"and {(2 * size[0], 2 * size[1])}")
    down = downsample(high.float().clamp(lo, hi), size, mode).clamp(lo, hi)
    return psnr(down, low.float().clamp(lo, hi), value_range)
