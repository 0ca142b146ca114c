"""Renderers by name: ``RendererConfig(name, args)`` -> ``make_renderer`` (``{name, args}`` specs, as in LIIF)."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from infd.config import ConfigError, from_dict

from .clif import CLIF, CLIFConfig
from .conv_head import ConvHead, ConvHeadConfig
from .liif import LIIF, LIIFConfig

RENDERERS = {"clif": (CLIF, CLIFConfig), "liif": (LIIF, LIIFConfig), "conv_head": (ConvHead, ConvHeadConfig)}


@dataclass
class RendererConfig:
    """``{name, args}``: ``name`` picks the renderer, ``args`` fills its own typed config."""

    name: str = "clif"  # clif (the method), liif or conv (baselines); see renderers/
    args: dict = field(default_factory=dict)  # the renderer's own config, e.g. {hidden: 32, num_blocks: 2}

    def __post_init__(self):
        if self.name not in RENDERERS:
            raise ConfigError(f"unknown renderer '{self.name}' (choose from {', '.join(RENDERERS)})")
        from_dict(RENDERERS[self.name][1], self.args, "args")  # validate keys early (from_dict prefixes the parent path)


def make_renderer(config: RendererConfig, field_channels: int | None = None) -> nn.Module:
    """Build the renderer named by ``config``; ``field_channels`` fills in the field width if given."""
    cls, args_cls = RENDERERS[config.name]
    args = dict(config.args)
    if field_channels is not None:
        args.setdefault("field_channels", field_channels)
    return cls(from_dict(args_cls, args, "renderer.args"))
