"""What the network predicts: epsilon or v, and the conversions between them.

With ``x_t = alpha_t x_0 + sigma_t eps`` and ``alpha_t^2 + sigma_t^2 = 1`` (variance preserving):

    eps-prediction  x_0 = (x_t - sigma_t eps) / alpha_t                   (DDPM Eq. 11 rearranged)
    v-prediction    v   = alpha_t eps - sigma_t x_0                        (Salimans & Ho 2022, Sec. 4)
                    x_0 = alpha_t x_t - sigma_t v,   eps = sigma_t x_t + alpha_t v

``alpha`` and ``sigma`` broadcast against ``x_t`` (e.g. ``(B, 1, 1, 1)`` from ``NoiseSchedule.alpha_sigma``
or plain floats).
"""
from __future__ import annotations

from typing import Literal

import torch

Prediction = Literal["eps", "v"]
PREDICTIONS = ("eps", "v")


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
    return prediction


def model_target(x0: torch.Tensor, eps: torch.Tensor, alpha, sigma, prediction: Prediction) -> torch.Tensor:
    """The regression target of the network: ``eps`` or ``v = alpha eps - sigma x0``."""
    if check_prediction(prediction) == "eps":
        return eps
    return alpha * eps - sigma * x0


def to_x0_eps(output: torch.Tensor, x_t: torch.Tensor, alpha, sigma,
              prediction: Prediction) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, eps)`` implied by the network ``output`` at ``x_t``."""
    if check_prediction(prediction) == "eps":
        return (x_t - sigma * output) / alpha, output
    return alpha * x_t - sigma * output, sigma * x_t + alpha * output
