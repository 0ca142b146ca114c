"""Samplers: plain functions of (model, x_T, schedule, steps) that work with any backbone or wrapper.

All share one signature::

    sample_X(model, x_T, schedule, steps, *, cond=None, prediction="eps", rng=None, cond_fn=None,
             callback=None, clip_x0=None, progress=False, **sampler_options) -> x_0 (B, C, H, W)

* ``model(x, t, cond)`` predicts eps or v (``prediction``); wrap it in ``ClassifierFreeGuidance`` for
  guidance. Put it in eval mode first. ``t`` is passed as an int64 tensor ``(B,)``.
* ``steps`` timesteps from ``T-1`` to ``0`` (``NoiseSchedule.spaced_timesteps``; ``spacing`` "uniform" by
  default, "log_snr" for DPM-Solver++); the last step goes from ``t = 0`` to the clean sample
  (``abar = 1``), which is the x_0 prediction there.
* ``rng``: ``None``, a ``torch.Generator`` or a ``PerSampleRNG``; it draws the stochastic noise of each
  step (draw ``x_T`` from the same ``PerSampleRNG`` and a batch reproduces each sample alone).
* ``cond_fn(x_t, t, x0_pred) -> g``: a guidance gradient ``g ~ grad_{x_t} log p(y | x_t)`` (same shape as
  ``x_t``). The model runs with gradients enabled and ``x_t.requires_grad``, so ``x0_pred`` is a
  differentiable function of ``x_t`` (``torch.autograd.grad(f(x0_pred).sum(), x_t)`` works). It shifts
  the score, ``eps <- eps - sigma_t g`` (Dhariwal & Nichol 2021, Sec. 4.2), which moves the mean of
  every sampler's step; scale ``g`` inside ``cond_fn``.
* ``callback(i, t, x, x0_pred)`` runs after step ``i`` with the new state ``x``; if it returns a tensor,
  that replaces ``x`` (e.g. to paste known content for inpainting).
* ``clip_x0``: clamp the x_0 prediction to ``[-clip_x0, clip_x0]`` (the paper uses no clipping).

Coefficients come from the float64 schedule as Python floats; the state keeps ``x_T``'s dtype.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from tqdm.auto import tqdm

from .guidance import ClassifierFreeGuidance
from .noise import RNG, randn_like
from .prediction import Prediction, check_prediction, to_x0_eps
from .sampling import SAMPLER_NAMES
from .schedules import NoiseSchedule, Spacing


def _timeline(schedule: NoiseSchedule, steps: int, spacing: Spacing) -> list[tuple[int, float, float]]:
    """``[(t, abar_t, abar_s)]``: each step from timestep ``t`` to the next one ``s`` (``abar_s = 1`` last)."""
    ts = schedule.spaced_timesteps(steps, spacing)
    abar = schedule.alphas_cumprod
    nexts = [float(abar[s]) for s in ts[1:]] + [1.0]
    return [(t, float(abar[t]), a_s) for t, a_s in zip(ts, nexts)]


def _denoise(model, x, t: int, abar_t: float, *, cond, prediction, cond_fn, clip_x0):
    """``(x0_pred, eps_pred)`` at ``x`` (B, C, H, W) and integer timestep ``t``, after guidance/clipping."""
    alpha, sigma = math.sqrt(abar_t), math.sqrt(1.0 - abar_t)
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    if cond_fn is None:
        x0, eps = to_x0_eps(model(x, t_batch, cond).to(x.dtype), x, alpha, sigma, prediction)
    else:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0, eps = to_x0_eps(model(x_in, t_batch, cond).to(x.dtype), x_in, alpha, sigma, prediction)
            grad = cond_fn(x_in, t_batch, x0)
        eps = eps.detach() - sigma * grad.detach().to(x.dtype)  # score + g  (ADM Sec. 4.2)
        x0 = (x - sigma * eps) / alpha
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = (x - alpha * x0) / sigma
    return x0.detach(), eps.detach()


def _check(x_T: torch.Tensor, prediction: str):
    check_prediction(prediction)
    if x_T.ndim < 2:
        raise ValueError(f"x_T must be batched (B, ...), got shape {tuple(x_T.shape)}")


def _after_step(callback, i, t, x, x0):
    if callback is None:
        return x
    replaced = callback(i, t, x, x0)
    return x if replaced is None else replaced


@torch.no_grad()
def sample_ddim(model, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, *, cond=None,
                prediction: Prediction = "eps", eta: float = 0.0, rng: RNG = None,
                cond_fn: Callable | None = None, callback: Callable | None = None,
                clip_x0: float | None = None, spacing: Spacing = "uniform",
                progress: bool = False) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12); ``eta = 0`` is deterministic, ``eta = 1`` is ancestral DDPM.

        sigma_eta = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
        x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma_eta^2) eps + sigma_eta z
    """
    _check(x_T, prediction)
    x = x_T
    timeline = _timeline(schedule, steps, spacing)
    for i, (t, a_t, a_s) in enumerate(tqdm(timeline, desc="DDIM", disable=not progress)):
        x0, eps = _denoise(model, x, t, a_t, cond=cond, prediction=prediction, cond_fn=cond_fn, clip_x0=clip_x0)
        sigma_eta = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma_eta ** 2, 0.0)) * eps
        if sigma_eta > 0:
            x = x + sigma_eta * randn_like(x, rng)
        x = _after_step(callback, i, t, x, x0)
    return x


@torch.no_grad()
def sample_ddpm(model, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int | None = None, *, cond=None,
                prediction: Prediction = "eps", variance: Literal["small", "large"] = "small",
                rng: RNG = None, cond_fn: Callable | None = None, callback: Callable | None = None,
                clip_x0: float | None = None, spacing: Spacing = "uniform",
                progress: bool = False) -> torch.Tensor:
    """Ancestral DDPM sampling from the posterior q(x_s | x_t, x0_pred) (Ho et al. 2020, Eqs. 6-7).

    With ``steps < T`` the chain runs on the respaced schedule ``beta_ts = 1 - abar_t / abar_s``
    (Nichol & Dhariwal 2021, Sec. 4). ``variance``: "small" is the posterior variance
    ``(1 - abar_s) / (1 - abar_t) beta_ts``, "large" is ``beta_ts``; the last step adds no noise.
    On Gaussian data with the exact denoiser, "small" loses about 1% of the std at 1000 steps (it
    ignores the uncertainty of x0_pred), "large" is within Monte-Carlo noise; fewer steps lose more.
    """
    _check(x_T, prediction)
    if variance not in ("small", "large"):
        raise ValueError(f"variance must be 'small' or 'large', got {variance!r}")
    x = x_T
    timeline = _timeline(schedule, steps or schedule.num_steps, spacing)
    for i, (t, a_t, a_s) in enumerate(tqdm(timeline, desc="DDPM", disable=not progress)):
        x0, _ = _denoise(model, x, t, a_t, cond=cond, prediction=prediction, cond_fn=cond_fn, clip_x0=clip_x0)
        beta = 1 - a_t / a_s
        # posterior mean: sqrt(abar_s) beta / (1 - abar_t) x0 + sqrt(1 - beta) (1 - abar_s) / (1 - abar_t) x_t
        x = (math.sqrt(a_s) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_s) / (1 - a_t)) * x
        if i < len(timeline) - 1:
            var = beta * (1 - a_s) / (1 - a_t) if variance == "small" else beta
            x = x + math.sqrt(var) * randn_like(x, rng)
        x = _after_step(callback, i, t, x, x0)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, *, cond=None,
                    prediction: Prediction = "eps", rng: RNG = None, cond_fn: Callable | None = None,
                    callback: Callable | None = None, clip_x0: float | None = None,
                    spacing: Spacing = "log_snr", progress: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M), the deterministic 2nd-order multistep solver (Lu et al. 2022, Algorithm 2).

        lambda = log(alpha / sigma),  h = lambda_s - lambda_t,  r = h_prev / h
        D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev            (D = x0_t on the first step)
        x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D
    The last step (to sigma = 0) returns the x_0 prediction. ``rng`` is unused (no noise is drawn).
    """
    _check(x_T, prediction)
    x, x0_prev, h_prev = x_T, None, None
    timeline = _timeline(schedule, steps, spacing)
    for i, (t, a_t, a_s) in enumerate(tqdm(timeline, desc="DPM++2M", disable=not progress)):
        x0, _ = _denoise(model, x, t, a_t, cond=cond, prediction=prediction, cond_fn=cond_fn, clip_x0=clip_x0)
        if a_s >= 1.0:
            x = x0
        else:
            lam_t = 0.5 * math.log(a_t / (1 - a_t))
            lam_s = 0.5 * math.log(a_s / (1 - a_s))
            h = lam_s - lam_t
            D = x0
            if x0_prev is not None:
                r = h_prev / h
                D = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = math.sqrt((1 - a_s) / (1 - a_t)) * x - math.sqrt(a_s) * math.expm1(-h) * D
            x0_prev, h_prev = x0, h
        x = _after_step(callback, i, t, x, x0)
    return x


SAMPLERS: dict[str, Callable] = {name: globals()[f"sample_{name}"] for name in SAMPLER_NAMES}


@dataclass
class SamplerConfig:
    """A model's own sampler settings (the ``sampler:`` section of its YAML config, kept in its checkpoint):
    the paper samples with DDIM, 200 steps, eta 1, no clipping. A ``SamplingSpec`` overrides the sampler,
    steps, ``guidance_scale`` (its ``cfg_scale``: classifier-free guidance) and eta (``spec.apply_to``)."""

    name: Literal[SAMPLER_NAMES] = "ddim"
    steps: int = 200  # sampler steps (a subsequence of the T diffusion steps)
    eta: float = 1.0  # DDIM: 0 deterministic, 1 as stochastic as DDPM
    guidance_scale: float = 1.0  # classifier-free guidance scale
    clip_x0: float | None = None  # clamp the predicted x0 to [-c, c] at each step (None: no clamp)
    spacing: Spacing | None = None  # None: the sampler's default (uniform; log_snr for dpmpp_2m)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")


def sampler_timesteps(schedule: NoiseSchedule, config: SamplerConfig) -> list[int]:
    """The timesteps ``sample(..., config)`` calls the model at, in order (the sampler's default spacing
    unless ``config.spacing`` is set)."""
    spacing = config.spacing or inspect.signature(SAMPLERS[config.name]).parameters["spacing"].default
    return list(schedule.spaced_timesteps(config.steps, spacing))


def sample(model, x_T: torch.Tensor, schedule: NoiseSchedule, config: SamplerConfig, *, null_cond=None,
           **kwargs) -> torch.Tensor:
    """Run the sampler named in ``config``; with ``guidance_scale != 1`` and a ``cond``, the model is
    wrapped in ``ClassifierFreeGuidance(model, guidance_scale, null_cond)`` first."""
    if config.name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{config.name}' (known: {', '.join(SAMPLERS)})")
    if config.guidance_scale != 1.0 and kwargs.get("cond") is not None:
        model = ClassifierFreeGuidance(model, config.guidance_scale, null_cond)
    if config.name == "ddim":
        kwargs.setdefault("eta", config.eta)
    kwargs.setdefault("clip_x0", config.clip_x0)
    if config.spacing is not None:
        kwargs.setdefault("spacing", config.spacing)
    return SAMPLERS[config.name](model, x_T, schedule, config.steps, **kwargs)
