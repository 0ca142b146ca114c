"""A latent diffusion bundle: the frozen autoencoder, the diffusion backbone and the latent scaling, as
one model (kind ``latent_diffusion``) saved in one safetensors file.

It keeps the autoencoder's rendering interface (``decode(z) -> phi``, ``renderer``,
``config.z_channels`` / ``config.latent_size``), so everything that renders an autoencoder renders a
bundle, and adds the prior: ``sample_latents(noise, spec)`` turns ``x_T`` into autoencoder latents.

The backbone works in normalised units, ``x = (z - shift) / scale`` (LDM's ``scale_factor``, per channel
or one value for all channels); ``to_model_space`` / ``to_latent_space`` convert.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from torch import nn

from ..config import ConfigError
from ..models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from ..registry import register_model
from .config import DiffusionConfig, build_backbone, build_schedule
from .noise import RNG
from .guidance import ClassifierFreeGuidance
from .samplers import sample, sampler_timesteps
from .sampling import CLASS_PER_SEED, SamplingSpec
from .windows import JointDenoiser, LabelBox, WindowSpec


@dataclass
class LatentDiffusionConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    latent_shift: tuple[float, ...] = (0.0,)  # one value, or one per latent channel
    latent_scale: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        n = self.autoencoder.z_channels
        for name in ("latent_shift", "latent_scale"):
            if len(getattr(self, name)) not in (1, n):
                raise ConfigError(f"config key '{name}' needs 1 or {n} values, got {len(getattr(self, name))}")
        if not all(s > 0 for s in self.latent_scale):
            raise ConfigError(f"config key 'latent_scale' must be positive, got {list(self.latent_scale)}")

    @property
    def z_channels(self) -> int:
        return self.autoencoder.z_channels

    @property
    def latent_size(self) -> int:
        return self.autoencoder.latent_size


@register_model("latent_diffusion", LatentDiffusionConfig)
class LatentDiffusion(nn.Module):
    """``autoencoder`` (frozen in stage 2) + ``backbone`` (eps/v model on normalised latents)."""

    def __init__(self, config: LatentDiffusionConfig, autoencoder: nn.Module | None = None,
                 backbone: nn.Module | None = None):
        """Built from ``config`` (random weights), or around existing ``autoencoder`` / ``backbone``
        modules (shared, not copied: stage 2 exports its frozen autoencoder and EMA backbone this way)."""
        super().__init__()
        self.config = config
        for name, part, expected in (("autoencoder", autoencoder, config.autoencoder),
                                     ("backbone", backbone, config.diffusion.model)):
            if part is not None and getattr(part, "config", None) != expected:
                raise ValueError(f"the given {name}'s config differs from the bundle config's {name} config")
        self.autoencoder = autoencoder if autoencoder is not None else NeuralFieldAutoencoder(config.autoencoder)
        self.backbone = backbone if backbone is not None else build_backbone(config.diffusion)
        self.schedule = build_schedule(config.diffusion)

    @property
    def renderer(self) -> nn.Module:
        return self.autoencoder.renderer

    @property
    def num_classes(self) -> int | None:
        return getattr(self.config.diffusion.model, "num_classes", None)

    def _affine(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift = torch.tensor(self.config.latent_shift, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        scale = torch.tensor(self.config.latent_scale, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        return shift, scale

    def to_model_space(self, z: torch.Tensor) -> torch.Tensor:
        """Autoencoder latents ``z (B, C, h, w)`` -> the backbone's normalised units."""
        shift, scale = self._affine(z)
        return (z - shift) / scale

    def to_latent_space(self, x: torch.Tensor) -> torch.Tensor:
        shift, scale = self._affine(x)
        return x * scale + shift

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Field ``phi`` of autoencoder latents ``z`` (B, z_channels, h, w)."""
        return self.autoencoder.decode(z)

    def label_cond(self, class_label: int | list[int] | None, batch: int, device) -> torch.Tensor | None:
        """Labels ``(batch,)`` for a class (or one class per sample, a list), or ``None`` (unconditional: the
        null label if the model has one)."""
        if class_label is None:
            return None
        if self.num_classes is None:
            raise ValueError("this model is unconditional; it takes no class label")
        labels = class_label if isinstance(class_label, list) else [class_label] * batch
        if len(labels) != batch:
            raise ValueError(f"{len(labels)} class labels for a batch of {batch}")
        for label in labels:
            if not 0 <= label < self.num_classes:
                raise ValueError(f"class label {label} is not in 0..{self.num_classes - 1}")
        return torch.tensor(labels, dtype=torch.long, device=device)

    def window_multiple(self) -> int | None:
        """Sides a window smaller than the trained size must be multiples of (the UNet's downsampling), or
        ``None`` for a backbone that only takes its trained size (the U-ViT's position table)."""
        if getattr(self.backbone, "crops_need_trained_size", False):
            return None
        return getattr(self.backbone.config, "stride", 1)

    def resolve_windows(self, windows: WindowSpec | None) -> WindowSpec:
        """``windows`` (default ``WindowSpec()``) with the backbone's multiple for shifted windows."""
        if windows is None:  # overlapping windows, tent-blended: the fewest seams (tools/bench_canvas.py)
            windows = WindowSpec()
        if windows.mode != "shifted":
            return windows
        multiple = self.window_multiple()
        if multiple is None:
            raise ValueError("shifted windows need a convolutional backbone (UNet); this prior's "
                             f"{type(self.backbone).__name__} takes only its trained size: use overlap windows")
        return replace(windows, multiple=multiple)

    def joint_windows_total(self, canvas: tuple[int, int], spec: SamplingSpec, windows: WindowSpec | None = None,
                            boxes: tuple[LabelBox, ...] = ()) -> int:
        """Backbone windows ``sample_latents`` runs for one batch on a canvas of ``canvas = (h, w)`` latents."""
        S = self.config.latent_size
        denoiser = JointDenoiser(self.backbone, (S, S), self.resolve_windows(windows), boxes)
        timesteps = sampler_timesteps(self.schedule, spec.apply_to(self.config.diffusion.sampler))
        return sum(denoiser.windows_per_step(tuple(canvas), t) for t in timesteps)

    @torch.no_grad()
    def sample_latents(self, noise: torch.Tensor, spec: SamplingSpec, *, rng: RNG = None,
                       cond_fn: Callable | None = None, callback: Callable | None = None,
                       windows: WindowSpec | None = None, boxes: tuple[LabelBox, ...] = (),
                       on_windows: Callable[[int], None] | None = None,
                       labels: list[int] | None = None) -> torch.Tensor:
        """Autoencoder latents ``(B, C, h, w)`` from ``x_T = noise`` (B, C, h, w), on the backbone's device.

        ``spec`` names the sampler, its steps, the classifier-free scale and the class label (``labels``, one
        per sample, replace it: ``SamplingSpec.labels`` of the seeds for ``--class seed``); the sampler's
        other settings (eta unless the spec sets it, spacing, clipping) come from the bundle's config.
        ``rng`` draws the noise of stochastic steps (a ``PerSampleRNG`` makes every sample independent of
        its batch). ``cond_fn`` (a guidance gradient) and ``callback`` (after each step) are the samplers'
        hooks (``infd.diffusion.samplers``).

        A canvas ``h x w`` larger than the trained latent size, or label ``boxes`` on it, is denoised jointly
        in windows of the trained size (``infd.diffusion.windows``; ``windows`` sets their stride, batch and
        mode; ``on_windows(n)`` counts backbone windows for a progress bar).
        """
        device = next(self.backbone.parameters()).device
        x_T = noise.to(device)
        class_label = spec.class_label if labels is None else labels
        if class_label == CLASS_PER_SEED:  # an unconditional prior takes no class; a conditional one the seeds'
            if self.num_classes is not None:
                raise ValueError(f"class_label '{CLASS_PER_SEED}' needs the labels of the seeds (SamplingSpec.labels)")
            class_label = None
        cond = self.label_cond(class_label, x_T.shape[0], device)
        if any(b.label is not None for b in boxes):
            self.label_cond(max(b.label for b in boxes if b.label is not None), 1, device)  # checks the labels
        config = spec.apply_to(self.config.diffusion.sampler)
        model = self.backbone.eval()
        S = self.config.latent_size
        if tuple(x_T.shape[-2:]) != (S, S) or boxes or windows is not None:
            windows = self.resolve_windows(windows)
            labelled = cond is not None or any(b.label is not None for b in boxes)
            if config.guidance_scale != 1.0 and labelled:  # per window, inside the average (both are affine)
                model = ClassifierFreeGuidance(model, config.guidance_scale, self.backbone.null_cond)
            config = replace(config, guidance_scale=1.0)
            model = JointDenoiser(model, (S, S), windows, boxes, null_cond=self.backbone.null_cond,
                                  on_windows=on_windows)
        x0 = sample(model, x_T, self.schedule, config, cond=cond, null_cond=self.backbone.null_cond,
                    prediction=self.config.diffusion.objective.prediction, rng=rng, cond_fn=cond_fn,
                    callback=callback)
        return self.to_latent_space(x0).float()
