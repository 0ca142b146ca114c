"""Run a layout end to end (used by ``tools/inverse.py``): check, solve, render at any size, draw the layout.

``make_inverse_request(...)`` checks everything that can be checked before a model is loaded (layout
file, sizes, output paths, the ``SamplingSpec`` and solver settings) and raises ``InverseError`` with one
line otherwise.
``run_inverse(request, model, clip)`` solves with the chosen solver and writes

- the result at ``request.size`` (streamed through the rendering engine into a ``FileSink``: PNG,
  JPEG, WebP or tiled TIFF, so any size works),
- the result at each ``also_sizes`` size, as ``<stem>_<W>x<H><suffix>``,
- ``<stem>_layout.png``: the result (at most ``PREVIEW_PX`` a side) with the layout's boxes drawn on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infd.cli import UsageError, parse_device, parse_size, parse_sizes, refuse_overwrite
from infd.diffusion.sampling import SamplingError, SamplingSpec
from infd.rendering.formats import SinkError, check_capacity, check_writable, format_for_path

from .layout import CONDITION_KINDS, Layout, LayoutError, load_layout

SOLVERS = ("guided", "optimize")
PRIORS = ("gaussian", "denoise", "none")
PREVIEW_PX = 1024  # longer side of the layout preview


class InverseError(ValueError):
    """An invalid inverse-problem request (one line, shown to the user as is)."""


@dataclass(frozen=True)
class InverseRequest:
    layout: Layout
    size: tuple[int, int]  # (H, W) of the result
    out: Path
    also_sizes: tuple[tuple[int, int], ...] = ()
    solver: Literal["guided", "optimize"] = "guided"
    # guided: the guided sampler run; optimize: the sample it starts from (DDIM 50: what the solvers were tuned on)
    sampling: SamplingSpec = SamplingSpec("ddim", 50)
    optimize_steps: int | None = None  # optimize: Adam steps (guided: None, its steps are sampling.steps)
    seed: int = 0
    condition_scale: float | None = None  # guided: s for every term (None: each kind's default_scale)
    lr: float = 0.05
    prior: str = "gaussian"
    prior_weight: float = 1e-3
    optimize_field: bool = False
    field_lr: float = 0.05
    device: str = "auto"

    def also_path(self, size: tuple[int, int]) -> Path:
        return self.out.with_name(f"{self.out.stem}_{size[1]}x{size[0]}{self.out.suffix}")

    @property
    def layout_path(self) -> Path:
        return self.out.with_name(f"{self.out.stem}_layout.png")


def preview_size(size: tuple[int, int], limit: int = PREVIEW_PX) -> tuple[int, int]:
    """``size`` scaled down (aspect kept) so its longer side is at most ``limit``."""
    H, W = size
    scale = min(1.0, limit / max(H, W))
    return max(1, round(H * scale)), max(1, round(W * scale))


def make_inverse_request(*, layout: str, size: str, out: str, also_sizes: str | None = None,
                         solver: str = "guided", steps: int = 50, optimize_steps: int = 200, seed: int = 0,
                         sampler: str = "ddim", cfg_scale: float = 1.0, class_label: int | None = None,
                         condition_scale: float | None = None, lr: float = 0.05, prior: str = "gaussian",
                         prior_weight: float = 1e-3, optimize_field: bool = False, field_lr: float = 0.05,
                         device: str = "auto") -> InverseRequest:
    """Parse and check a request without loading a model; ``InverseError`` (one line) if it is invalid.

    ``steps`` are the sampler's, for either solver: the guided run, or the unguided sample the optimizer
    starts from; ``optimize_steps`` the optimizer's Adam steps.
    """
    try:
        parsed = load_layout(layout)
        parsed.require_kinds(CONDITION_KINDS, "tools/inverse.py (class_label boxes are for tools/render.py --labels)")
        hw = parse_size(size)
        extra = tuple(parse_sizes(also_sizes, "--also-size")) if also_sizes else ()
        device = parse_device(device)
    except (LayoutError, UsageError) as err:
        raise InverseError(str(err)) from None
    if solver not in SOLVERS:
        raise InverseError(f"--solver must be one of {', '.join(SOLVERS)}, got '{solver}'")
    if prior not in PRIORS:
        raise InverseError(f"--prior must be one of {', '.join(PRIORS)}, got '{prior}'")
    if steps < 1 or optimize_steps < 1:
        raise InverseError(f"--steps and --optimize-steps must be at least 1, got {steps} and {optimize_steps}")
    for name, value in (("--condition-scale", 0.0 if condition_scale is None else condition_scale), ("--lr", lr), ("--prior-weight", prior_weight),
                        ("--field-lr", field_lr)):
        if not (math.isfinite(value) and value >= 0):
            raise InverseError(f"{name} must be a number >= 0, got {value}")
    if seed < 0:
        raise InverseError(f"--seed must be >= 0, got {seed}")
    guided = solver == "guided"
    try:
        sampling = SamplingSpec(sampler, steps, cfg_scale, class_label)
    except SamplingError as err:
        raise InverseError(str(err)) from None
    request = InverseRequest(parsed, hw, Path(out), extra, solver, sampling, None if guided else optimize_steps,
                             seed, condition_scale, lr, prior, prior_weight, optimize_field, field_lr, device)
    outputs = [request.out, *(request.also_path(s) for s in extra), request.layout_path]
    inputs = [Path(layout), *(p for t in parsed.terms for p in (t.image, t.known_mask) if p is not None)]
    try:
        refuse_overwrite(outputs, inputs)
    except UsageError as err:
        raise InverseError(str(err)) from None
    try:
        for path, s in [(request.out, hw), *((request.also_path(s), s) for s in extra),
                        (request.layout_path, preview_size(hw))]:
            check_capacity(format_for_path(path), s, 8, directory=path.parent)
            check_writable(path)
    except SinkError as err:
        raise InverseError(str(err)) from None
    return request


def solve(request: InverseRequest, model, conditions, progress: bool = False):
    """Run the request's solver on ``model`` (a diffusion bundle on its device); an ``InverseResult``."""
    from infd.rendering.sampling import sample_latents

    from .guided import solve_guided
    from .optimize import OptimizeOptions, solve_optimize

    if request.solver == "guided":
        return solve_guided(model, conditions, [request.seed], request.sampling, request.condition_scale, progress)
    z0 = sample_latents(model, [request.seed], request.sampling)
    options = OptimizeOptions(steps=request.optimize_steps, lr=request.lr, prior=request.prior,
                              prior_weight=request.prior_weight, optimize_field=request.optimize_field,
                              field_lr=request.field_lr, seed=request.seed)
    return solve_optimize(model, conditions, z0, options, progress)


def describe_losses(conditions, losses) -> list[str]:
    """One line per term: its final loss, and for pixel terms the PSNR it implies (on its known pixels)."""
    lines = []
    for term in conditions:
        value = float(losses[term.name].mean())
        extra = f" (PSNR {10 * math.log10(4 / value):.2f} dB)" if term.kind != "clip_text" and value > 0 else ""
        lines.append(f"{term.name} ({term.kind}): loss {value:.4g}{extra}")
    return lines


def write_outputs(request: InverseRequest, model, phi, tile_bar=None) -> list[Path]:
    """Render ``phi (1, C, h, w)`` at every requested size into files, and the layout preview."""
    import numpy as np

    from infd.atomic import atomic_path
    from infd.rendering.engine import render
    from infd.rendering.sinks import FileSink, quantize

    from .draw import draw_layout

    on_tile = None if tile_bar is None else (lambda _: tile_bar.update(1))
    written = []
    for path, size in [(request.out, request.size), *((request.also_path(s), s) for s in request.also_sizes)]:
        written += render(model.renderer, phi, size, sink=FileSink(path), on_tile=on_tile)
    preview = render(model.renderer, phi, preview_size(request.size))  # (1, 3, h, w) on phi's device
    image = quantize(preview, 8)[0]
    terms = request.layout.terms
    drawn = draw_layout(np.ascontiguousarray(image), [t.box for t in terms], [t.name for t in terms])
    with atomic_path(request.layout_path) as temp:
        drawn.save(temp, format="PNG")
    return written + [request.layout_path]
