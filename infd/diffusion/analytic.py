"""The exact denoiser of Gaussian-mixture data, as a backbone: a ground truth for samplers and guidance.

Every scalar of ``x_0`` is drawn independently from ``sum_k w_k N(mu_k, s_k^2)``. With
``x_t = alpha x_0 + sigma eps`` each component's marginal is ``N(alpha mu_k, alpha^2 s_k^2 + sigma^2)`` and

    r_k(x_t)         = w_k N(x_t; alpha mu_k, alpha^2 s_k^2 + sigma^2) / sum_j (same for j)
    E[x_0 | x_t, k]  = mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k)
    E[x_0 | x_t]     = sum_k r_k E[x_0 | x_t, k],    eps = (x_t - alpha E[x_0 | x_t]) / sigma

``cond`` = component labels ``(B,)`` restrict the data to component ``k`` (label ``K`` = the null label,
the whole mixture), so it is also an exact class-conditional model for guidance tests.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .prediction import Prediction, check_prediction
from .schedules import NoiseSchedule


class GaussianMixtureDenoiser(nn.Module):
    """``model(x (B, ...), t (B,) int, cond=None) -> eps or v`` (B, ...), computed in float64."""

    def __init__(self, schedule: NoiseSchedule, means: Sequence[float], stds: Sequence[float],
                 weights: Sequence[float] | None = None, prediction: Prediction = "eps"):
        super().__init__()
        if len(means) != len(stds) or (weights is not None and len(weights) != len(means)):
            raise ValueError("means, stds and weights must have one entry per component")
        self.schedule = schedule
        self.prediction = check_prediction(prediction)
        self.means = torch.tensor(means, dtype=torch.float64)
        self.stds = torch.tensor(stds, dtype=torch.float64)
        weights = torch.ones(len(means)) if weights is None else torch.tensor(weights)
        self.log_weights = (weights / weights.sum()).double().log()

    @property
    def num_classes(self) -> int:
        return len(self.means)

    def null_cond(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, self.num_classes)

    def component_log_probs(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(x; alpha mu_k, alpha^2 s_k^2 + sigma^2)`` as ``(K, B, ...)`` float64."""
        x = x.double()
        alpha, sigma = self.schedule.alpha_sigma(t, x)
        shape = (-1,) + (1,) * x.ndim
        mu, s, logw = (v.to(x.device).reshape(shape) for v in (self.means, self.stds, self.log_weights))
        var = alpha ** 2 * s ** 2 + sigma ** 2  # (K, B, 1, ...)
        return logw - 0.5 * ((x - alpha * mu) ** 2 / var + var.log() + torch.log(torch.tensor(2 * torch.pi)))

    def posterior_mean(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``E[x_0 | x_t]`` (B, ...) float64, within component ``cond`` where a label is given."""
        xd = x.double()
        alpha, sigma = self.schedule.alpha_sigma(t, xd)
        shape = (-1,) + (1,) * x.ndim
        mu, s = (v.to(x.device).reshape(shape) for v in (self.means, self.stds))
        per_component = mu + alpha * s ** 2 / (alpha ** 2 * s ** 2 + sigma ** 2) * (xd - alpha * mu)  # (K, B, ...)
        if self.num_classes == 1:
            return per_component[0]
        log_r = self.component_log_probs(x, t)
        if cond is not None:
            k = cond.long().to(x.device).reshape(1, -1, *([1] * (x.ndim - 1)))
            labelled = (k < self.num_classes).expand_as(log_r)
            keep = torch.arange(self.num_classes, device=x.device).reshape(shape) == k
            log_r = torch.where(labelled & ~keep, torch.full_like(log_r, -torch.inf), log_r)
        return (torch.softmax(log_r, dim=0) * per_component).sum(dim=0)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x0 = self.posterior_mean(x, t, cond)
        alpha, sigma = self.schedule.alpha_sigma(t, x0)
        eps = (x.double() - alpha * x0) / sigma
        out = eps if self.prediction == "eps" else alpha * eps - sigma * x0
        return out.to(x.dtype)
