"""Exponential moving average of a model's parameters (buffers are copied)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``theta_ema <- decay * theta_ema + (1 - decay) * theta`` after every optimiser step.

    With ``warmup`` the decay after ``n`` updates is ``min(decay, (1 + n) / (10 + n))`` (as in
    TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), so a short run is not dominated
    by its random initial weights; pass ``num_updates`` (e.g. the step) to ``update``.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, num_updates: int | None) -> float:
        if not self.warmup or num_updates is None:
            return self.decay
        return min(self.decay, (1 + num_updates) / (10 + num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module, num_updates: int | None = None):
        decay = self.decay_at(num_updates)
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
