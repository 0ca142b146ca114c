"""Latent regularisers: vector quantisation (VQ) and a diagonal Gaussian (KL)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with the straight-through estimator (VQ-VAE, van den Oord 2017).

    Loss (standard weighting, Eq. 3): ``||sg[z] - e||^2 + beta ||z - sg[e]||^2`` (codebook term
    weight 1, commitment term weight ``beta``).
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.embedding = nn.Embedding(num_codes, dim)
        self.embedding.weight.data.uniform_(-1.0 / num_codes, 1.0 / num_codes)

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
        """Code index ``(N,)`` nearest to each row of ``flat (N, D)`` (chunked to bound memory)."""
        codes = self.embedding.weight.to(flat.dtype)
        norms = (codes * codes).sum(1)
        out = [torch.argmin(norms - 2 * rows @ codes.t(), dim=1) for rows in flat.split(chunk)]
        return torch.cat(out) if out else flat.new_zeros(0, dtype=torch.long)

    def forward(self, z: torch.Tensor):
        """``z (B, D, h, w)`` -> ``(z_q (B, D, h, w), loss (), indices (B, h, w))``."""
        B, D, h, w = z.shape
        flat = rearrange(z, "b d h w -> (b h w) d")
        idx = self.nearest(flat.detach())
        z_q = rearrange(self.embedding(idx), "(b h w) d -> b d h w", b=B, h=h, w=w)
        loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()  # straight-through gradient to the encoder
        return z_q, loss, idx.view(B, h, w)


class DiagonalGaussian:
    """``N(mean, exp(logvar))`` from moments ``(B, 2D, h, w)``; KL to ``N(0, I)`` summed per sample."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """``0.5 * sum(mu^2 + var - 1 - log var)`` per sample, shape ``(B,)``."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))
