"""Shared helpers of the diffusion tests: tiny backbone configs and weight perturbation (the tests run
single-threaded: conftest sets torch's thread count once for the session)."""
import torch

from infd.models.unet import UNet, UNetConfig
from infd.models.uvit import UViT, UViTConfig


def tiny_unet(**overrides) -> UNet:
    fields = dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), head_channels=8,
                  norm_groups=8, scale_shift_norm=True)
    return UNet(UNetConfig(**{**fields, **overrides}))


def tiny_uvit(**overrides) -> UViT:
    fields = dict(input_size=8, patch_size=2, dim=32, depth=3, num_heads=4)
    return UViT(UViTConfig(**{**fields, **overrides}))


def perturbed(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Add noise to every parameter, so zero-initialised output layers do not hide wiring bugs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return model.eval()
