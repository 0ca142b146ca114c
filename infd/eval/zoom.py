"""Continuity at every magnification and the absence of a frame (issue 13), measured on renders.

**Cell-border ratio.** A field ``phi (B, C, h, w)`` rendered at magnification ``m`` is a virtual
``(m h, m w)`` image. Virtual column ``j`` of ``W`` takes the field column whose cell holds its centre
``-1 + (2 j + 1) / W`` (``renderers.gather.nearest_index``), i.e. ``floor((j + 0.5) w / W)`` clamped to
``[0, w - 1]`` (``field_cells``, in integers). A pair of horizontal neighbours ``(j, j + 1)`` *crosses a
border* when their field columns differ. The horizontal ratio is

    mean |rgb[..., j + 1] - rgb[..., j]| over crossing pairs / the same mean over all other pairs

(means over samples, channels and rows; every pair has the same number of rows, so this is the pixel
mean). Rows give the vertical ratio the same way; ``BorderRatio.mean`` is their average. 1.0: a
border is no steeper than the rest (no visible cell structure); a renderer that is piecewise constant
per cell gives ``inf``. At 1x every pair crosses a border, so the ratio is ``nan`` (there is nothing to
compare with; issue 13's table writes 1.00 there by convention); so is a window with no crossing.

**Cell-phase contrast.** The ratio compares border pairs with all others, so a texture repeating at
the cell period but peaking elsewhere in the cell (a renderer whose input has kinks at the cell centres)
can score <= 1 and still show. ``cell_phase_contrast`` bins every neighbour pair by where it lies in
its cell (the pair's boundary at ``(j + 1) w / W`` cells, fractional part, in ``bins`` equal phases, 8
or the pixels a cell spans if fewer) and
returns the largest phase's mean |difference| over the smallest's, per axis (mean of both in
``BorderRatio.mean``): 1.0 when the image does not know where the cells are; ``nan`` below 2 px a cell.

**Frame.** ``frame_rings``: ring ``k`` of ``r`` px is the pixels whose distance to the nearest image
edge is in ``[k r, (k + 1) r)``; each ring has four sides (top and bottom span the ring's full width,
left and right the rows between). ``d01`` is the mean over samples, sides and channels of
``|mean colour of side s of ring 0 - mean colour of side s of ring 1|``, ``d12`` the same for rings 1
and 2 (colours in [-1, 1]). Per side, so a frame dark on one side and light on another does not cancel.
No frame: ``d01 <= d12``.

**Protocol.** Latents come from ``infd.rendering.sampling.sample_latents``: a diffusion bundle's prior
(the quick protocol, ``QUICK_SAMPLING``: DDIM, 20 steps) or ``N(0, I)`` for an autoencoder alone.
Every render goes through ``infd.rendering.engine.render`` (tiled, as any render), windows centred in
the virtual image, each timed after one untimed warm-up render.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch

from ..diffusion.sampling import SamplingSpec
from ..renderers.coords import Region
from ..rendering.engine import prepare_renderer, render
from ..rendering.sampling import sample_latents

QUICK_SAMPLING = SamplingSpec(sampler="ddim", steps=20)  # the quick protocol of issue 13's figures
RINGS = 3  # rings 0, 1, 2


def field_cells(start: int, count: int, pixels: int, cells: int) -> torch.Tensor:
    """Field cell of virtual pixels ``start .. start + count - 1`` of an axis of ``pixels`` (long ``(count,)``).

    ``floor((j + 0.5) cells / pixels)``, clamped to ``[0, cells - 1]``: the cell holding the pixel centre
    ``-1 + (2 j + 1) / pixels``, computed exactly in integers.
    """
    j = torch.arange(start, start + count)
    return torch.div((2 * j + 1) * cells, 2 * pixels, rounding_mode="floor").clamp_(0, cells - 1)


@dataclass(frozen=True)
class BorderRatio:
    """Border / inside gradient ratios along rows (``horizontal``) and columns (``vertical``)."""

    horizontal: float
    vertical: float

    @property
    def mean(self) -> float:
        return (self.horizontal + self.vertical) / 2


def _axis_ratio(diff: torch.Tensor, crossing: torch.Tensor) -> float:
    """``mean(diff[crossing]) / mean(diff[~crossing])`` for per-pair mean differences ``diff (n - 1,)``."""
    if not crossing.any() or crossing.all():
        return math.nan
    inside = diff[~crossing].mean().item()
    border = diff[crossing].mean().item()
    return border / inside if inside > 0 else (math.inf if border > 0 else math.nan)


def cell_border_ratio(rgb: torch.Tensor, field_shape: int | tuple[int, int], size: tuple[int, int],
                      region: Region | None = None) -> BorderRatio:
    """The cell-border ratios (module doc) of a rendered window.

    Args:
        rgb: the window's pixels ``(B, 3, height, width)``.
        field_shape: the field's ``(h, w)`` (or ``w`` for a square field).
        size: the virtual image ``(H, W)``; ``region``: where the window lies in it (default: all of it,
            a plain pixel region; fractional windows are not supported).
    """
    h, w, H, W, region = _checked_window(rgb, field_shape, size, region, "cell_border_ratio")
    dx, dy = neighbour_differences(rgb)
    cols = field_cells(region.left, region.width, W, w)
    rows = field_cells(region.top, region.height, H, h)
    return BorderRatio(_axis_ratio(dx, cols[1:] != cols[:-1]), _axis_ratio(dy, rows[1:] != rows[:-1]))


def neighbour_differences(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |difference| of horizontal neighbours per column pair ``dx (width - 1,)`` and of vertical ones
    per row pair ``dy (height - 1,)`` of ``rgb (B, 3, height, width)`` (means over samples, channels and
    the other axis; float64, on the CPU): what every ratio of this module and ``eval.canvas`` compares."""
    rgb = rgb.double()
    dx = (rgb[..., :, 1:] - rgb[..., :, :-1]).abs().mean(dim=(0, 1, 2)).cpu()
    dy = (rgb[..., 1:, :] - rgb[..., :-1, :]).abs().mean(dim=(0, 1, 3)).cpu()
    return dx, dy


def _checked_window(rgb: torch.Tensor, field_shape: int | tuple[int, int], size: tuple[int, int],
                    region: Region | None, name: str):
    """``(h, w, H, W, region)`` of a measured window after the checks both measures share (``name``: the
    caller, for the errors)."""
    h, w = (field_shape, field_shape) if isinstance(field_shape, int) else field_shape
    H, W = size
    region = Region(0, 0, H, W) if region is None else region.check_inside((H, W))
    if region.grid is not None:
        raise ValueError(f"{name} takes a pixel region of the virtual image, not a fractional window")
    if tuple(rgb.shape[-2:]) != (region.height, region.width):
        raise ValueError(f"rgb is {tuple(rgb.shape[-2:])}, the region {region.height}x{region.width}")
    return h, w, H, W, region


def _phase_contrast(diff: torch.Tensor, start: int, pixels: int, cells: int, bins: int) -> float:
    """Largest / smallest mean of ``diff (n - 1,)`` over the cell phases of pairs ``start + j, start + j + 1``."""
    bins = min(bins, pixels // cells)  # no more phases than pixels in a cell
    if bins < 2 or diff.numel() < 2 * bins:
        return math.nan
    j = torch.arange(start + 1, start + 1 + diff.numel(), dtype=torch.float64)  # the pair's boundary, in pixels
    phase = torch.remainder(j * cells / pixels, 1.0)
    b = torch.clamp((phase * bins).long(), max=bins - 1)
    sums = torch.zeros(bins, dtype=torch.float64).index_add_(0, b, diff)
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, b, torch.ones_like(diff))
    if (counts == 0).any():
        return math.nan
    means = sums / counts
    return (means.max() / means.min()).item() if means.min() > 0 else math.inf


def cell_phase_contrast(rgb: torch.Tensor, field_shape: int | tuple[int, int], size: tuple[int, int],
                        region: Region | None = None, bins: int = 8) -> BorderRatio:
    """The cell-phase contrast (module doc) of a rendered window, same arguments as ``cell_border_ratio``."""
    h, w, H, W, region = _checked_window(rgb, field_shape, size, region, "cell_phase_contrast")
    dx, dy = neighbour_differences(rgb)
    return BorderRatio(_phase_contrast(dx, region.left, W, w, bins), _phase_contrast(dy, region.top, H, h, bins))


def time_render(renderer, phi: torch.Tensor, size: tuple[int, int], region: Region | None = None,
                repeats: int = 1, tile: int | None = None) -> tuple[torch.Tensor, float]:
    """``(rgb (B, 3, h, w) on the CPU, seconds)``: ``engine.render`` of the window, fastest of ``repeats``.

    The time includes bringing the pixels to the CPU (the ``TensorSink``), so it is synchronised on GPUs.
    """
    best = math.inf
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        rgb = render(renderer, phi, size, region, tile=tile)
        best = min(best, time.perf_counter() - start)
    return rgb, best


@dataclass(frozen=True)
class ZoomWindow:
    """One magnification: the virtual image, the centred window rendered, its ratios and its cost."""

    magnification: int
    size: tuple[int, int]
    window: Region
    ratio: BorderRatio
    seconds: float  # fastest of the repeats
    num_images: int
    cost_vs_reference: float = math.nan  # median over repeats of window time / reference render time
    phase: BorderRatio = BorderRatio(math.nan, math.nan)  # cell-phase contrast

    @property
    def megapixels_per_second(self) -> float:
        return self.num_images * self.window.height * self.window.width / 1e6 / self.seconds


def centred_window(size: tuple[int, int], window_px: int) -> Region:
    """The window of at most ``window_px`` a side centred in the virtual ``(H, W)`` image."""
    H, W = size
    height, width = min(window_px, H), min(window_px, W)
    return Region((H - height) // 2, (W - width) // 2, height, width)


def zoom_windows(model, z: torch.Tensor, magnifications, window_px: int = 1024, *, renderer=None,
                 repeats: int = 1, tile: int | None = None,
                 reference_size: tuple[int, int] | None = None) -> list[ZoomWindow]:
    """Decode ``z (B, z_channels, h', w')`` once to ``phi (B, C, h, w)``; per magnification ``m``, render
    the centred window of at most ``window_px`` of the ``(m h, m w)`` image, time it and measure it.

    ``renderer``: what renders (default ``prepare_renderer(model.renderer, z.device)``, made once).
    ``reference_size``: also render the whole image of this size right after each timing of a window;
    ``cost_vs_reference`` is the median of the per-pair time ratios (interleaved pairs, as in
    ``renderers.benchmark``: load on a shared machine then moves both alike).
    """
    if any(int(m) != m or m < 1 for m in magnifications) or window_px < 1:
        raise ValueError(f"magnifications must be integers >= 1 and the window >= 1 px, got "
                         f"{list(magnifications)}, {window_px}")
    with torch.inference_mode():
        phi = model.decode(z)
    renderer = prepare_renderer(model.renderer, phi.device) if renderer is None else renderer
    h, w = phi.shape[-2:]
    render(renderer, phi, (h, w), centred_window((h, w), 32))  # warm-up: one-time costs stay untimed
    rows = []
    for m in magnifications:
        size = (int(m) * h, int(m) * w)
        window = centred_window(size, window_px)
        times, ratios = [], []
        for _ in range(max(repeats, 1)):
            rgb, seconds = time_render(renderer, phi, size, window, tile=tile)
            times.append(seconds)
            if reference_size is not None:
                ratios.append(seconds / time_render(renderer, phi, reference_size, tile=tile)[1])
        cost = statistics.median(ratios) if ratios else math.nan
        rows.append(ZoomWindow(int(m), size, window, cell_border_ratio(rgb, (h, w), size, window), min(times),
                               phi.shape[0], cost, cell_phase_contrast(rgb, (h, w), size, window)))
    return rows


def _side_means(rgb: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """Mean colour of the four sides of ring ``k`` (``r`` px wide) of ``rgb (B, 3, H, W)``: ``(B, 4, 3)``."""
    H, W = rgb.shape[-2:]
    a, b = k * r, (k + 1) * r  # the ring's band, from the edge inwards
    sides = [rgb[..., a:b, a:W - a], rgb[..., H - b:H - a, a:W - a],  # top, bottom (full width)
             rgb[..., b:H - b, a:b], rgb[..., b:H - b, W - b:W - a]]  # left, right (rows between)
    return torch.stack([side.mean(dim=(-2, -1)) for side in sides], dim=1)


def frame_rings(rgb: torch.Tensor, ring_px: int = 8) -> tuple[float, float]:
    """``(d01, d12)`` of images ``rgb (B, 3, H, W)`` (module doc): ring 0 vs 1, ring 1 vs 2, ``ring_px`` wide."""
    H, W = rgb.shape[-2:]
    if ring_px < 1 or min(H, W) <= 2 * RINGS * ring_px:  # ring 2 needs rows between its top and bottom sides
        raise ValueError(f"{H}x{W} images have no {RINGS} rings of {ring_px} px (need more than "
                         f"{2 * RINGS * ring_px} px a side)")
    means = [_side_means(rgb.double(), k, ring_px) for k in range(RINGS)]  # (B, 4, 3) each
    return (means[0] - means[1]).abs().mean().item(), (means[1] - means[2]).abs().mean().item()


def frame_figures(model, seeds: list[int], sizes, spec: SamplingSpec = QUICK_SAMPLING, *, batch: int = 4,
                  ring_px: int = 8, renderer=None) -> dict[int, tuple[float, float]]:
    """``{size: (d01, d12)}`` over samples of ``seeds`` rendered whole at ``size x size`` (averaged over samples).

    Latents: ``sample_latents(model, seeds, spec)``, in batches of ``batch`` seeds; each field is decoded
    once and rendered at every size.
    """
    sums = {int(s): [0.0, 0.0] for s in sizes}
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        with torch.inference_mode():
            phi = model.decode(sample_latents(model, chunk, spec))
        renderer = prepare_renderer(model.renderer, phi.device) if renderer is None else renderer
        for s in sums:
            d01, d12 = frame_rings(render(renderer, phi, (s, s)), ring_px)
            sums[s][0] += d01 * len(chunk)
            sums[s][1] += d12 * len(chunk)
    return {s: (d01 / len(seeds), d12 / len(seeds)) for s, (d01, d12) in sums.items()}


def zoom_results(model, magnifications, frame_sizes, frame_samples: int, seed: int = 0,
                 spec: SamplingSpec = QUICK_SAMPLING, *, window_px: int = 1024, batch: int = 4) -> dict:
    """The zoom ratios (one sample, seed ``seed``) and frame figures (``frame_samples`` seeds from ``seed``;
    none when 0) as the JSON-ready dict of ``infd.eval.run.evaluate``'s ``"zoom"`` entry."""
    results = {"seed": seed, "sampler": spec.sampler, "steps": spec.steps, "window": window_px, "ratio": {},
               "frame": {}, "frame_samples": frame_samples}
    if magnifications:
        z = sample_latents(model, [seed], spec)
        for row in zoom_windows(model, z, magnifications, window_px):
            results["ratio"][str(row.magnification)] = {
                "size": list(row.size), "window": [row.window.height, row.window.width],
                "horizontal": row.ratio.horizontal, "vertical": row.ratio.vertical, "mean": row.ratio.mean,
                "phase": row.phase.mean, "seconds": row.seconds}
    if frame_samples:
        seeds = list(range(seed, seed + frame_samples))
        for size, (d01, d12) in frame_figures(model, seeds, frame_sizes, spec, batch=batch).items():
            results["frame"][str(size)] = {"d01": d01, "d12": d12, "no_frame": d01 <= d12}
    return results
