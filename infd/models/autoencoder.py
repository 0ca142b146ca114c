"""The neural-field autoencoder: ``z = E(inp)``, ``phi = D(z)``, ``rgb = R(phi, coord, cell)``.

Encoder and decoder follow the LDM autoencoder family (a downsampling factor ``f = 2^(levels-1)``
set by ``channel_mult``); the decoder drops LDM's RGB head and returns the feature field ``phi``
(INFD, Sec. 3.1), which a renderer from ``renderers/`` turns into pixels on any grid. The latent is
regularised by vector quantisation (``vq``), a diagonal Gaussian (``kl``) or nothing (``none``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from infd.renderers import RendererConfig, make_renderer

from ..registry import register_model
from .blocks import AttnBlock, Downsample, MidBlock, ResnetBlock, Upsample, group_norm
from .bottleneck import DiagonalGaussian, VectorQuantizer


# Output side / field side that training patches reach in the paper's setting (GT up to 1024 for a
# 256 field) and in configs/train/ae_cpu.yaml (512 for 128): the default for checkpoints without a record.
DEFAULT_MAX_MAGNIFICATION = 4.0


@dataclass
class AutoencoderConfig:
    input_size: int = 256  # the encoder's fixed (square) input size
    in_channels: int = 3  # image channels (RGB)
    channels: int = 128  # width of the first encoder level
    channel_mult: tuple[int, ...] = (1, 2, 4)  # width multipliers per level; len - 1 halvings: f = 2^(len - 1)
    num_res_blocks: int = 2  # residual blocks per level (the decoder has one more, as in LDM)
    attn_resolutions: tuple[int, ...] = ()  # feature sizes (pixels a side) that get self-attention
    mid_attention: bool = True  # self-attention in the middle block of the encoder and decoder
    dropout: float = 0.0  # in the residual blocks
    norm_groups: int = 32  # GroupNorm groups (capped at each layer's width)
    z_channels: int = 3  # latent channels: z is z_channels x (input_size / f)^2
    bottleneck: Literal["vq", "kl", "none"] = "vq"  # VQ codebook, KL-regularised Gaussian, or none
    num_codes: int = 8192  # VQ codebook size
    beta: float = 0.25  # VQ commitment weight
    field_channels: int = 128  # width of phi; a 3x3 conv is added if it differs from channels * mult[0]
    renderer: RendererConfig = field(default_factory=RendererConfig)
    # Largest output side / field side the renderer renders natively; beyond it the rendering engine
    # renders at this magnification and resamples (infd.rendering.magnify). Training fills it in from the
    # data (max_size / field side); None (checkpoints from before it existed): DEFAULT_MAX_MAGNIFICATION.
    max_magnification: float | None = None
    # Latent positions mirrored (reflect padding) onto every side of z before the field decoder; the field
    # of the padding is cropped away. With 0 the decoder's zero-padded convolutions see the latent's border,
    # and the outermost field cells decode worse than the inner ones (the frame of issue 13). Training and
    # inference both decode through it (decode_field), so they see the same border.
    decode_padding: int = 0

    def __post_init__(self):
        factor = 2 ** (len(self.channel_mult) - 1)
        if not self.channel_mult:
            raise ValueError("channel_mult must not be empty")
        for name in ("input_size", "in_channels", "channels", "z_channels", "field_channels", "norm_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(self.channel_mult) < 1 or self.num_res_blocks < 0 or (self.bottleneck == "vq" and self.num_codes < 1):
            raise ValueError(f"channel_mult entries, num_codes must be >= 1 and num_res_blocks >= 0, got "
                             f"{list(self.channel_mult)}, {self.num_codes}, {self.num_res_blocks}")
        widths = [self.channels * m for m in self.channel_mult]
        if any(w % min(self.norm_groups, w) for w in widths):  # group_norm caps the groups at the width
            raise ValueError(f"norm_groups {self.norm_groups} must divide every width channels x channel_mult "
                             f"({widths})")
        if self.input_size % factor:
            raise ValueError(f"input_size {self.input_size} is not divisible by the downsampling factor {factor}")
        if not 0 <= self.decode_padding < self.input_size // factor:
            raise ValueError(f"decode_padding must be in [0, latent side {self.input_size // factor}), "
                             f"got {self.decode_padding}")
        if self.max_magnification is not None and not self.max_magnification >= 1:
            raise ValueError(f"max_magnification must be >= 1 (output side / field side), got {self.max_magnification}")

    @property
    def factor(self) -> int:
        """Downsampling factor from image to latent (and upsampling from latent to field)."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.input_size // self.factor


class Encoder(nn.Module):
    """``(B, in_channels, S, S) -> (B, out_channels, S / f, S / f)`` (LDM encoder layout)."""

    def __init__(self, c: AutoencoderConfig, out_channels: int):
        super().__init__()
        g = c.norm_groups
        self.conv_in = nn.Conv2d(c.in_channels, c.channels, 3, padding=1)
        widths = [c.channels * m for m in (1, *c.channel_mult)]
        resolution = c.input_size
        self.down = nn.ModuleList()
        for level, mult in enumerate(c.channel_mult):
            stage = nn.Module()
            block_in, block_out = widths[level], widths[level + 1]
            stage.block = nn.ModuleList()
            stage.attn = nn.ModuleList()
            for _ in range(c.num_res_blocks):
                stage.block.append(ResnetBlock(block_in, block_out, c.dropout, g))
                stage.attn.append(AttnBlock(block_out, g) if resolution in c.attn_resolutions else nn.Identity())
                block_in = block_out
            if level != len(c.channel_mult) - 1:
                stage.downsample = Downsample(block_in)
                resolution //= 2
            self.down.append(stage)
        self.mid = MidBlock(block_in, c.mid_attention, c.dropout, g)
        self.norm_out = group_norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for stage in self.down:
            for block, attn in zip(stage.block, stage.attn):
                h = attn(block(h))
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class FieldDecoder(nn.Module):
    """``z (B, z_channels, h, w) -> phi (B, field_channels, h f, w f)``: the LDM decoder minus its RGB head."""

    def __init__(self, c: AutoencoderConfig):
        super().__init__()
        g = c.norm_groups
        block_in = c.channels * c.channel_mult[-1]
        resolution = c.latent_size
        self.conv_in = nn.Conv2d(c.z_channels, block_in, 3, padding=1)
        self.mid = MidBlock(block_in, c.mid_attention, c.dropout, g)
        up = []
        for level in reversed(range(len(c.channel_mult))):
            stage = nn.Module()
            block_out = c.channels * c.channel_mult[level]
            stage.block = nn.ModuleList()
            stage.attn = nn.ModuleList()
            for _ in range(c.num_res_blocks + 1):
                stage.block.append(ResnetBlock(block_in, block_out, c.dropout, g))
                stage.attn.append(AttnBlock(block_out, g) if resolution in c.attn_resolutions else nn.Identity())
                block_in = block_out
            if level != 0:
                stage.upsample = Upsample(block_in)
                resolution *= 2
            up.insert(0, stage)  # self.up[level], as in LDM
        self.up = nn.ModuleList(up)
        self.norm_out = group_norm(block_in, g)
        self.conv_out = (nn.Conv2d(block_in, c.field_channels, 3, padding=1)
                         if c.field_channels != block_in else None)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for block, attn in zip(stage.block, stage.attn):
                h = attn(block(h))
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        phi = F.silu(self.norm_out(h))
        return phi if self.conv_out is None else self.conv_out(phi)


@register_model("autoencoder", AutoencoderConfig)
class NeuralFieldAutoencoder(nn.Module):
    """Encoder + bottleneck + field decoder + renderer.

    - ``encode(inp (B, 3, S, S) in [-1, 1]) -> z (B, z_channels, S/f, S/f)``: the continuous latent
      (before quantisation for VQ, the mean for KL) that stage 2 learns to generate.
    - ``decode(z) -> phi (B, field_channels, S, S)``: quantises (VQ) then decodes the field.
    - ``render(phi, coord, cell) -> rgb (B, 3, H, W)``: any grid, any crop.
    """

    PARTS = ("encoder", "quant_conv", "quantize", "post_quant_conv", "decoder", "renderer")  # its submodules

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = c = config
        moments = 2 * c.z_channels if c.bottleneck == "kl" else c.z_channels
        self.encoder = Encoder(c, moments)
        self.quant_conv = nn.Conv2d(moments, moments, 1)
        self.quantize = VectorQuantizer(c.num_codes, c.z_channels, c.beta) if c.bottleneck == "vq" else None
        self.post_quant_conv = nn.Conv2d(c.z_channels, c.z_channels, 1)
        self.decoder = FieldDecoder(c)
        self.renderer = make_renderer(c.renderer, c.field_channels)
        # Read by the rendering engine (like ``radius``): where native rendering stops.
        self.renderer.max_magnification = c.max_magnification or DEFAULT_MAX_MAGNIFICATION

    def prepare_input(self, img: torch.Tensor) -> torch.Tensor:
        """Resize a square ``(B, 3, H, W)`` image to the encoder's input size (antialiased bicubic)."""
        S = self.config.input_size
        if img.shape[-2:] == (S, S):
            return img
        if img.shape[-1] != img.shape[-2]:
            raise ValueError(f"the encoder takes square images, got {tuple(img.shape[-2:])}; crop or pad first")
        return F.interpolate(img, size=(S, S), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)

    def _moments(self, inp: torch.Tensor) -> torch.Tensor:
        S = self.config.input_size
        if inp.shape[-2:] != (S, S):
            raise ValueError(f"encoder input must be {S}x{S}, got {tuple(inp.shape[-2:])} (use prepare_input)")
        return self.quant_conv(self.encoder(inp))

    def encode(self, inp: torch.Tensor) -> torch.Tensor:
        """Continuous latent ``z`` of ``inp (B, 3, S, S)``."""
        moments = self._moments(inp)
        return DiagonalGaussian(moments).mode() if self.config.bottleneck == "kl" else moments

    def decode(self, z: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        """Field ``phi`` of a latent ``z``; VQ models snap ``z`` to the codebook first (unless told not to)."""
        if self.quantize is not None and quantize:
            z = self.quantize(z)[0]
        return self.decode_field(z)

    def decode_field(self, z: torch.Tensor) -> torch.Tensor:
        """Field of a (quantised) latent ``z (B, C, h, w)``: ``decode_padding`` latent positions mirrored onto
        each side (at most ``side - 1``, what reflection allows), decoded, and the padding's field cropped."""
        p = min(self.config.decode_padding, z.shape[-2] - 1, z.shape[-1] - 1)
        if p < 1:
            return self.decoder(self.post_quant_conv(z))
        phi = self.decoder(self.post_quant_conv(F.pad(z, (p, p, p, p), mode="reflect")))
        f = phi.shape[-1] // (z.shape[-1] + 2 * p)  # field positions per latent position
        return phi[..., p * f:phi.shape[-2] - p * f, p * f:phi.shape[-1] - p * f]

    def render(self, phi: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.renderer(phi, coord, cell)

    def bottleneck(self, moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time ``(z, reg ())`` of the encoder's moments: VQ (quantised, its loss), KL (a sample,
        the mean KL) or none (the moments, 0)."""
        if self.config.bottleneck == "vq":
            z, reg, _ = self.quantize(moments)
        elif self.config.bottleneck == "kl":
            posterior = DiagonalGaussian(moments)
            z, reg = posterior.sample(), posterior.kl().mean()
        else:
            z, reg = moments, moments.new_zeros(())
        return z, reg

    def forward(self, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor):
        """Training pass: ``(rgb (B, 3, H, W), reg_loss ())``, the bottleneck's VQ or KL term."""
        z, reg = self.bottleneck(self._moments(inp))
        phi = self.decode_field(z)
        return self.render(phi, coord, cell), reg


def load_autoencoder(path, device="cpu") -> NeuralFieldAutoencoder:
    """The frozen (eval, no grad) autoencoder of a checkpoint: an autoencoder, or a diffusion bundle's."""
    from ..checkpoint import CheckpointError, load_model

    model = load_model(path, device)
    model = getattr(model, "autoencoder", model)
    if not isinstance(model, NeuralFieldAutoencoder):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not an autoencoder")
    return model.eval().requires_grad_(False)
