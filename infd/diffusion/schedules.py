"""Discrete-time noise schedules (DDPM), computed in float64.

Notation (Ho et al. 2020, "DDPM"; Kingma et al. 2021, "VDM"), timestep index ``t = 0 .. T-1``
(index 0 is the least noisy step):

    abar_t  = prod_{s <= t} (1 - beta_s)
    q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I),   alpha_t = sqrt(abar_t),  sigma_t = sqrt(1 - abar_t)
    SNR_t = alpha_t^2 / sigma_t^2,                 lambda_t = log(alpha_t / sigma_t)

Kinds of ``betas``:
    linear         beta_t linear from ``beta_start`` to ``beta_end`` (DDPM).
    scaled_linear  sqrt(beta_t) linear from sqrt(beta_start) to sqrt(beta_end). The LDM code base (and
                   so INFD) calls this one "linear"; the paper's 0.0015 -> 0.0195 setting runs with it.
    cosine         abar_t = f(t + 1) / f(0), f(u) = cos^2((u / T + s) / (1 + s) * pi / 2) (Nichol &
                   Dhariwal 2021, Eq. 17), betas clipped at ``max_beta``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Spacing = Literal["uniform", "quadratic", "log_snr"]

@dataclass
class ScheduleConfig:
    """How to build a ``NoiseSchedule``; the defaults are the paper's (1000 steps, 0.0015 -> 0.0195)."""

    kind: Literal["linear", "scaled_linear", "cosine"] = "linear"  # betas (scaled_linear: LDM's, linear in sqrt)
    num_steps: int = 1000  # T, the diffusion steps
    beta_start: float = 0.0015  # linear / scaled_linear: beta_1
    beta_end: float = 0.0195  # linear / scaled_linear: beta_T
    cosine_s: float = 0.008  # cosine: the offset s of Nichol & Dhariwal
    max_beta: float = 0.999  # cosine: betas are clipped to this

    def __post_init__(self):
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if not 0.0 < self.max_beta < 1.0:
            raise ValueError(f"max_beta must be in (0, 1), got {self.max_beta}")


def make_betas(config: ScheduleConfig) -> torch.Tensor:
    """``(T,)`` float64 betas of the schedule described by ``config``."""
    T = config.num_steps
    f64 = torch.float64
    if config.kind == "linear":
        return torch.linspace(config.beta_start, config.beta_end, T, dtype=f64)
    if config.kind == "scaled_linear":
        return torch.linspace(config.beta_start ** 0.5, config.beta_end ** 0.5, T, dtype=f64) ** 2
    if config.kind == "cosine":
        u = torch.arange(T + 1, dtype=f64) / T
        f = torch.cos((u + config.cosine_s) / (1 + config.cosine_s) * math.pi / 2) ** 2
        # beta_t = 1 - abar_{t+1} / abar_t, where abar is f / f(0) (Nichol & Dhariwal, Eq. 17 and below)
        return (1 - f[1:] / f[:-1]).clamp(max=config.max_beta)
    raise ValueError(f"unknown schedule kind '{config.kind}' (known: linear, scaled_linear, cosine)")


class NoiseSchedule:
    """``betas`` and everything derived from them, as ``(T,)`` float64 CPU tensors.

    Gather per-sample values with ``alpha_sigma(t, like)``; it casts to ``like``'s dtype and device only
    after the float64 arithmetic.
    """

    def __init__(self, betas: torch.Tensor, config: ScheduleConfig | None = None):
        self.config = config
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or len(betas) == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must lie in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()  # alpha_t
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()  # sigma_t
        self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        self.log_snr = self.snr.log()  # 2 lambda_t

    @classmethod
    def from_config(cls, config: ScheduleConfig | None = None, **fields) -> "NoiseSchedule":
        """Build from a ``ScheduleConfig`` (or its fields as keywords: ``from_config(kind="cosine")``)."""
        if config is None:
            config = ScheduleConfig(**fields)
        elif fields:
            raise TypeError("pass either a ScheduleConfig or keyword fields, not both")
        return cls(make_betas(config), config)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def _gather(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.is_floating_point():
            raise TypeError("schedule lookups take integer timesteps")
        if bool(((t < 0) | (t >= self.num_steps)).any()):
            raise ValueError(f"timesteps must lie in [0, {self.num_steps - 1}]")
        out = values[t.detach().cpu().long()]
        return out.reshape(-1, *([1] * (like.ndim - 1))).to(device=like.device, dtype=like.dtype)

    def alpha_sigma(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` for timesteps ``t`` (B,), shaped ``(B, 1, ..., 1)`` like ``like``."""
        return (self._gather(self.sqrt_alphas_cumprod, t, like),
                self._gather(self.sqrt_one_minus_alphas_cumprod, t, like))

    def snr_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``SNR_t = alpha_t^2 / sigma_t^2`` for timesteps ``t`` (B,), shaped ``(B, 1, ..., 1)``."""
        return self._gather(self.snr, t, like)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t = alpha_t x_0 + sigma_t eps`` (DDPM Eq. 4); ``x0``, ``noise`` (B, ...), ``t`` (B,)."""
        alpha, sigma = self.alpha_sigma(t, x0)
        return alpha * x0 + sigma * noise

    def spaced_timesteps(self, steps: int, spacing: Spacing = "uniform") -> list[int]:
        """``steps`` distinct timesteps from ``T - 1`` down to ``0`` (both included), descending.

        ``spacing``: "uniform" evenly spaced in t (DDIM); "quadratic" ``t ~ (i / (steps-1))^2``, denser at
        low noise (DDIM paper, Sec. 5.1); "log_snr" evenly spaced in ``log SNR`` (DPM-Solver, Sec. 3.4),
        each rounded to the nearest integer timestep. Rounded collisions are pushed apart.
        """
        T = self.num_steps
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in [1, {T}], got {steps}")
        u = torch.linspace(1, 0, steps, dtype=torch.float64)  # 1 = most noisy
        if spacing == "uniform":
            grid = (u * (T - 1)).round().long().tolist()
        elif spacing == "quadratic":
            grid = (u ** 2 * (T - 1)).round().long().tolist()
        elif spacing == "log_snr":
            targets = self.log_snr[0] + u * (self.log_snr[-1] - self.log_snr[0])
            grid = (self.log_snr[None, :] - targets[:, None]).abs().argmin(dim=1).tolist()
        else:
            raise ValueError(f"unknown timestep spacing '{spacing}' (known: uniform, quadratic, log_snr)")
        for i in range(steps - 2, -1, -1):  # strictly decreasing, bottom up ...
            grid[i] = max(grid[i], grid[i + 1] + 1)
        return [min(t, T - 1 - i) for i, t in enumerate(grid)]  # ... and within [0, T - 1]

    def __repr__(self) -> str:
        kind = self.config.kind if self.config is not None else "custom"
        return f"NoiseSchedule({kind}, T={self.num_steps})"


def make_schedule(config: ScheduleConfig | None = None, **fields) -> NoiseSchedule:
    """``NoiseSchedule.from_config``: ``make_schedule(kind="scaled_linear", beta_end=0.012)``."""
    return NoiseSchedule.from_config(config, **fields)
