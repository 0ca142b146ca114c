"""The stage-1 objective of the neural-field autoencoder (INFD, Sec. 3.2; LDM/taming recipe).

    L_rec = w_l1 * |x - x_hat|_1 + w_p * LPIPS(x, x_hat)
    L     = L_rec + w_gan * lambda * L_G + w_reg * L_reg       (lambda: adaptive weight, see gan.py)
    L_D   = hinge(D(x), D(sg(x_hat)))                          (separate discriminator step)

``x`` is the ground-truth patch and ``x_hat`` the rendered patch, both ``(B, 3, H, W)`` in [-1, 1];
``L_reg`` is the bottleneck's VQ or KL term, computed by the model and passed in as a scalar.
The generator's GAN term is off (weight 0, no discriminator pass) before ``gan_start_step``, the
discriminator's updates before ``disc_start_step`` (default: the same step). With ``gan_min_scale > 0``
both GAN terms see only the patches rendered at a magnification (ground-truth side over the encoder input)
of at least that: the rest of the batch is trained by the reconstruction terms alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from .gan import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from .lpips import LPIPS, load_lpips


@dataclass
class AutoencoderLossConfig:
    l1_weight: float = 1.0  # pixel L1 between the rendered patch and its ground truth
    perceptual_weight: float = 1.0  # LPIPS-VGG; 0 skips loading the LPIPS network
    perceptual_start_step: int = 0  # L1 (+ reg) only before this step: the cheap part of learning first
    gan_weight: float = 0.75  # times the adaptive weight; 0 disables the GAN
    gan_start_step: int = 0  # the generator's GAN term starts at this step
    # Earlier than gan_start_step lets the discriminator learn before the generator follows it: a fresh one
    # sits at chance (hinge loss 1) for thousands of steps on renders as close as a fine-tuned autoencoder's,
    # and its gradient is then noise to the generator.
    disc_start_step: int | None = None  # the discriminator's updates start here (None: at gan_start_step)
    adaptive_gan_weight: bool = True  # False: the GAN term is weighted by gan_weight alone
    # The GAN terms only on patches magnified at least this much (ground-truth side / encoder input): 1.5
    # leaves renders at about the input size (the 1x picture, where L1 + LPIPS already fit) to the
    # reconstruction terms and puts the GAN's detail where the latent has none. 0: every patch.
    gan_min_scale: float = 0.0
    max_adaptive_weight: float = 1e4  # cap of the adaptive GAN weight (as in taming-transformers)
    reg_weight: float = 1.0  # VQ: 1.0; KL: typically 1e-6
    discriminator: PatchDiscriminatorConfig = field(default_factory=PatchDiscriminatorConfig)
    lpips_weights: str | None = None  # converted LPIPS file; None: $INFD_LPIPS_WEIGHTS or the cache

    def __post_init__(self):
        for name in ("l1_weight", "perceptual_weight", "perceptual_start_step", "gan_weight", "gan_start_step",
                     "max_adaptive_weight", "reg_weight", "gan_min_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.disc_start_step is not None and not 0 <= self.disc_start_step <= self.gan_start_step:
            raise ValueError(f"disc_start_step must be between 0 and gan_start_step ({self.gan_start_step}), "
                             f"got {self.disc_start_step}: the generator would follow an untrained discriminator")


class AutoencoderLoss(nn.Module):
    """Generator and discriminator losses of stage 1; owns the discriminator and the LPIPS network.

    ``lpips`` overrides the network loaded from ``config.lpips_weights`` (e.g. a random one in tests).
    Save ``self.discriminator``'s state for resuming; the LPIPS weights are fixed and not trained.
    """

    def __init__(self, config: AutoencoderLossConfig, lpips: LPIPS | None = None):
        super().__init__()
        self.config = config
        self.discriminator = PatchDiscriminator(config.discriminator)
        if lpips is None and config.perceptual_weight > 0:
            lpips = load_lpips(config.lpips_weights)
        self.lpips = lpips

    def lpips_active(self, step: int) -> bool:
        """Whether the LPIPS term counts (and runs) at ``step``."""
        c = self.config
        return self.lpips is not None and c.perceptual_weight > 0 and step >= c.perceptual_start_step

    def gan_active(self, step: int) -> bool:
        """Whether the generator's GAN term counts at ``step``."""
        return self.config.gan_weight > 0 and step >= self.config.gan_start_step

    def disc_active(self, step: int) -> bool:
        """Whether the discriminator trains at ``step`` (from ``disc_start_step``, else with the GAN term)."""
        c = self.config
        start = c.gan_start_step if c.disc_start_step is None else c.disc_start_step
        return c.gan_weight > 0 and step >= start

    def gan_rows(self, scale: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Indices of the patches the GAN terms see (``None``: all of them), from each patch's magnification
        ``scale (B,)``, which ``gan_min_scale > 0`` needs."""
        if not self.config.gan_min_scale:
            return None
        if scale is None or scale.shape != (batch,):
            raise ValueError(f"gan_min_scale needs each patch's magnification, a ({batch},) tensor, got "
                             f"{None if scale is None else tuple(scale.shape)}")
        return torch.nonzero(scale >= self.config.gan_min_scale).flatten()

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor, reg_loss: torch.Tensor,
                       last_layer: torch.Tensor | None, step: int,
                       scale: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(L (), logs)`` for ground truth ``real`` and rendered ``fake``, both ``(B, 3, H, W)``.

        ``last_layer`` is the renderer's ``.last_layer`` weight (for the adaptive weight). Without
        autograd (validation), the adaptive weight is 0 and the GAN term is only logged. ``scale (B,)``:
        each patch's magnification (for ``gan_min_scale``; a step with no patch above it has no GAN term).
        ``logs`` holds detached scalars: loss, l1, lpips, rec, g_adv, gan_weight, reg.
        """
        if real.shape != fake.shape:
            raise ValueError(f"real and fake must have one shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
        c = self.config
        l1 = (fake.float() - real.float()).abs().mean()  # fp32 under autocast
        perceptual = self.lpips(fake, real).mean() if self.lpips_active(step) else l1.new_zeros(())
        rec = c.l1_weight * l1 + c.perceptual_weight * perceptual
        reg_loss = torch.as_tensor(reg_loss, dtype=rec.dtype, device=rec.device)
        total = rec + c.reg_weight * reg_loss
        g_adv, gan_weight = l1.new_zeros(()), l1.new_zeros(())
        rows = self.gan_rows(scale, fake.shape[0])
        if self.gan_active(step) and (rows is None or len(rows)):
            g_adv = hinge_g_loss(self.discriminator(fake if rows is None else fake[rows]))
            gan_weight = self._gan_weight(rec, g_adv, last_layer)
            total = total + gan_weight * g_adv
        logs = {"loss": total, "l1": l1, "lpips": perceptual, "rec": rec, "g_adv": g_adv,
                "gan_weight": gan_weight, "reg": reg_loss}
        return total, {k: v.detach() for k, v in logs.items()}

    forward = generator_loss

    def _gan_weight(self, rec: torch.Tensor, g_adv: torch.Tensor, last_layer: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        if not c.adaptive_gan_weight:
            return g_adv.new_tensor(c.gan_weight)
        if not torch.is_grad_enabled():
            return g_adv.new_zeros(())
        if last_layer is None:
            raise ValueError("the adaptive GAN weight needs last_layer (the renderer's .last_layer weight)")
        return c.gan_weight * adaptive_gan_weight(rec, g_adv, last_layer, c.max_adaptive_weight)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, step: int,
                           scale: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(L_D (), logs)``: hinge loss on ``real`` and the generator's output ``fake`` (detached here).

        Reuses the generator step's ``fake``: no second encode/decode/render. Zero before the discriminator
        starts (``disc_active``) and when ``scale`` leaves no patch to it (``gan_min_scale``); it sees the
        real and rendered patches of the same rows.
        """
        rows = self.gan_rows(scale, fake.shape[0])
        if rows is not None:
            if not len(rows):
                zero = fake.new_zeros((), dtype=torch.float32)
                return zero, {"d_loss": zero, "logits_real": zero, "logits_fake": zero}
            real, fake = real[rows], fake[rows]
        logits_real = self.discriminator(real.detach())
        logits_fake = self.discriminator(fake.detach())
        factor = 1.0 if self.disc_active(step) else 0.0
        d_loss = factor * hinge_d_loss(logits_real, logits_fake)
        logs = {"d_loss": d_loss, "logits_real": logits_real.mean(), "logits_fake": logits_fake.mean()}
        return d_loss, {k: v.detach() for k, v in logs.items()}
