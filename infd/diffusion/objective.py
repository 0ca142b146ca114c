"""The denoising training loss: uniform timesteps, epsilon or v targets, MSE, optional min-SNR-gamma.

    t ~ U{0, ..., T-1},  eps ~ N(0, I),  x_t = alpha_t x_0 + sigma_t eps          (DDPM Algorithm 1)
    L = w(t) || f(x_t, t, cond) - target ||^2,   target = eps  or  v = alpha_t eps - sigma_t x_0

Min-SNR-gamma (Hang et al. 2023, Eq. 8): weight the x_0-space error by ``min(SNR_t, gamma)``. Since
``||eps - eps_hat||^2 = SNR_t ||x_0 - x0_hat||^2`` and ``||v - v_hat||^2 = (SNR_t + 1) ||x_0 - x0_hat||^2``,
that is ``w = min(SNR, gamma) / SNR`` for eps and ``w = min(SNR, gamma) / (SNR + 1)`` for v.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .noise import RNG, randint, randn_like
from .prediction import Prediction, check_prediction, model_target
from .schedules import NoiseSchedule


@dataclass
class ObjectiveConfig:
    """Training-loss settings: what the network predicts and the optional min-SNR-gamma weighting."""

    prediction: Prediction = "eps"
    min_snr_gamma: float | None = None

    def __post_init__(self):
        check_prediction(self.prediction)
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be > 0, got {self.min_snr_gamma}")


def sample_timesteps(batch: int, schedule: NoiseSchedule, device, rng: RNG = None) -> torch.Tensor:
    """``(batch,)`` int64 timesteps uniform over ``0 .. T-1``."""
    return randint(schedule.num_steps, batch, device, rng)


def loss_weight(snr: torch.Tensor, prediction: Prediction, min_snr_gamma: float | None) -> torch.Tensor:
    """Per-sample weight of the MSE for ``SNR_t`` values (any shape); 1 without min-SNR-gamma."""
    check_prediction(prediction)
    if min_snr_gamma is None:
        return torch.ones_like(snr)
    clipped = snr.clamp(max=min_snr_gamma)
    return clipped / snr if prediction == "eps" else clipped / (snr + 1)


def diffusion_loss(model, x0: torch.Tensor, schedule: NoiseSchedule, *, cond=None,
                   prediction: Prediction = "eps", min_snr_gamma: float | None = None,
                   t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   rng: RNG = None) -> torch.Tensor:
    """Per-sample loss ``(B,)`` (float32) of ``model(x_t, t, cond)`` on clean latents ``x0`` (B, C, H, W).

    ``t`` (B,) and ``noise`` (like ``x0``) default to fresh draws from ``rng`` (timesteps first, then
    noise), so with a ``PerSampleRNG`` each sample's loss is reproducible alone. Take ``.mean()`` for
    the scalar to optimise; the per-sample values let a trainer log the loss by timestep.
    """
    batch = x0.shape[0]
    if t is None:
        t = sample_timesteps(batch, schedule, x0.device, rng)
    if noise is None:
        noise = randn_like(x0, rng)
    if t.shape != (batch,) or noise.shape != x0.shape:
        raise ValueError(f"t must be ({batch},) and noise {tuple(x0.shape)}; got {tuple(t.shape)} and "
                         f"{tuple(noise.shape)}")
    alpha, sigma = schedule.alpha_sigma(t, x0)
    x_t = alpha * x0 + sigma * noise
    output = model(x_t, t, cond)
    if output.shape != x0.shape:
        raise ValueError(f"model output {tuple(output.shape)} does not match the input {tuple(x0.shape)}")
    target = model_target(x0, noise, alpha, sigma, prediction)
    mse = (output.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    snr = schedule.snr_at(t, mse).to(torch.float32)
    return loss_weight(snr, prediction, min_snr_gamma) * mse
