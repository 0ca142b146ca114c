"""Solver 2: direct optimisation of the latent (and optionally the field) with Adam, from a sample.

We minimise over the model-space latent ``x = (z - shift) / scale`` (and, with ``optimize_field``, a
residual field ``delta`` on a grid no denser than the conditions' pixels, bilinearly upsampled to the
field, ``phi = D(z) + up(delta)``):

    sum_k w_k L_k(render_k(phi)) + lambda_prior R(x) + lambda_field mean(delta^2)

The prior term ``R`` keeps ``x`` in distribution; two choices:

- ``gaussian``: ``R(x) = mean(x^2) / 2``, the negative log-density of ``N(0, I)`` per element (up to a
  constant). The backbone's units are scaled so that latents have unit variance, so this is the
  Gaussian that matches the prior's first two moments.
- ``denoise``: the diffusion model's own score, as a regulariser (score distillation, Poole et al.
  2022, Eq. 3 with w(t) = 1; RED-diff, Mardani et al. 2023): at a random ``t``,
  ``x_t = alpha_t x + sigma_t eps`` and ``grad R = eps_theta(x_t, t) - eps`` (no gradient through the
  network), i.e. ``-sigma_t`` times the prior's score at ``x_t`` plus zero-mean noise. The value shown
  on the progress bar is the denoising error ``mean((eps_theta - eps)^2)``.

The field residual lets the solution leave the decoder's range, which makes exact consistency with a
low-resolution image reachable (super-resolution); the renderer stays the model's, so the result is
still a neural field rendered at any resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from infd.diffusion.prediction import to_x0_eps
from infd.rendering.engine import inference_renderer

from .conditions import ConditionTerms
from .result import InverseResult, format_losses


@dataclass(frozen=True)
class OptimizeOptions:
    steps: int = 200
    lr: float = 0.05  # Adam on the model-space latent
    prior: Literal["gaussian", "denoise", "none"] = "gaussian"
    prior_weight: float = 1e-3  # lambda_prior
    optimize_field: bool = False
    field_lr: float = 0.05  # Adam on the residual field
    field_weight: float = 0.0  # lambda_field
    field_grid: tuple[int, int] | None = None  # residual grid (h, w); None: as dense as the conditions' pixels
    t_range: tuple[float, float] = (0.02, 0.98)  # ``denoise``: t uniform in this fraction of the T steps
    seed: int = 0  # ``denoise``: timesteps and noise

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.prior not in ("gaussian", "denoise", "none"):
            raise ValueError(f"prior must be 'gaussian', 'denoise' or 'none', got {self.prior!r}")
        if min(self.lr, self.field_lr, self.prior_weight, self.field_weight) < 0:
            raise ValueError("learning rates and weights must be >= 0")
        lo, hi = self.t_range
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"t_range must satisfy 0 <= lo < hi <= 1, got {self.t_range}")


def denoise_prior(model, x: torch.Tensor, options: OptimizeOptions,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(surrogate (B,), denoising error (B,))``: ``grad_x surrogate.sum() = (eps_theta - eps) / n``."""
    T = model.schedule.num_steps
    lo, hi = int(options.t_range[0] * (T - 1)), max(int(options.t_range[1] * (T - 1)), 1)
    t = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    abar = float(model.schedule.alphas_cumprod[t])
    alpha, sigma = math.sqrt(abar), math.sqrt(1 - abar)
    eps = torch.randn(x.shape, generator=generator).to(x)
    with torch.no_grad():
        x_t = alpha * x + sigma * eps
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        out = model.backbone(x_t, t_batch, None).to(x.dtype)
        _, eps_hat = to_x0_eps(out, x_t, alpha, sigma, model.config.diffusion.objective.prediction)
        residual = eps_hat - eps  # SDS / RED-diff gradient direction
    surrogate = (residual * x).mean(dim=(1, 2, 3))
    return surrogate, residual.pow(2).mean(dim=(1, 2, 3))


def prior_term(model, x: torch.Tensor, options: OptimizeOptions, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(term to minimise (B,), value to show (B,))`` of the configured prior."""
    if options.prior == "gaussian":
        r = 0.5 * x.pow(2).mean(dim=(1, 2, 3))
        return r, r.detach()
    if options.prior == "denoise":
        return denoise_prior(model, x, options, generator)
    zero = x.new_zeros(x.shape[0])
    return zero, zero


def residual_grid(conditions: ConditionTerms, field_hw) -> tuple[int, int]:
    """The residual field's grid: no denser than the field, nor than the densest condition's pixels.

    A residual with more cells than constrained pixels fits the conditions with cells that no query
    pixel sees at the conditions' scale, which shows as a dot pattern when rendered larger (measured:
    a 64 x 64 super-resolution target on a 128 x 128 field). At the conditions' density, each residual
    cell is pinned by a pixel and bilinear upsampling keeps it smooth in between.
    """
    rows, cols = conditions.pixel_density()
    return min(field_hw[0], math.ceil(rows)), min(field_hw[1], math.ceil(cols))


def solve_optimize(model, conditions: ConditionTerms, z_init: torch.Tensor,
                   options: OptimizeOptions = OptimizeOptions(), progress: bool = False) -> InverseResult:
    """Minimise the conditions over the latent (and residual field) starting from ``z_init (B, C, h, w)``.

    ``model`` is a ``LatentDiffusion`` on the device to use (its weights are not changed). Returns the
    optimised latents, the field to render and the final per-term losses.
    """
    device = next(model.parameters()).device
    model.eval()
    x = model.to_model_space(z_init.to(device).float()).clone().requires_grad_(True)
    groups = [{"params": [x], "lr": options.lr}]
    delta = None
    if options.optimize_field:
        with torch.no_grad():
            phi_shape = model.decode(model.to_latent_space(x)).shape
        grid = options.field_grid or residual_grid(conditions, phi_shape[-2:])
        delta = x.new_zeros((*phi_shape[:2], *grid)).requires_grad_(True)
        groups.append({"params": [delta], "lr": options.field_lr})
    optimizer = torch.optim.Adam(groups)
    generator = torch.Generator().manual_seed(options.seed)

    def field(x):
        phi = model.decode(model.to_latent_space(x))
        if delta is None:
            return phi
        return phi + F.interpolate(delta, size=phi.shape[-2:], mode="bilinear", align_corners=False)

    bar = tqdm(range(options.steps), desc="optimize", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        losses = conditions.losses(model.renderer, field(x))
        prior, prior_shown = prior_term(model, x, options, generator)
        objective = conditions.total(losses) + options.prior_weight * prior
        if delta is not None and options.field_weight > 0:
            objective = objective + options.field_weight * delta.pow(2).mean(dim=(1, 2, 3))
        params = [x] if delta is None else [x, delta]
        grads = torch.autograd.grad(objective.sum(), params)  # only these: the model's .grad stay untouched
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        shown = {name: float(v.detach().mean()) for name, v in losses.items()}
        if options.prior != "none":
            shown["prior"] = float(prior_shown.mean())
        bar.set_postfix_str(format_losses(shown))
    with torch.no_grad():
        phi = field(x)
        losses = {name: v.detach() for name, v in conditions.losses(inference_renderer(model.renderer), phi).items()}
    return InverseResult(z=model.to_latent_space(x).detach(), phi=phi.detach(), losses=losses)
