"""Classifier-free guidance: a model wrapper every sampler can use, and condition dropout for training.

    out = out_u + w (out_c - out_u)            (Ho & Salimans 2022, Eq. 6; GLIDE Sec. 2.3)

``w = 0`` is the unconditional model, ``w = 1`` the conditional one, ``w > 1`` guides. The rule is
applied to the raw network output; it holds for eps- and v-prediction alike because both are affine in
the score at a fixed ``x_t``. Conditional and null branches run in one batched forward.

Conditions (``cond``) are what the backbone takes: ``None``, a tensor whose first dimension is the
batch (class labels ``(B,)``, a context ``(B, M, D)``), or a dict of such tensors (see
``infd.models.conditioning``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .noise import RNG, rand

Cond = torch.Tensor | dict | None


def concat_cond(a: Cond, b: Cond) -> Cond:
    """Concatenate two conditions of the same structure along the batch dimension."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.cat([a, b.to(a.device)])
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {k: concat_cond(a[k], b[k]) for k in a}
    raise ValueError(f"conditions of different structure cannot be batched: {_describe(a)} and {_describe(b)}")


def expand_cond(cond: Cond, batch: int) -> Cond:
    """Broadcast a condition with batch size 1 (e.g. the empty prompt's context) to ``batch``."""
    if cond is None:
        return None
    if isinstance(cond, dict):
        return {k: expand_cond(v, batch) for k, v in cond.items()}
    if cond.shape[0] == batch:
        return cond
    if cond.shape[0] != 1:
        raise ValueError(f"null condition has batch {cond.shape[0]}, expected 1 or {batch}")
    return cond.expand(batch, *cond.shape[1:])


def _batch_of(cond: Cond) -> int:
    if isinstance(cond, dict):
        return _batch_of(next(iter(cond.values())))
    return cond.shape[0]


def _describe(cond: Cond) -> str:
    if isinstance(cond, dict):
        return "dict(" + ", ".join(cond) + ")"
    return "None" if cond is None else f"tensor{tuple(cond.shape)}"


class ClassifierFreeGuidance(nn.Module):
    """``model(x, t, cond)`` -> ``out_u + scale (out_c - out_u)`` with the same call contract.

    ``null_cond`` is the unconditional condition: a callable ``cond -> null``, a fixed condition (batch 1
    or B, e.g. the empty prompt's text context), or ``None`` to ask ``model.null_cond(cond)`` (the
    class-label backbones replace labels by their null label). With ``cond=None`` the wrapper is the
    unconditional model.
    """

    def __init__(self, model: nn.Module, scale: float, null_cond: Callable | Cond = None):
        super().__init__()
        self.model = model
        self.scale = float(scale)
        self.null_cond = null_cond

    def make_null(self, cond: Cond) -> Cond:
        if callable(self.null_cond):
            return self.null_cond(cond)
        if self.null_cond is not None:
            return expand_cond(self.null_cond, _batch_of(cond))
        if not hasattr(self.model, "null_cond"):
            raise ValueError(f"{type(self.model).__name__} has no null_cond(); pass null_cond= explicitly")
        return self.model.null_cond(cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """``x`` (B, C, H, W), ``t`` (B,) -> guided output (B, C, H, W)."""
        if cond is None:
            return self.model(x, t, None)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), concat_cond(cond, self.make_null(cond)))
        out_c, out_u = both.chunk(2)
        return out_u + self.scale * (out_c - out_u)


def drop_condition(cond: Cond, null_cond: Cond, p: float = 0.1, rng: RNG = None) -> Cond:
    """Training-time dropout: each sample's condition becomes the null one with probability ``p``.

    ``null_cond`` has the structure of ``cond`` with batch 1 or B (e.g. ``model.null_cond(cond)``).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
    if cond is None:
        return None
    batch = _batch_of(cond)
    drop = rand(batch, "cpu", rng) < p  # (B,)
    null_cond = expand_cond(null_cond, batch)

    def select(c, n):
        if isinstance(c, dict):
            return {k: select(c[k], n[k]) for k in c}
        mask = drop.to(c.device).reshape(-1, *([1] * (c.ndim - 1)))
        return torch.where(mask, n.to(c.device), c)

    return select(cond, null_cond)


def drop_labels(labels: torch.Tensor, null_label: int, p: float = 0.1, rng: RNG = None) -> torch.Tensor:
    """Class labels ``(B,)`` with each replaced by ``null_label`` with probability ``p``."""
    return drop_condition(labels, torch.full_like(labels[:1], null_label), p, rng)
