"""The one sampling spec: what a caller asks of a diffusion bundle's sampler (no torch import here).

``SamplingSpec(sampler, steps, cfg_scale, class_label, eta)`` is built by the command lines
(``tools/render.py``, ``tools/inverse.py``: ``infd.cli.add_sampler_arguments``), checked before any model
is loaded, and passed unchanged to ``infd.rendering.sampling.sample_latents`` and from there to
``LatentDiffusion.sample_latents``, which also takes the inverse solvers' hooks (``cond_fn``,
``callback``). What the spec leaves out (clipping, timestep spacing, and ``eta`` when ``None``) comes from
the bundle's own ``SamplerConfig`` (the ``sampler:`` section of ``configs/dm/*.yaml``, stored in the
checkpoint): ``spec.apply_to(config)``.

Two scales, two names:

- ``cfg_scale`` (``--cfg-scale``): classifier-free guidance, ``out = out_u + w (out_c - out_u)``
  (``infd.diffusion.guidance``); 1 is the conditional model, 0 the unconditional one. It is the
  ``guidance_scale`` of a ``SamplerConfig``.
- ``condition_scale`` (``tools/inverse.py --condition-scale``): the scale ``s`` of the inverse conditions'
  gradient, ``g = -s grad_{x_t} L`` (``infd.inverse.guided``); not part of this spec.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

SAMPLER_NAMES = ("ddpm", "ddim", "dpmpp_2m")  # infd.diffusion.samplers.SAMPLERS holds sample_<name> for each
# The default of every sampling job but the inverse solvers: on the bundle, DPM-Solver++(2M) at 30 steps
# matches DDIM at 50 (KID, patch-KID within noise) at 0.6x the sampler's time (the model card's curve).
DEFAULT_SAMPLER, DEFAULT_STEPS = "dpmpp_2m", 30
# --class seed: seed s takes class s mod K of a K-class prior (an unconditional prior takes none). With
# DEFAULT_CFG_SCALE it is what tools/render.py samples by default: on the bundle, class-conditional samples
# at w = 3 halve the unconditional prior's KID (the model card's curve); an explicit --class none samples
# unconditionally.
CLASS_PER_SEED = "seed"
DEFAULT_CFG_SCALE = 3.0
WINDOW_MODES = ("overlap", "shifted")  # infd.diffusion.windows: how a canvas larger than one latent is covered


class SamplingError(ValueError):
    """An invalid sampling spec (one line naming the command-line option, shown to the user as is)."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingSpec:
    """Sampler name, its number of steps, the classifier-free scale, the class label and DDIM's ``eta``.

    ``class_label=None`` samples unconditionally, ``CLASS_PER_SEED`` gives each seed a class (``labels``);
    ``eta=None`` keeps the bundle's setting.
    """

    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS
    cfg_scale: float = 1.0
    class_label: int | str | None = None
    eta: float | None = None

    def __post_init__(self):
        if self.sampler not in SAMPLER_NAMES:
            raise SamplingError(f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLER_NAMES)})")
        if not _is_int(self.steps) or self.steps < 1:
            raise SamplingError(f"--steps must be at least 1, got {self.steps}")
        if not 0 <= self.cfg_scale < float("inf"):  # also rejects NaN
            raise SamplingError(f"--cfg-scale must be a finite number >= 0, got {self.cfg_scale}")
        if self.class_label not in (None, CLASS_PER_SEED) and (not _is_int(self.class_label) or self.class_label < 0):
            raise SamplingError(f"--class must be a label >= 0, '{CLASS_PER_SEED}' or 'none', got {self.class_label}")
        if self.eta is not None and not self.eta >= 0:
            raise SamplingError(f"eta must be a number >= 0, got {self.eta}")

    def labels(self, seeds: list[int], num_classes: int | None) -> list[int] | None:
        """The class of each seed for a prior of ``num_classes`` classes (``None``: unconditional), or
        ``None`` to sample unconditionally: the spec's class for every seed, or ``seed mod num_classes``."""
        if self.class_label is None or (self.class_label == CLASS_PER_SEED and num_classes is None):
            return None
        if self.class_label == CLASS_PER_SEED:
            return [seed % num_classes for seed in seeds]
        return [self.class_label] * len(seeds)

    def apply_to(self, config):
        """The bundle's ``SamplerConfig`` with this spec's sampler, steps, classifier-free scale (and eta)."""
        eta = {} if self.eta is None else {"eta": self.eta}
        return replace(config, name=self.sampler, steps=self.steps, guidance_scale=self.cfg_scale, **eta)

    def with_text(self, text: str) -> SamplingSpec:
        """This spec with ``SAMPLER:STEPS[:CFG[:ETA]]`` of ``text`` (e.g. ``dpmpp_2m:20:1.5``, or
        ``ddim:50:3:1`` for DDIM with eta 1), the rest kept: one point of ``tools/eval.py --sampling-curve``."""
        parts = text.split(":")
        try:
            if len(parts) not in (2, 3, 4):
                raise ValueError
            steps = int(parts[1])
            cfg = float(parts[2]) if len(parts) >= 3 else self.cfg_scale
            eta = float(parts[3]) if len(parts) == 4 else self.eta
        except ValueError:
            raise SamplingError(f"--sampling-curve takes SAMPLER:STEPS[:CFG[:ETA]], got {text!r}") from None
        if len(parts) == 4 and parts[0] != "ddim":
            raise SamplingError(f"--sampling-curve: eta is DDIM's (ddim:STEPS:CFG:ETA), got {text!r}")
        return replace(self, sampler=parts[0], steps=steps, cfg_scale=cfg, eta=eta)
