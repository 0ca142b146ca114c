"""Stage-2 sample grids: fixed seeds sampled by a diffusion bundle, rendered at several sizes.

One row per seed; one column per output size (top-aligned on a white canvas), so the same sample can
be compared across resolutions and across training steps (the seeds never change).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..rendering.engine import render_latent
from ..diffusion.sampling import SamplingSpec
from ..rendering.sampling import sample_latents
from ..rendering import sinks
from ..rendering.sinks import quantize


@torch.no_grad()
def sample_images(bundle, seeds: list[int], sizes, *, steps: int, sampler: str = "ddim",
                  guidance: float = 1.0) -> list[torch.Tensor]:
    """Per size, the renders ``(len(seeds), 3, s, s)`` in [-1, 1] (on the autoencoder's device) of the seeds' samples.

    A class-conditional bundle samples seed ``i`` of the list with class ``i % num_classes``.
    """
    num_classes = getattr(bundle, "num_classes", None)
    device = next(bundle.autoencoder.parameters()).device
    if num_classes is None:
        z = sample_latents(bundle, seeds, SamplingSpec(sampler, steps))
    else:
        z = torch.cat([sample_latents(bundle, [seed], SamplingSpec(sampler, steps, guidance, i % num_classes))
                       for i, seed in enumerate(seeds)])
    z = z.to(device)  # (N, C, h, w)
    return [render_latent(bundle, z, (s, s)).clamp(-1, 1) for s in sizes]


def save_grid(columns: list[torch.Tensor], path: str | Path) -> Path:
    """PNG of ``columns`` (per size ``(N, 3, s, s)`` in [-1, 1]): row ``i`` holds sample ``i`` at every size."""
    return sinks.save_grid([quantize(c) for c in columns], path)


def sample_grid(bundle, seeds: list[int], sizes, path: str | Path, *, steps: int, sampler: str = "ddim",
                guidance: float = 1.0) -> Path:
    """Sample ``seeds`` with ``bundle`` (``steps`` of ``sampler``), render at ``sizes`` and save the grid."""
    return save_grid(sample_images(bundle, seeds, sizes, steps=steps, sampler=sampler, guidance=guidance), path)
