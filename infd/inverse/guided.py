"""Solver 1: guidance during sampling (classifier guidance with the conditions as the classifier).

At every sampler step the backbone predicts ``x0`` from ``x_t``; we map it to autoencoder latents,
decode the field ``phi``, render every term's box at its resolution and take the gradient of the
weighted loss through all of it:

    g = -s grad_{x_t} sum_k w_k L_k(render_k(D(x0_pred(x_t))))        (GLIDE Sec. 2.4, CLIP guidance)

and the sampler shifts the score by ``g`` (``eps <- eps - sigma_t g``, ADM Sec. 4.2), which moves the
mean of each step towards lower loss. ``s`` is ``GuidedOptions.scale``; ``s = 0`` is the unguided
sample from the same seed (same ``x_T``, same step noise).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from tqdm.auto import tqdm

from infd.diffusion.noise import PerSampleRNG
from infd.diffusion.samplers import sample
from infd.rendering.engine import inference_renderer

from .conditions import Conditions
from .result import InverseResult, format_losses


@dataclass(frozen=True)
class GuidedOptions:
    steps: int = 50
    scale: float = 100.0  # s: the guidance gradient is -s grad_{x_t} of the weighted loss
    sampler: Literal["ddim", "ddpm", "dpmpp_2m"] = "ddim"
    eta: float | None = None  # DDIM's eta; None: the bundle's sampler setting (as unguided sampling)
    class_label: int | None = None
    cfg_scale: float = 1.0  # classifier-free guidance of a class-conditional model

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.scale >= 0:
            raise ValueError(f"guidance scale must be >= 0, got {self.scale}")


def solve_guided(model, conditions: Conditions, seeds: list[int], options: GuidedOptions = GuidedOptions(),
                 progress: bool = False) -> InverseResult:
    """Sample ``len(seeds)`` latents from the diffusion bundle ``model`` under the conditions' guidance.

    ``model`` is a ``LatentDiffusion`` (backbone, schedule, ``to_latent_space``, ``decode``, ``renderer``)
    on the device to use. Returns latents ``z (B, C, h, w)``, their field ``phi`` and the final losses.
    """
    device = next(model.parameters()).device
    model.eval()
    C, h = model.config.z_channels, model.config.latent_size
    rng = PerSampleRNG(seeds)
    x_T = rng.randn((C, h, h), device=device)  # as infd.rendering.sampling.sample_latents draws it
    last: dict[str, float] = {}

    def cond_fn(x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        phi = model.decode(model.to_latent_space(x0))
        losses = conditions.losses(model.renderer, phi)
        total = conditions.total(losses)  # (B,)
        (grad,) = torch.autograd.grad(total.sum(), x_t)
        last.update({name: float(v.detach().mean()) for name, v in losses.items()})
        return -options.scale * grad

    bar = tqdm(total=options.steps, desc="guided", disable=not progress, dynamic_ncols=True)

    def callback(i, t, x, x0):
        bar.update(1)
        if last:
            bar.set_postfix_str(format_losses(last))

    config = replace(model.config.diffusion.sampler, name=options.sampler, steps=options.steps,
                     guidance_scale=options.cfg_scale)
    if options.eta is not None:
        config = replace(config, eta=options.eta)
    cond = model.label_cond(options.class_label, len(seeds), device)
    try:
        x0 = sample(model.backbone, x_T, model.schedule, config, cond=cond, null_cond=model.backbone.null_cond,
                    prediction=model.config.diffusion.objective.prediction, rng=rng,
                    cond_fn=cond_fn if options.scale > 0 else None, callback=callback)
    finally:
        bar.close()
    z = model.to_latent_space(x0)
    with torch.no_grad():
        phi = model.decode(z)
        losses = {name: v.detach() for name, v in conditions.losses(inference_renderer(model.renderer), phi).items()}
    return InverseResult(z=z.detach(), phi=phi.detach(), losses=losses)
