"""Optimiser configs shared by the training loops."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw
    lr: float = 3.6e-5  # learning rate (the peak one where the stage has a warm-up)
    betas: tuple[float, float] = (0.5, 0.9)  # Adam's (beta1, beta2); 0.5, 0.9 is the GAN-stable choice of LDM
    weight_decay: float = 0.0  # decoupled (AdamW) or L2 (Adam) weight decay
    eps: float = 1e-8  # Adam's epsilon

    def __post_init__(self):
        if self.name not in ("adam", "adamw"):
            raise ValueError(f"optimizer name must be adam or adamw, got {self.name!r}")
        if not 0 < self.lr < math.inf:  # also refuses NaN
            raise ValueError(f"optimizer lr must be positive and finite, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0 <= self.weight_decay < math.inf or not 0 < self.eps < math.inf:
            raise ValueError(f"optimizer weight_decay must be >= 0 and eps > 0 (finite), got "
                             f"{self.weight_decay} and {self.eps}")


def make_optimizer(params, config: OptimizerConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, eps=config.eps)


def cooldown_factor(step: int, max_steps: int, cooldown_steps: int) -> float:
    """The learning-rate factor of update ``step`` (0-based) under a constant rate with a final linear
    cooldown: 1 until ``max_steps - cooldown_steps``, then down linearly to ``1 / cooldown_steps`` at the
    last update (the warmup-stable-decay schedule, which matches a cosine one at the same length while
    leaving the length open until the cooldown starts; Hagele et al. 2024). ``cooldown_steps`` 0: always 1."""
    if cooldown_steps <= 0:
        return 1.0
    return min(1.0, max(max_steps - step, 1) / cooldown_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
