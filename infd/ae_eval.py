"""Evaluate a neural-field autoencoder: reconstructions at several output sizes.

For each held-out photo and output size ``s``: encode the photo's encoder input (S x S), render the
field at ``s x s``, and compare with the photo resized to ``s`` (PSNR, SSIM, LPIPS), next to the
baseline of bicubic upsampling of the encoder input. Scale consistency compares the render at ``s``
with the render at ``2s`` downsampled to ``s``. The same renders make the reconstruction grids.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import metrics


@torch.no_grad()
def render_full(model, phi: torch.Tensor, size: int) -> torch.Tensor:
    """Render ``phi (B, C, h, w)`` at ``size x size``: ``(B, 3, size, size)`` in [-1, 1] on ``phi``'s device.

    Tiled (``infd.rendering.engine.render``: equal to a full render, memory bounded by the tile), so
    large sizes and batches fit.
    """
    from .rendering.engine import render

    return render(model.renderer, phi, (size, size)).to(phi.device).clamp(-1, 1)


def load_whole_images(data_config, image_bytes: list[bytes], size: int) -> list[dict]:
    """``data.sample_whole`` of each photo with ground truth at ``size`` (``inp``, ``gt``)."""
    from infd.data import sample_whole

    patches = dataclasses.replace(data_config.patches, whole_size=size)
    return [sample_whole(b, patches, data_config.decode) for b in image_bytes]


def first_images(data_config, count: int) -> list[bytes]:
    """The encoded bytes of the first ``count`` photos of the shards (deterministic order)."""
    from infd.data import expand_urls
    import webdataset as wds

    out = []
    for sample in wds.WebDataset(expand_urls(data_config.urls), shardshuffle=False, empty_check=False):
        data = next((v for k, v in sample.items() if k.lower() in IMAGE_EXTS), None)
        if data is not None:
            out.append(data)
        if len(out) == count:
            break
    return out


IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff")


@torch.no_grad()
def evaluate_autoencoder(model, data_config, image_bytes: list[bytes], sizes=(256, 512, 1024),
                         lpips_net=None, device="cpu") -> dict[int, dict[str, float]]:
    """Mean metrics per output size: ``{s: {psnr, ssim, lpips, psnr_bicubic, ..., scale_consistency}}``."""
    model = model.to(device).eval()
    table = {}
    for s in sizes:
        samples = load_whole_images(data_config, image_bytes, s)
        inp = torch.stack([x["inp"] for x in samples]).to(device)
        gt = torch.stack([x["gt"] for x in samples]).to(device)
        phi = model.decode(model.encode(inp))
        rec = render_full(model, phi, s)
        bicubic = F.interpolate(inp, size=(s, s), mode="bicubic", align_corners=False).clamp(-1, 1)
        row = {}
        for name, pred in (("", rec), ("_bicubic", bicubic)):
            row["psnr" + name] = metrics.psnr(pred, gt).mean().item()
            row["ssim" + name] = metrics.ssim(pred, gt).mean().item()
            if lpips_net is not None:
                row["lpips" + name] = metrics.lpips(pred, gt, lpips_net.to(device)).mean().item()
        row["scale_consistency"] = metrics.scale_consistency(lambda size: render_full(model, phi, size[0]), s).mean().item()
        table[s] = row
    return table


def format_table(table: dict[int, dict[str, float]]) -> str:
    """A Markdown table of ``evaluate_autoencoder``'s result."""
    cols = [c for c in ("psnr", "psnr_bicubic", "ssim", "ssim_bicubic", "lpips", "lpips_bicubic", "scale_consistency")
            if c in next(iter(table.values()))]
    lines = ["| size | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s, row in table.items():
        lines.append(f"| {s} | " + " | ".join(f"{row[c]:.4f}" if "lpips" in c or "ssim" in c else f"{row[c]:.2f}"
                                              for c in cols) + " |")
    return "\n".join(lines)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def reconstruction_grid(model, data_config, image_bytes: list[bytes], sizes, path: str | Path,
                        device="cpu") -> Path:
    """PNG: one row per photo, ground truth and reconstruction side by side at every size."""
    model = model.to(device).eval()
    columns = []  # per size: (gt (N, 3, s, s), rec)
    for s in sizes:
        samples = load_whole_images(data_config, image_bytes, s)
        inp = torch.stack([x["inp"] for x in samples]).to(device)
        columns.append((torch.stack([x["gt"] for x in samples]), render_full(model, model.decode(model.encode(inp)), s)))
    gap, height = 4, max(sizes)
    width = sum(2 * s + 2 * gap for s in sizes)
    canvas = np.full((len(image_bytes) * (height + gap), width, 3), 255, np.uint8)
    for row in range(len(image_bytes)):
        x, y = 0, row * (height + gap)
        for (gt, rec), s in zip(columns, sizes):
            for img in (gt[row], rec[row]):
                canvas[y:y + s, x:x + s] = to_uint8(img)
                x += s + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
