"""What diffusion backbones are conditioned on: the timestep and an optional ``cond``.

The backbone contract is ``model(x (B, C, H, W), t (B,) int or float, cond=None) -> (B, C_out, H, W)``.
``cond`` is one of:

* ``None``: unconditional (a class-conditional model then uses its null label).
* an integer tensor ``(B,)``: class labels in ``[0, num_classes]``; ``num_classes`` is the null label.
* a float tensor ``(B, M, context_dim)``: a context sequence for cross-attention (e.g. text tokens).
* a dict with any of ``"y"`` (labels ``(B,)``), ``"context"`` ``(B, M, D)`` and ``"context_mask"``
  ``(B, M)`` bool (True = attend; padding tokens False).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

COND_KEYS = ("y", "context", "context_mask")


@dataclass
class Conditions:
    """The parts of a ``cond``; any may be ``None``."""

    labels: torch.Tensor | None = None  # (B,) int64
    context: torch.Tensor | None = None  # (B, M, D)
    context_mask: torch.Tensor | None = None  # (B, M) bool


def split_cond(cond, batch: int) -> Conditions:
    """Parse a ``cond`` (see the module docstring) for a batch of ``batch``; bad input is a ValueError."""
    if cond is None:
        return Conditions()
    if isinstance(cond, torch.Tensor):
        if not cond.is_floating_point() and cond.ndim == 1:
            cond = {"y": cond}
        elif cond.is_floating_point() and cond.ndim == 3:
            cond = {"context": cond}
        else:
            raise ValueError(f"cond tensor must be int labels (B,) or a float context (B, M, D), got "
                             f"{cond.dtype} {tuple(cond.shape)}")
    if not isinstance(cond, dict):
        raise ValueError(f"cond must be None, a tensor or a dict, got {type(cond).__name__}")
    unknown = set(cond) - set(COND_KEYS)
    if unknown:
        raise ValueError(f"unknown cond keys {sorted(unknown)} (known: {', '.join(COND_KEYS)})")
    parts = Conditions(cond.get("y"), cond.get("context"), cond.get("context_mask"))
    for name, value in (("y", parts.labels), ("context", parts.context), ("context_mask", parts.context_mask)):
        if value is not None and value.shape[0] != batch:
            raise ValueError(f"cond '{name}' has batch {value.shape[0]}, the input has {batch}")
    if parts.context_mask is not None and parts.context is None:
        raise ValueError("cond has a context_mask but no context")
    return parts


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` float32 of (possibly fractional) timesteps ``t`` (B,).

    ``[cos(t w_k), sin(t w_k)]`` with ``w_k = max_period^(-k / (dim/2))`` (Transformer / ADM).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


def broadcast_timesteps(t, batch: int, device) -> torch.Tensor:
    """``t`` as a ``(batch,)`` tensor (a scalar or 0-d tensor is repeated); other shapes are a ValueError."""
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
    return t


class LabelEmbedding(nn.Module):
    """Class labels ``(B,)`` -> ``(B, dim)``, with a learned null label at index ``num_classes``."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        if labels is None:
            labels = torch.full((batch,), self.num_classes, device=device, dtype=torch.long)
        if bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise ValueError(f"class labels must lie in [0, {self.num_classes}] ({self.num_classes} = null)")
        return self.embedding(labels.long())


def null_label_cond(cond, num_classes: int | None):
    """``cond`` with its class labels replaced by the null label ``num_classes`` (for guidance).

    A text context has no generic null (it is the encoder's output for the empty prompt): pass that
    to ``ClassifierFreeGuidance(null_cond=...)`` instead.
    """
    if num_classes is None:
        raise ValueError("this model has no class labels, so it has no null label")
    if isinstance(cond, dict):
        if "context" in cond:
            raise ValueError("cannot make a null text context; pass null_cond= (the empty prompt's context)")
        if "y" in cond:
            return {**cond, "y": torch.full_like(cond["y"], num_classes)}
    elif isinstance(cond, torch.Tensor) and not cond.is_floating_point():
        return torch.full_like(cond, num_classes)
    raise ValueError("null_cond needs class labels (B,) or a dict with 'y'")
