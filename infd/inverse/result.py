"""What a solver returns: latents, the field to render, and the final per-term losses."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class InverseResult:
    """``z (B, C, h, w)``: latents; ``phi (B, C_phi, h_phi, w_phi)``: the field to render (``decode(z)``,
    plus the optimised residual when the field was optimised); ``losses``: each term's final ``(B,)``."""

    z: torch.Tensor
    phi: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


def format_losses(losses: dict[str, float]) -> str:
    """``"sky=0.712 photo=0.0031"``: the per-term values shown on a progress bar."""
    return " ".join(f"{name}={value:.4g}" for name, value in losses.items())
