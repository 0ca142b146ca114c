"""Reconstruction of held-out photos by an autoencoder, at several output sizes.

For each photo and output size ``s``: encode the photo's encoder input (S x S), render the field at
``s x s`` and compare with the photo resized to ``s`` (PSNR, SSIM, LPIPS), next to bicubic
upsampling of the encoder input and of the model's own render at S (``*_own_bicubic``: does rendering
at ``s`` beat resizing the model's encoder-size output?). ``colour_error`` is the colour cast in 8-bit
levels (``metrics.colour_error``); ``edge_error_ratio`` the error on the outermost field cell over the
error inside (``metrics.edge_error_ratio``; 1 = no frame). Scale consistency compares the render at ``s`` with the render at
``2s`` downsampled to ``s``. The same renders make the reconstruction grids of the training loop.
Photos are read with ``photos.eval_data_config`` (exact decoding), as ``tools/eval.py`` reads them.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import metrics
from ..rendering.engine import render
from ..rendering.sinks import quantize, save_grid
from .photos import eval_data_config, load_whole_images


@torch.no_grad()
def render_full(model, phi: torch.Tensor, size: int) -> torch.Tensor:
    """Render ``phi (B, C, h, w)`` at ``size x size``: ``(B, 3, size, size)`` in [-1, 1] on ``phi``'s device.

    Tiled (``infd.rendering.engine.render``: equal to a full render, memory bounded by the tile), so
    large sizes and batches fit.
    """
    return render(model.renderer, phi, (size, size)).clamp(-1, 1)


def _bicubic(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize to ``size x size`` (antialiased when shrinking), clamped to [-1, 1]."""
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False,
                         antialias=size < images.shape[-1]).clamp(-1, 1)


@torch.no_grad()
def evaluate_autoencoder(model, data_config, image_bytes: list[bytes], sizes=(256, 512, 1024),
                         lpips_net=None, device="cpu") -> dict[int, dict[str, float]]:
    """Mean metrics per output size: ``{s: {psnr, ssim, lpips, colour_error, psnr_bicubic, ...,
    psnr_own_bicubic, ... (sizes other than S), scale_consistency}}``.

    ``data_config``: from ``photos.eval_data_config``; ``lpips_net``: ``infd.losses.load_lpips()`` or
    ``None`` (no LPIPS columns).
    """
    model = model.to(device).eval()
    S = model.config.input_size
    table = {}
    for s in sizes:
        samples = load_whole_images(data_config, image_bytes, s)
        inp = torch.stack([x["inp"] for x in samples]).to(device)  # (N, 3, S, S)
        gt = torch.stack([x["gt"] for x in samples]).to(device)  # (N, 3, s, s)
        phi = model.decode(model.encode(inp))
        rec = render_full(model, phi, s)
        methods = [("", rec), ("_bicubic", _bicubic(inp, s))]
        if s != S:
            methods.append(("_own_bicubic", _bicubic(render_full(model, phi, S), s)))
        row = {"colour_error": metrics.colour_error(rec, gt).mean().item()}
        ring = max(1, s // phi.shape[-1])  # one field cell
        if s > 8 * ring:  # the outermost cell vs the inside: a frame of badly learnt edge vectors shows as > 1
            row["edge_error_ratio"] = metrics.edge_error_ratio(rec, gt, ring).mean().item()
        for name, pred in methods:
            row["psnr" + name] = metrics.psnr(pred, gt).mean().item()
            row["ssim" + name] = metrics.ssim(pred, gt).mean().item()
            if lpips_net is not None:
                row["lpips" + name] = metrics.lpips(pred, gt, lpips_net.to(device)).mean().item()
        row["scale_consistency"] = metrics.scale_consistency(lambda size: render_full(model, phi, size[0]),
                                                             s).mean().item()
        table[s] = row
    return table


@torch.no_grad()
def reconstruction_grid(model, data_config, image_bytes: list[bytes], sizes, path: str | Path,
                        device="cpu") -> Path:
    """PNG: one row per photo, ground truth and reconstruction side by side at every size.

    ``data_config`` is where the photos come from (e.g. a training run's ``val_data``): its decoding
    limits are kept, and the photos are made as every evaluation makes them
    (``photos.eval_data_config`` for the model's encoder input), so the grid shows what
    ``tools/eval.py`` measures.
    """
    model = model.to(device).eval()
    data_config = eval_data_config(data_config.urls, model.config.input_size, data_config.decode)
    columns = []  # per size: gt and rec (N, s, s, 3) uint8
    for s in sizes:
        samples = load_whole_images(data_config, image_bytes, s)
        inp = torch.stack([x["inp"] for x in samples]).to(device)
        rec = render_full(model, model.decode(model.encode(inp)), s)
        columns += [quantize(torch.stack([x["gt"] for x in samples])), quantize(rec)]
    return save_grid(columns, path)
