"""Per-sample seeded randomness: a batch reproduces each of its samples drawn alone.

``PerSampleRNG([3, 5])`` holds one ``torch.Generator`` per sample (as EDM's ``StackedRandomGenerator``),
so the noise of sample ``i`` depends only on ``seeds[i]`` and on how many draws came before, never on
the batch size or the other samples. Generators live on the CPU by default and draws are moved to the
target device, so the same seeds give the same noise on CPU and GPU.

Everything that draws noise takes ``rng``: ``None`` (torch's global generator), a ``torch.Generator``
(one stream for the whole batch) or a ``PerSampleRNG``; ``randn_like`` and ``randint`` dispatch on it.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class PerSampleRNG:
    """One generator per batch element, seeded from ``seeds`` (a list of ints)."""

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu"):
        if len(seeds) == 0:
            raise ValueError("PerSampleRNG needs at least one seed")
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def check_batch(self, batch: int):
        if batch != len(self):
            raise ValueError(f"batch of {batch} samples but PerSampleRNG has {len(self)} seeds")

    def randn(self, shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
        """Standard normal ``(len(seeds), *shape)``: row ``i`` from generator ``i``."""
        rows = [torch.randn(tuple(shape), generator=g, device=self.device) for g in self.generators]
        return torch.stack(rows).to(device=device or self.device, dtype=dtype)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``x`` (B, ...), with ``B == len(seeds)``."""
        self.check_batch(x.shape[0])
        return self.randn(x.shape[1:], device=x.device, dtype=x.dtype)

    def randint(self, high: int, device=None) -> torch.Tensor:
        """``(len(seeds),)`` int64 uniform in ``[0, high)``, one draw per generator."""
        rows = [torch.randint(high, (1,), generator=g, device=self.device) for g in self.generators]
        return torch.cat(rows).to(device or self.device)

    def rand(self, device=None) -> torch.Tensor:
        """``(len(seeds),)`` float32 uniform in ``[0, 1)``, one draw per generator."""
        rows = [torch.rand((1,), generator=g, device=self.device) for g in self.generators]
        return torch.cat(rows).to(device or self.device)


RNG = PerSampleRNG | torch.Generator | None


def randn_like(x: torch.Tensor, rng: RNG = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x`` from ``rng`` (see the module docstring)."""
    if rng is None:
        return torch.randn_like(x)
    if isinstance(rng, PerSampleRNG):
        return rng.randn_like(x)
    return torch.randn(x.shape, generator=rng, device=rng.device).to(device=x.device, dtype=x.dtype)


def randint(high: int, batch: int, device, rng: RNG = None) -> torch.Tensor:
    """``(batch,)`` int64 uniform in ``[0, high)`` from ``rng``."""
    if rng is None:
        return torch.randint(high, (batch,), device=device)
    if isinstance(rng, PerSampleRNG):
        rng.check_batch(batch)
        return rng.randint(high, device=device)
    return torch.randint(high, (batch,), generator=rng, device=rng.device).to(device)


def rand(batch: int, device, rng: RNG = None) -> torch.Tensor:
    """``(batch,)`` float32 uniform in ``[0, 1)`` from ``rng``."""
    if rng is None:
        return torch.rand((batch,), device=device)
    if isinstance(rng, PerSampleRNG):
        rng.check_batch(batch)
        return rng.rand(device=device)
    return torch.rand((batch,), generator=rng, device=rng.device).to(device)
