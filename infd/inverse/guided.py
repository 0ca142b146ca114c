"""Solver 1: guidance during sampling (classifier guidance with the conditions as the classifier).

At every sampler step the backbone predicts ``x0`` from ``x_t``; we map it to autoencoder latents,
decode the field ``phi``, render every term's box at its resolution and take the gradient of the
weighted loss through all of it:

    g = -s grad_{x_t} sum_k w_k L_k(render_k(D(x0_pred(x_t))))        (GLIDE Sec. 2.4, CLIP guidance)

and the sampler shifts the score by ``g`` (``eps <- eps - sigma_t g``, ADM Sec. 4.2), which moves the
mean of each step towards lower loss. ``s`` is the ``condition_scale`` (not the classifier-free
``cfg_scale`` of the ``SamplingSpec``); ``s = 0`` is the unguided sample from the same seed: the sampling
runs through the same ``sample_latents`` call, with ``g`` passed as its ``cond_fn``.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from infd.diffusion.sampling import SamplingSpec
from infd.rendering.engine import inference_renderer
from infd.rendering.sampling import sample_latents

from .conditions import ConditionTerms
from .result import InverseResult, format_losses

def solve_guided(model, conditions: ConditionTerms, seeds: list[int], spec: SamplingSpec, condition_scale: float,
                 progress: bool = False) -> InverseResult:
    """Sample ``len(seeds)`` latents from the diffusion bundle ``model`` under the conditions' guidance.

    ``model`` is a ``LatentDiffusion`` on the device to use; ``spec`` the sampler run (as for an unguided
    sample); ``condition_scale`` the scale ``s`` of the conditions' gradient. Returns latents
    ``z (B, C, h, w)``, their field ``phi`` and the final losses.
    """
    if not condition_scale >= 0:  # also rejects NaN
        raise ValueError(f"condition scale must be >= 0, got {condition_scale}")
    model.eval()
    last: dict[str, float] = {}

    def cond_fn(x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        phi = model.decode(model.to_latent_space(x0))
        losses = conditions.losses(model.renderer, phi)
        total = conditions.total(losses)  # (B,)
        (grad,) = torch.autograd.grad(total.sum(), x_t)
        last.update({name: float(v.detach().mean()) for name, v in losses.items()})
        return -condition_scale * grad

    bar = tqdm(total=spec.steps, desc="guided", disable=not progress, dynamic_ncols=True)

    def callback(i, t, x, x0):
        bar.update(1)
        if last:
            bar.set_postfix_str(format_losses(last))

    try:
        z = sample_latents(model, seeds, spec, cond_fn=cond_fn if condition_scale > 0 else None, callback=callback)
    finally:
        bar.close()
    with torch.no_grad():
        phi = model.decode(z)
        losses = {name: v.detach() for name, v in conditions.losses(inference_renderer(model.renderer), phi).items()}
    return InverseResult(z=z.detach(), phi=phi.detach(), losses=losses)
