"""Optimiser configs shared by the training loops."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw
    lr: float = 3.6e-5
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    eps: float = 1e-8

    def __post_init__(self):
        if self.name not in ("adam", "adamw"):
            raise ValueError(f"optimizer name must be adam or adamw, got {self.name!r}")
        if self.lr <= 0:
            raise ValueError(f"optimizer lr must be positive, got {self.lr}")


def make_optimizer(params, config: OptimizerConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, eps=config.eps)
