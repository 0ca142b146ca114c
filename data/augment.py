"""Colour and geometry augmentation, one drawn set of parameters applied identically to ``inp``
and ``gt`` (pure functions of a ``(3, H, W)`` tensor in [-1, 1]).

Geometry is the dihedral group of the square: a horizontal flip, then a vertical flip, then
``k`` quarter turns (``torch.rot90``, counter-clockwise). For a patch sampler the crop is taken
from the pre-image of the requested crop (``source_region``), so ``coord`` keeps describing the
crop in the transformed ``r x r`` image; mirrored context past the border stays consistent, since
the dihedral maps commute with mirroring at the square's edges.

Colour works in HSV (kornia's hexcone model, on [0, 1] RGB): hue rotated by ``delta`` degrees,
saturation and value (brightness) scaled by factors, each clamped to [0, 1], then an optional
channel permutation. Every op is per pixel, so it commutes with cropping exactly.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from kornia.color import hsv_to_rgb, rgb_to_hsv

from infd.renderers.coords import Region

_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


@dataclass
class AugmentConfig:
    """Which augmentations run (all off by default: samples stay as without augmentation).

    hue_degrees: hue rotation drawn uniformly in [-h, h] degrees.
    saturation: saturation factor drawn uniformly in [1 - s, 1 + s].
    brightness: value (brightness) factor drawn uniformly in [1 - b, 1 + b].
    channel_permutation: RGB channels in one of the 6 orders, uniformly.
    rot90: k quarter turns, k uniform in 0..3.
    hflip, vflip: horizontal / vertical flip, each with p = 0.5.
    """

    hue_degrees: float = 0.0
    saturation: float = 0.0
    brightness: float = 0.0
    channel_permutation: bool = False
    rot90: bool = False
    hflip: bool = False
    vflip: bool = False

    def __post_init__(self):
        for name in ("hue_degrees", "saturation", "brightness"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.saturation > 1 or self.brightness > 1:
            raise ValueError("saturation and brightness jitter must be <= 1 (factors stay >= 0)")


@dataclass(frozen=True)
class AugmentParams:
    """One drawn augmentation: geometry ``(hflip, vflip, k)`` and colour."""

    hflip: bool = False
    vflip: bool = False
    k: int = 0
    hue_degrees: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    permutation: tuple[int, int, int] = (0, 1, 2)

    @property
    def has_colour(self) -> bool:
        return (self.hue_degrees % 360 != 0 or self.saturation != 1 or self.brightness != 1)


def sample_params(config: AugmentConfig, rng: random.Random) -> AugmentParams:
    """Draw parameters in a fixed order (hflip, vflip, k, hue, saturation, brightness,
    permutation); a disabled augmentation draws nothing, so an all-off config leaves ``rng``
    untouched."""
    hflip = config.hflip and rng.random() < 0.5
    vflip = config.vflip and rng.random() < 0.5
    k = rng.randrange(4) if config.rot90 else 0
    hue = rng.uniform(-config.hue_degrees, config.hue_degrees) if config.hue_degrees else 0.0
    saturation = rng.uniform(1 - config.saturation, 1 + config.saturation) if config.saturation else 1.0
    brightness = rng.uniform(1 - config.brightness, 1 + config.brightness) if config.brightness else 1.0
    permutation = _PERMUTATIONS[rng.randrange(6)] if config.channel_permutation else (0, 1, 2)
    return AugmentParams(hflip, vflip, k, hue, saturation, brightness, permutation)


def apply_geometry(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """``(..., H, W)``: flip left-right, flip up-down, then ``k`` counter-clockwise quarter turns."""
    if params.hflip:
        x = x.flip(-1)
    if params.vflip:
        x = x.flip(-2)
    return torch.rot90(x, params.k, dims=(-2, -1)) if params.k else x


def source_region(region: Region, side: int, params: AugmentParams) -> Region:
    """The square region of the untransformed ``side x side`` image that ``apply_geometry`` maps
    onto ``region`` (a P x P square) of the transformed one."""
    top, left, P = region.top, region.left, region.height
    assert region.width == P, "only square regions map to regions under quarter turns"
    for _ in range(params.k):  # rot90 once: out[i, j] = in[j, side - 1 - i]
        top, left = left, side - top - P
    if params.vflip:
        top = side - top - P
    if params.hflip:
        left = side - left - P
    return Region(top, left, P, P)


def rotate_hue(hsv: torch.Tensor, degrees: float) -> torch.Tensor:
    """Hue channel of ``(3, H, W)`` HSV (radians in [0, 2 pi)) rotated by ``degrees``."""
    hue = torch.remainder(hsv[0] + torch.pi * (degrees % 360) / 180, 2 * torch.pi)
    return torch.stack([hue, hsv[1], hsv[2]])


def apply_colour(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """``(3, H, W)`` in [-1, 1] -> same shape, in [-1, 1]: HSV hue rotation, saturation and
    brightness scaling, then channel permutation."""
    if params.has_colour:
        rgb = x.add(1).div(2).clamp(0, 1)  # [0, 1]
        hsv = rotate_hue(rgb_to_hsv(rgb), params.hue_degrees)
        h, s, v = hsv.unbind(0)
        hsv = torch.stack([h, (s * params.saturation).clamp(0, 1), (v * params.brightness).clamp(0, 1)])
        x = hsv_to_rgb(hsv).clamp(0, 1).mul(2).sub(1)
    if params.permutation != (0, 1, 2):
        x = x[list(params.permutation)]
    return x


def apply_augment(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Geometry then colour, on ``(3, H, W)`` in [-1, 1]."""
    return apply_colour(apply_geometry(x, params), params)
