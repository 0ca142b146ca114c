"""Arbitrary-scale super-resolution of real photos.

For each photo (its centred square) and scale ``s``, with ``S`` the encoder input size:

    G   = round(s S)                        the output side (s = 2.7, S = 128 -> G = 346)
    gt  = photo resized (Lanczos, antialiased) to G x G
    inp = gt downsampled (bicubic, antialiased) to S x S
    model:   z = E(inp), phi = D(z), render phi at G x G
    bicubic: inp upsampled (bicubic) to G x G

PSNR, SSIM and LPIPS of each against ``gt``, averaged over the photos. Extra models (e.g. an
autoencoder trained with the LIIF renderer) go through the same protocol; all need the same ``S``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import metrics
from .photos import photo_square
from .recon import render_full

BICUBIC = "bicubic"


def sr_size(scale: float, encoder_size: int) -> int:
    """Output side ``round(scale * S)``; ``ValueError`` unless the scale magnifies."""
    if not scale > 1:
        raise ValueError(f"super-resolution scales must be > 1, got {scale}")
    return round(scale * encoder_size)


def sr_pair(data: bytes, scale: float, encoder_size: int, data_config) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inp (3, S, S), gt (3, G, G))`` in [-1, 1] for one photo (see the module doc)."""
    gt = photo_square(data, sr_size(scale, encoder_size), data_config)
    inp = metrics.downsample(gt[None], (encoder_size, encoder_size)).clamp(-1, 1)[0]
    return inp, gt


def bicubic_upsample(inp: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 3, S, S)`` -> ``(B, 3, size, size)``, bicubic (no antialiasing needed upwards), clamped."""
    return F.interpolate(inp, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def super_resolve(model, inp: torch.Tensor, size: int) -> torch.Tensor:
    """Encode ``inp (B, 3, S, S)``, decode the field and render it at ``size x size`` (tiled), in [-1, 1]."""
    return render_full(model, model.decode(model.encode(inp)), size)


def _scores(pred: torch.Tensor, gt: torch.Tensor, lpips_net) -> dict[str, torch.Tensor]:
    out = {"psnr": metrics.psnr(pred, gt), "ssim": metrics.ssim(pred, gt)}
    if lpips_net is not None:
        out["lpips"] = metrics.lpips(pred, gt, lpips_net)
    return out


def check_same_input_size(models: dict) -> int:
    """The encoder input size ``S`` shared by all ``models``; ``ValueError`` naming the odd one out."""
    sizes = {name: model.config.input_size for name, model in models.items()}
    first = next(iter(sizes))
    for name, size in sizes.items():
        if size != sizes[first]:
            raise ValueError(f"super-resolution compares models on one input: {name} takes {size}x{size}, "
                             f"{first} takes {sizes[first]}x{sizes[first]}")
    return sizes[first]


@torch.no_grad()
def evaluate_sr(models: dict, photos: list[bytes], scales, data_config, lpips_net=None, batch: int = 4,
                device="cpu", progress: bool = False) -> dict:
    """Mean SR metrics per scale and method.

    Args:
        models: ``{name: autoencoder}`` (``encode``/``decode``/``render``, one encoder input size).
        photos: encoded photo bytes; ``scales``: magnifications > 1 (e.g. 2, 2.7, 3, 4).
        data_config: from ``photos.eval_data_config``; lpips_net: ``infd.losses.load_lpips()`` or None.
    Returns:
        ``{scale: {"size": G, "methods": {name or "bicubic": {"psnr", "ssim"[, "lpips"]}}}}``.
    """
    S = check_same_input_size(models)
    models = {name: model.to(device).eval() for name, model in models.items()}
    lpips_net = None if lpips_net is None else lpips_net.to(device)
    result = {}
    bar = tqdm(total=len(scales) * len(photos), desc="super-resolution", unit="photo", disable=not progress)
    for scale in scales:
        G = sr_size(scale, S)
        sums: dict[str, dict[str, float]] = {}
        for start in range(0, len(photos), batch):
            pairs = [sr_pair(p, scale, S, data_config) for p in photos[start:start + batch]]
            inp = torch.stack([i for i, _ in pairs]).to(device)
            gt = torch.stack([g for _, g in pairs]).to(device)
            preds = {BICUBIC: bicubic_upsample(inp, G)}
            preds.update({name: super_resolve(model, inp, G) for name, model in models.items()})
            for name, pred in preds.items():
                for metric, values in _scores(pred, gt, lpips_net).items():
                    row = sums.setdefault(name, {})
                    row[metric] = row.get(metric, 0.0) + values.double().sum().item()
            bar.update(len(pairs))
        methods = {name: {m: v / len(photos) for m, v in row.items()} for name, row in sums.items()}
        order = [*models, BICUBIC]  # the evaluated model first, bicubic last
        result[scale] = {"size": G, "methods": {name: methods[name] for name in order}}
    bar.close()
    return result
