"""Stage-2 speed: a training step on cached latents vs. encoding every batch, and sampler throughput.

A training step is forward + backward + optimiser step of the backbone on a batch of latents. The
"cached" step reads the batch from a latent shard (``data.latents``: tar -> safetensors -> batch); the
"encode" step runs the autoencoder's encoder on ``(B, 3, S, S)`` inputs first, as a trainer without a
cache would (image decoding and resizing, which it would also pay, are not counted, so the speedup is
a lower bound). The two alternate (cached, encode, cached, ...) in one process, and the speedup is the
median of the per-pair ratios, which holds up on a shared machine.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from infd.data.latents import LatentDataConfig, LatentShardWriter, make_latent_loader

from ..diffusion.config import DiffusionConfig, build_backbone, build_schedule
from ..diffusion.objective import diffusion_loss
from ..diffusion.samplers import SAMPLERS


@dataclass
class StepBench:
    """Seconds per training step for each variant, one entry per (interleaved) repeat."""

    batch: int
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def speedup(self, base: str = "encode", new: str = "cached") -> float:
        """Median over repeats of ``time(base) / time(new)``."""
        return statistics.median(b / n for b, n in zip(self.seconds[base], self.seconds[new]))


@dataclass
class SamplerBench:
    name: str
    steps: int
    batch: int
    seconds: float

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps

    def latents_per_second(self, steps: int | None = None) -> float:
        """Latents per second for a full sample of ``steps`` steps (default: the steps timed)."""
        return self.batch / (self.seconds_per_step * (steps or self.steps))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def benchmark_training_step(diffusion: DiffusionConfig, encoder, batch_size: int = 2, repeats: int = 3,
                            log: Callable[[str], None] = print) -> StepBench:
    """Time training steps of ``diffusion``'s backbone on cached latents and on ``encoder.encode`` outputs.

    ``encoder`` is an autoencoder (``encode``, ``config.input_size``); latents have its output shape.
    """
    torch.manual_seed(0)
    backbone = build_backbone(diffusion).train()
    schedule = build_schedule(diffusion)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4, weight_decay=0.01)
    encoder = encoder.eval()
    S = encoder.config.input_size
    inp = torch.rand(batch_size, 3, S, S) * 2 - 1  # (B, 3, S, S)
    with torch.no_grad():
        latent_shape = tuple(encoder.encode(inp[:1]).shape[1:])
    prediction = diffusion.objective.prediction

    def step(z: torch.Tensor):
        loss = diffusion_loss(backbone, z, schedule, prediction=prediction).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def encode_step():
        with torch.no_grad():
            z = encoder.encode(inp)
        step(z)

    result = StepBench(batch=batch_size, seconds={"cached": [], "encode": []})
    with tempfile.TemporaryDirectory() as folder:
        with LatentShardWriter(str(Path(folder) / "lat-%02d.tar")) as writer:
            for i in range(batch_size * (repeats + 1)):
                writer.write(f"{i:06d}", torch.randn(latent_shape), {})
        config = LatentDataConfig(urls=str(Path(folder) / "lat-00.tar"), batch_size=batch_size, shuffle_buffer=0)
        batches = iter(make_latent_loader(config))
        variants = {"cached": lambda: step(next(batches)["z"]), "encode": encode_step}
        for fn in variants.values():  # warm-up: thread pools, allocator, first-call costs
            fn()
        for r in range(repeats):
            for name, fn in variants.items():
                seconds = _timed(fn)
                result.seconds[name].append(seconds)
                log(f"repeat {r + 1}/{repeats} train step {name}: {seconds:.3f} s")
    return result


@torch.no_grad()
def benchmark_samplers(diffusion: DiffusionConfig, latent_shape: tuple[int, int, int], batch_size: int = 2,
                       steps: int = 5, samplers=tuple(SAMPLERS), log: Callable[[str], None] = print) -> list[SamplerBench]:
    """Time ``steps`` steps of each sampler on a batch of ``latent_shape`` noise (untrained backbone)."""
    torch.manual_seed(0)
    backbone = build_backbone(diffusion).eval()
    schedule = build_schedule(diffusion)
    x_T = torch.randn(batch_size, *latent_shape)
    backbone(x_T, torch.zeros(batch_size, dtype=torch.long), None)  # warm-up
    results = []
    for name in samplers:
        seconds = _timed(lambda: SAMPLERS[name](backbone, x_T, schedule, steps,
                                                prediction=diffusion.objective.prediction))
        results.append(SamplerBench(name, steps, batch_size, seconds))
        log(f"sampler {name}: {steps} steps of batch {batch_size} in {seconds:.3f} s")
    return results
