"""PatchGAN discriminator (pix2pix, Isola et al. 2017; as used by taming-transformers and LDM).

    conv4x4/2(3 -> 64), LReLU;  (num_layers - 1) x [conv4x4/2, BN, LReLU];  conv4x4/1, BN, LReLU;  conv4x4/1 -> 1

Channels double per layer up to 8x the base. With 3 layers a 256x256 image gives 30x30 logits, each
seeing a 70x70 patch. Layers sit in ``self.main`` in the order of taming's ``NLayerDiscriminator``, so
its state-dict keys (``main.0.weight`` ...) line up with that layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..registry import register_model


@dataclass
class PatchDiscriminatorConfig:
    in_channels: int = 3  # image channels
    base_channels: int = 64  # width of the first layer, doubled per layer (at most 8x)
    num_layers: int = 3  # strided layers: more layers, larger patches judged

    def __post_init__(self):
        for name in ("in_channels", "base_channels", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def init_gan_weights(module: nn.Module) -> None:
    """pix2pix/DCGAN init: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@register_model("patch_discriminator", PatchDiscriminatorConfig)
class PatchDiscriminator(nn.Module):
    """``x (B, C, H, W) -> logits (B, 1, h, w)``, one real/fake logit per overlapping patch."""

    def __init__(self, config: PatchDiscriminatorConfig):
        super().__init__()
        self.config = config
        ndf, n = config.base_channels, config.num_layers
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for i in range(1, n + 1):
            prev, mult = mult, min(2 ** i, 8)
            stride = 2 if i < n else 1  # the last hidden layer keeps the resolution
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(init_gan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
