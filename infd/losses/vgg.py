"""The VGG16 convolutional trunk (``features``) in plain torch, laid out like torchvision's.

``make_vgg16_features()`` returns the same 31-layer ``nn.Sequential`` as torchvision's
``vgg16().features`` (3x3 convs with padding 1, ReLU, 2x2 max-pools), so its state-dict keys
(``0.weight`` ... ``28.bias``) and layer indices match. LPIPS taps the ReLU outputs
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, at indices 3, 8, 15, 22 and 29.
"""
from __future__ import annotations

import torch
from torch import nn

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool (VGG "configuration D").
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# Indices in ``features`` of the ReLUs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
LPIPS_TAPS = (3, 8, 15, 22, 29)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def vgg16_conv_indices() -> list[int]:
    """Indices of the 13 convs in ``features``: ``[0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]``."""
    indices, i = [], 0
    for item in VGG16_LAYOUT:
        if item == "M":
            i += 1
        else:
            indices.append(i)
            i += 2  # conv, relu
    return indices


def make_vgg16_features() -> nn.Sequential:
    """The 31 layers of VGG16's ``features``, randomly initialised."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = item
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG16 trunk returning the activations at ``taps``: ``x (B, 3, H, W) -> [(B, C_k, H / 2^k, W / 2^k)]``.

    Runs the layers only up to the last tap (for LPIPS: up to relu5_3, skipping the final pool).
    """

    def __init__(self, taps: tuple[int, ...] = LPIPS_TAPS):
        super().__init__()
        self.features = make_vgg16_features()
        relus = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.ReLU)]
        # Only ReLU outputs: a tapped conv output would be overwritten by the in-place ReLU after it.
        if not taps or list(taps) != sorted(set(taps)) or not set(taps) <= set(relus):
            raise ValueError(f"taps must be increasing ReLU indices of VGG16 features {relus}, got {taps}")
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                outputs.append(x)
        return outputs
