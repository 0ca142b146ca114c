"""Adversarial objectives of stage 1: hinge loss and the adaptive GAN weight (taming-transformers).

    L_D = ( mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))) ) / 2       (hinge, discriminator)
    L_G = -mean(D(x_hat))                                               (generator)
    lambda = ||grad_W L_rec|| / (||grad_W L_G|| + 1e-4), clamped to [0, 1e4], no gradient
             (Esser et al. 2021, Eq. 7; W = the renderer's last layer weight)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator, a scalar, from logits of any shape."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss ``-mean(D(fake))``, a scalar."""
    return -logits_fake.mean()


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor,
                        max_weight: float = 1e4, eps: float = 1e-4) -> torch.Tensor:
    """``lambda`` above: balances the two gradients at ``last_layer``; a detached fp32 scalar.

    Both losses must depend on ``last_layer``. The graphs are kept for the caller's backward.
    """
    if not (rec_loss.requires_grad and gan_loss.requires_grad and last_layer.requires_grad):
        raise ValueError("adaptive_gan_weight needs rec_loss and gan_loss with gradients to a last_layer "
                         "that requires grad (call it with autograd enabled)")
    (g_rec,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    (g_gan,) = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)
    weight = g_rec.float().norm() / (g_gan.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()
