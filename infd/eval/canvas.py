"""Canvas figures (issue 18): seams across window borders of a ``--canvas grow`` render, and the cost per
latent position of joint sampling as the canvas grows.

**Seam ratio.** The cell-border measure of ``infd.eval.zoom`` with window borders in place of field
cells: the mean absolute difference between neighbouring pixels on the pixel pairs where the latent
position crosses a window border, divided by the same on every other pair (1.0 = no visible seam).
Window borders are the latent positions where a window starts or ends inside the canvas: those of the
sampler's last step (``plan_windows`` at its last timestep: fixed windows for ``overlap``, the last
grid of ``shifted``) and those of the decoder's windows (``decode_canvas``).

**Cost.** ``sample_latents`` of one canvas timed per latent position, against the trained size's, in one
process (the same warm model); memory is measured by the bench in one fresh process per canvas.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..diffusion.samplers import sampler_timesteps
from ..diffusion.sampling import SamplingSpec
from ..diffusion.windows import WindowSpec, plan_windows, window_starts
from ..models.tiled_decode import decode_canvas
from ..rendering.engine import prepare_renderer, render
from ..rendering.sampling import sample_latents
from .zoom import BorderRatio, _axis_ratio, field_cells, neighbour_differences


def window_borders(canvas: tuple[int, int], windows: list[tuple[int, int, int, int]]) -> tuple[set[int], set[int]]:
    """Latent rows and columns (strictly inside the canvas) where one of ``windows`` starts or ends."""
    H, W = canvas
    rows = {p for top, _, h, _ in windows for p in (top, top + h) if 0 < p < H}
    cols = {p for _, left, _, w in windows for p in (left, left + w) if 0 < p < W}
    return rows, cols


def seam_ratio(rgb: torch.Tensor, canvas: tuple[int, int], rows: set[int], cols: set[int]) -> BorderRatio:
    """Border / inside gradient ratio of ``rgb (B, 3, H, W)`` (a whole render of a ``canvas`` latent) across
    the latent ``rows`` and ``cols`` (the pixel pairs whose latent position steps onto one of them)."""
    H, W = rgb.shape[-2:]
    lat_r, lat_c = field_cells(0, H, H, canvas[0]), field_cells(0, W, W, canvas[1])
    cross_c = (lat_c[1:] != lat_c[:-1]) & torch.isin(lat_c[1:], torch.tensor(sorted(cols) or [-1]))
    cross_r = (lat_r[1:] != lat_r[:-1]) & torch.isin(lat_r[1:], torch.tensor(sorted(rows) or [-1]))
    dx, dy = neighbour_differences(rgb)
    return BorderRatio(_axis_ratio(dx, cross_c), _axis_ratio(dy, cross_r))


@dataclass(frozen=True)
class CanvasSeams:
    canvas: tuple[int, int]
    size: tuple[int, int]
    sampler: BorderRatio  # across the sampler's last-step window borders
    decoder: BorderRatio  # across the decoder's window borders


def canvas_seams(model, seeds: list[int], canvas: tuple[int, int], size: tuple[int, int], spec: SamplingSpec,
                 windows: WindowSpec | None = None) -> CanvasSeams:
    """Sample ``seeds`` on a ``canvas`` latent, decode it in windows, render it whole at ``size`` and measure
    the seams at the sampler's and the decoder's window borders."""
    S = model.config.latent_size
    z = sample_latents(model, seeds, spec, canvas=canvas, windows=windows)
    windows = model.resolve_windows(windows)
    last_t = sampler_timesteps(model.schedule, spec.apply_to(model.config.diffusion.sampler))[-1]
    sampler_rows, sampler_cols = window_borders(canvas, plan_windows(canvas, (S, S), windows, last_t))
    stride = max(S // 2, 1)
    decoder = [(t, l, S, S) for t in window_starts(canvas[0], S, stride) for l in window_starts(canvas[1], S, stride)]
    decoder_rows, decoder_cols = window_borders(canvas, decoder)
    with torch.inference_mode():
        phi = decode_canvas(model.decode, z, S)
        rgb = render(prepare_renderer(model.renderer, phi.device), phi, size)
    return CanvasSeams(canvas, size, seam_ratio(rgb, canvas, sampler_rows, sampler_cols),
                       seam_ratio(rgb, canvas, decoder_rows, decoder_cols))


def time_canvas(model, canvas: tuple[int, int], spec: SamplingSpec, windows: WindowSpec | None = None,
                seed: int = 0) -> float:
    """Seconds of ``sample_latents`` for one seed on a ``canvas`` latent (synchronised on CUDA)."""
    start = time.perf_counter()
    z = sample_latents(model, [seed], spec, canvas=canvas, windows=windows)
    if z.is_cuda:
        torch.cuda.synchronize(z.device)
    return time.perf_counter() - start
