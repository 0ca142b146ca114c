"""Shared helpers of the evaluation tests: synthetic photos and shards, tiny models, a tiny feature extractor."""
import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from infd.data.shards import ShardWriter
from infd.config import load_config
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from infd.renderers import RendererConfig

ROOT = Path(__file__).resolve().parents[1]


def photo(seed: int, size: tuple[int, int] = (72, 56)) -> Image.Image:
    """A smooth random RGB photo of ``size = (width, height)`` (upsampled noise plus a little grain)."""
    gen = torch.Generator().manual_seed(seed)
    W, H = size
    coarse = torch.rand(1, 3, 6, 6, generator=gen)
    smooth = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)[0]
    pixels = (smooth + 0.05 * torch.rand(3, H, W, generator=gen)).clamp(0, 1)
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_photo_shards(folder: Path, name: str, seeds, per_shard: int = 2) -> list[str]:
    """Shards ``folder/name-NN.tar`` of PNG photos (one per seed, a few sizes and aspect ratios)."""
    sizes = [(72, 56), (60, 60), (50, 80)]
    writer = ShardWriter(str(folder / f"{name}-%02d.tar"), max_count=per_shard)
    for i, seed in enumerate(seeds):
        writer.write(f"{name}{seed:04d}", {"png": png_bytes(photo(seed, sizes[i % len(sizes)]))})
    return writer.close()


def tiny_autoencoder(renderer: str = "clif", seed: int = 0) -> NeuralFieldAutoencoder:
    """``configs/ae/tiny.yaml`` (input 32, f4) with random weights, CLIF or LIIF renderer."""
    config = load_config(AutoencoderConfig, ROOT / "configs" / "ae" / "tiny.yaml")
    if renderer != "clif":
        config = dataclasses.replace(config, renderer=RendererConfig(name=renderer, args={"hidden": [16, 16]}))
    torch.manual_seed(seed)
    return NeuralFieldAutoencoder(config).eval()


def tiny_bundle(seed: int = 0):
    """A latent diffusion bundle of the tiny autoencoder and the tiny UNet, output layers randomised."""
    from infd.diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
    from infd.diffusion.config import load_diffusion_config

    config = LatentDiffusionConfig(autoencoder=tiny_autoencoder().config,
                                   diffusion=load_diffusion_config(ROOT / "configs" / "dm" / "unet_tiny.yaml"))
    torch.manual_seed(seed)
    bundle = LatentDiffusion(config).eval()
    with torch.no_grad():  # zero-initialised output convs would make every sample the same
        for p in bundle.backbone.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return bundle


class TinyExtractor(nn.Module):
    """A fixed random conv net standing in for Inception: images (B, 3, H, W) -> features (B, 12)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.Tanh(), nn.Conv2d(8, 3, 3), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten())

    @torch.no_grad()
    def forward(self, images):
        return self.net(images.float())
