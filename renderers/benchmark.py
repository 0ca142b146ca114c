"""Render-speed benchmark: our CLIF against the original formulation (``ReferenceCLIF``), same weights.

Timings on a shared machine are noisy, so the two run interleaved (ref, ours, ref, ours, ...) in one
process and the speedup is the median of the per-pair ratios.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .clif import CLIF, CLIFConfig
from .coords import make_query
from .fast import FastCLIF
from .reference import ReferenceCLIF


@dataclass
class BenchResult:
    """Seconds per render for each variant (one entry per repeat) and the image size in pixels."""

    pixels: int
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def megapixels_per_second(self, name: str) -> float:
        return self.pixels / 1e6 / statistics.median(self.seconds[name])

    def speedup(self, base: str = "reference_fp32", new: str = "ours_fp32") -> float:
        """Median over repeats of ``time(base) / time(new)`` (repeats are interleaved pairs)."""
        return statistics.median(b / n for b, n in zip(self.seconds[base], self.seconds[new]))


def _timed(fn: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def benchmark_render(size: int = 1024, field_size: int = 256, field_channels: int = 128, hidden: int = 256,
                     num_blocks: int = 2, repeats: int = 3, bf16_size: int | None = 128, plain: bool = False,
                     workers: int | None = None, log: Callable[[str], None] = print) -> dict[str, BenchResult]:
    """Time ``size x size`` renders from a ``field_channels x field_size^2`` field on CPU.

    Variants: ``reference_fp32`` (grid_sample lookup, NCHW, GroupNorm(32)), ``ours_fp32`` (the
    inference path, ``FastCLIF`` on ``workers`` threads, default torch's thread count) and optionally
    ``ours_plain_fp32`` (the ``CLIF`` module, the training path), all at ``size``; and ``ours_bf16``
    (the module under autocast; on CPUs without native bf16 it is an order of magnitude slower, so it
    runs once at ``bf16_size``, the field scaled alike). Returns ``{"fp32": ..., "bf16": ...}``.
    Torch's thread count is the caller's (the benchmark never changes it).
    """
    torch.manual_seed(0)
    config = CLIFConfig(field_channels=field_channels, hidden=hidden, num_blocks=num_blocks)
    ours = CLIF(config).eval()
    reference = ReferenceCLIF(config).eval()
    reference.load_state_dict(ours.state_dict(), strict=False)  # same convs; GroupNorm at its init
    fast = FastCLIF(ours, workers)  # its Winograd weights are made here, outside the timings
    phi = torch.randn(1, field_channels, field_size, field_size)
    coord, cell = make_query((size, size))
    variants = {"reference_fp32": lambda: reference(phi, coord, cell), "ours_fp32": lambda: fast(phi, coord, cell)}
    if plain:
        variants["ours_plain_fp32"] = lambda: ours(phi, coord, cell)
    result = BenchResult(pixels=size * size, seconds={name: [] for name in variants})
    with torch.inference_mode():
        warm_coord, warm_cell = make_query((32, 32))  # one-off costs: thread pools, first-call allocations
        for model in (reference, fast):
            model(phi[:, :, :8, :8], warm_coord, warm_cell)
        for r in range(repeats):
            for name, fn in variants.items():
                seconds = _timed(fn)
                result.seconds[name].append(seconds)
                log(f"repeat {r + 1}/{repeats} {name}: {seconds:.2f} s")
        results = {"fp32": result}
        if bf16_size:
            small_field = max(1, round(field_size * bf16_size / size))
            phi_small = torch.randn(1, field_channels, small_field, small_field)
            coord_small, cell_small = make_query((bf16_size, bf16_size))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                seconds = _timed(lambda: ours(phi_small, coord_small, cell_small))
            results["bf16"] = BenchResult(pixels=bf16_size ** 2, seconds={"ours_bf16": [seconds]})
            log(f"ours_bf16 at {bf16_size}^2 from a {small_field}^2 field: {seconds:.2f} s")
    return results
