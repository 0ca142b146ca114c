"""One typed config for a latent diffusion model: backbone, noise schedule, objective, sampler.

YAML (``configs/dm/*.yaml``)::

    backbone: unet            # a registered model kind: unet | uvit
    model: {channels: 224, ...}   # that kind's config fields (UNetConfig / UViTConfig)
    schedule: {kind: scaled_linear, num_steps: 1000, beta_start: 0.0015, beta_end: 0.0195}
    objective: {prediction: eps}
    sampler: {name: ddim, steps: 200, eta: 1.0}

``model`` is checked against the backbone's config class on load, so an unknown key fails with its
path (``unknown config key 'model.chanels'``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..config import ConfigError, from_dict, load_config
from ..registry import MODEL_KINDS, import_builtin_models
from .objective import ObjectiveConfig
from .samplers import SamplerConfig
from .schedules import NoiseSchedule, ScheduleConfig

BACKBONES = ("unet", "uvit")


@dataclass
class DiffusionConfig:
    """Backbone kind and config, noise schedule, training objective and default sampler."""

    backbone: str = "unet"  # unet or uvit: which config model takes
    model: Any = field(default_factory=dict)  # the backbone's config dataclass (a dict in YAML)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ConfigError(f"config key 'backbone' must be one of {list(BACKBONES)}, got {self.backbone!r}")
        import_builtin_models()
        config_cls = MODEL_KINDS[self.backbone][1]
        if isinstance(self.model, dict):
            self.model = from_dict(config_cls, self.model, "model")
        elif not isinstance(self.model, config_cls):
            raise ConfigError(f"config key 'model' must be a {config_cls.__name__} for backbone {self.backbone!r}")


def load_diffusion_config(path: str | Path, overrides: dict | None = None) -> DiffusionConfig:
    """Load a ``configs/dm/*.yaml`` file (see the module docstring)."""
    return load_config(DiffusionConfig, path, overrides)


def build_backbone(config: DiffusionConfig) -> nn.Module:
    """The backbone network described by ``config`` (randomly initialised)."""
    return MODEL_KINDS[config.backbone][0](config.model)


def build_schedule(config: DiffusionConfig) -> NoiseSchedule:
    return NoiseSchedule.from_config(config.schedule)
